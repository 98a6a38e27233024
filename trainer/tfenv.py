"""TensorFlow is optional (the [train] extra): import it here, once, with a message a user can act on."""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

from bus.errors import FacestreamError

NEEDS_EXTRA = "this command needs the training extra: pip install 'facestream[train]'"
log = logging.getLogger(__name__)
_configured = False


def require_tf(threads: int | None = None) -> ModuleType:
    """Import TensorFlow quietly and cap its CPU threads (0 or None: TF's own choice)."""
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        tf = importlib.import_module("tensorflow")
        importlib.import_module("keras")
    except ImportError as exc:
        raise FacestreamError(NEEDS_EXTRA) from exc
    if not _configured and threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already started: its thread pools are fixed for this process
            log.debug("TensorFlow already initialised; thread settings unchanged")
    _configured = True
    return tf


def require_tf2onnx() -> ModuleType:
    try:
        return importlib.import_module("tf2onnx")
    except ImportError as exc:
        raise FacestreamError(NEEDS_EXTRA) from exc
