"""facestream embed stage."""
