"""Keras architectures (Functional API, so tf2onnx can convert them) and their public weight layouts."""
