"""MTCNN (Zhang et al. 2016) without TensorFlow: P/R/O-Net as ONNX in onnxruntime, the rest in numpy/cv2.

The steps follow the `mtcnn==1.0.0` package one for one (its pyramid rule, its NMS, its box
regression, TF's area resize and crop_and_resize sampling), so its boxes come out the same.
The ONNX files are written from that package's bundled weights by `facestream export mtcnn`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Face
from detect.base import big_enough, by_score, check_image, fit_scale

NETS = ("pnet", "rnet", "onet")
SCALE_FACTOR = 0.709
CELL = 12  # PNet's window, pixels
STRIDE = 2
PNET_THRESHOLD = 0.6
RNET_THRESHOLD = 0.7
NMS_PNET_SCALE = 0.5  # within one pyramid level
NMS_PNET_ALL = 0.7  # across levels
NMS_RNET = 0.7
NMS_ONET = 0.7  # "min" overlap: a box inside a bigger one is dropped
BUNDLED = Path(__file__).parent / "models" / "mtcnn"  # exported from the mtcnn package (MIT)
HINT = "write them with `facestream export mtcnn --out DIR` (needs the [train] extra) and set detect.mtcnn_dir (or leave it unset for the bundled files)"


def scale_pyramid(width: int, height: int, min_face: int, factor: float = SCALE_FACTOR) -> np.ndarray:
    """Scales of the image pyramid, by mtcnn's rule (the count depends on the image, not on min_face)."""
    min_dim = min(width, height)
    if min_dim < CELL:
        return np.zeros(0)
    count = round(-((np.log(min_dim / CELL) / np.log(factor)) + 1))
    return (CELL / min_face) * factor ** np.arange(max(0, count))


def overlap(boxes: np.ndarray, method: str = "union") -> np.ndarray:
    """Pairwise IoU (or intersection over the smaller area) of x1, y1, x2, y2 rows."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iw = np.maximum(
        0.0,
        np.minimum(boxes[None, :, 2], boxes[:, None, 2]) - np.maximum(boxes[None, :, 0], boxes[:, None, 0]),
    )
    ih = np.maximum(
        0.0,
        np.minimum(boxes[None, :, 3], boxes[:, None, 3]) - np.maximum(boxes[None, :, 1], boxes[:, None, 1]),
    )
    inter = iw * ih
    if method == "union":
        denom = area[:, None] + area[None, :] - inter
    elif method == "min":
        denom = np.minimum(area[:, None], area[None, :])
    else:
        raise ValueError(f"overlap method must be 'union' or 'min', got {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / denom
    return np.nan_to_num(out, nan=0.0)


def nms(rows: np.ndarray, threshold: float, method: str = "union", sort: bool = True) -> np.ndarray:
    """mtcnn's suppression: a row goes when any higher-scored row overlaps it above threshold.

    Rows are [x1, y1, x2, y2, score, ...]. Unlike greedy NMS, a row already suppressed still
    suppresses the rows after it; kept as is to give the package's boxes.
    """
    if len(rows) == 0:
        return rows
    if sort:
        rows = rows[np.argsort(rows[:, 4])[::-1]]
    over = overlap(rows[:, :4], method) > threshold
    keep = ~np.triu(over, k=1).any(axis=0)
    return rows[keep]


def to_square(rows: np.ndarray) -> np.ndarray:
    out = rows.copy()
    w = out[:, 2] - out[:, 0]
    h = out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = out[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = out[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = rows.copy()
    w = out[:, 2] - out[:, 0] + 1
    h = out[:, 3] - out[:, 1] + 1
    out[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return out


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """tf.image.crop_and_resize (bilinear, zero outside) for x1, y1, x2, y2 pixel boxes.

    TF takes boxes divided by the image size and maps them onto (size - 1) pixel spans; kept
    exactly, since R/O-Net saw their training crops through it.
    """
    ih, iw = image.shape[:2]
    n = len(boxes)
    steps = np.arange(size, dtype=np.float64)
    y1, x1 = boxes[:, 1] / ih * (ih - 1), boxes[:, 0] / iw * (iw - 1)
    y2, x2 = boxes[:, 3] / ih * (ih - 1), boxes[:, 2] / iw * (iw - 1)
    ys = y1[:, None] + steps[None, :] * ((y2 - y1) / (size - 1))[:, None]  # (n, size)
    xs = x1[:, None] + steps[None, :] * ((x2 - x1) / (size - 1))[:, None]
    inside_y = (ys >= 0) & (ys <= ih - 1)
    inside_x = (xs >= 0) & (xs <= iw - 1)
    y0 = np.clip(np.floor(ys), 0, ih - 1).astype(np.intp)
    y1i = np.clip(np.ceil(ys), 0, ih - 1).astype(np.intp)
    x0 = np.clip(np.floor(xs), 0, iw - 1).astype(np.intp)
    x1i = np.clip(np.ceil(xs), 0, iw - 1).astype(np.intp)
    fy = (ys - np.floor(ys))[:, :, None, None]
    fx = (xs - np.floor(xs))[:, None, :, None]
    img = image.astype(np.float32)
    tl = img[y0[:, :, None], x0[:, None, :]]
    tr = img[y0[:, :, None], x1i[:, None, :]]
    bl = img[y1i[:, :, None], x0[:, None, :]]
    br = img[y1i[:, :, None], x1i[:, None, :]]
    top = tl + (tr - tl) * fx
    bottom = bl + (br - bl) * fx
    out = top + (bottom - top) * fy
    mask = (inside_y[:, :, None] & inside_x[:, None, :])[..., None]
    return np.where(mask, out, 0.0).astype(np.float32).reshape(n, size, size, image.shape[2])


def _open(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FacestreamError(
            f"{path} is not a usable ONNX model ({str(exc).splitlines()[0][:200]})"
        ) from exc


class _Net:
    """One of P/R/O-Net: an NHWC float input, outputs looked up by the names the export gives them."""

    def __init__(self, path: Path, outputs: tuple[str, ...]) -> None:
        self.session = _open(path)
        self.input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        missing = [o for o in outputs if o not in names]
        if missing:
            raise FacestreamError(f"{path} lacks outputs {missing} (has {names}): {HINT}")
        self.outputs = list(outputs)

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(v) for v in self.session.run(self.outputs, {self.input: batch})]


class MtcnnDetector:
    name = "mtcnn"

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        folder = BUNDLED if cfg.mtcnn_dir is None else cfg.mtcnn_dir
        paths = {n: Path(folder) / f"{n}.onnx" for n in NETS}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FacestreamError(f"MTCNN model files missing: {', '.join(missing)}; {HINT}")
        self.pnet = _Net(paths["pnet"], ("reg", "prob"))
        self.rnet = _Net(paths["rnet"], ("reg", "prob"))
        self.onet = _Net(paths["onet"], ("reg", "landmarks", "prob"))

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        image = check_image(image_bgr)
        height, width = image.shape[:2]
        scale = fit_scale(width, height, self.cfg.max_side)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rows = self.detect_rows(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        back = np.array([width / image.shape[1], height / image.shape[0]], np.float32)
        faces = []
        for row in rows:
            x1, y1, x2, y2 = row[0] * back[0], row[1] * back[1], row[2] * back[0], row[3] * back[1]
            landmarks = np.stack([row[5:10], row[10:15]], axis=1).astype(np.float32) * back
            face = Face(
                box=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                score=float(row[4]),
                landmarks=landmarks,
            )
            if big_enough(face, self.cfg.min_face):
                faces.append(face)
        return by_score(faces)

    def detect_rows(self, rgb: np.ndarray) -> np.ndarray:
        """Rows [x1, y1, x2, y2, score, 5 landmark x, 5 landmark y] for one RGB uint8 image."""
        norm = (rgb.astype(np.float32) - 127.5) / 128.0
        rows = self._proposals(norm)
        if len(rows):
            rows = self._refine(norm, rows)
        if len(rows):
            rows = self._output(norm, rows)
        if len(rows) == 0:
            return np.zeros((0, 15), np.float32)
        h, w = rgb.shape[:2]
        rows[:, [0, 2]] = np.clip(rows[:, [0, 2]], 0, w - 1)
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, h - 1)
        return rows

    def _proposals(self, norm: np.ndarray) -> np.ndarray:
        h, w = norm.shape[:2]
        levels = []
        for scale in scale_pyramid(w, h, self.cfg.min_face):
            sh, sw = int(h * scale), int(w * scale)  # TF truncates the float size
            if min(sh, sw) < CELL:
                continue
            scaled = cv2.resize(norm, (sw, sh), interpolation=cv2.INTER_AREA)
            reg, prob = self.pnet(scaled[None])
            ys, xs = np.nonzero(prob[0, :, :, 1] > PNET_THRESHOLD)
            if len(ys) == 0:
                continue
            offsets = reg[0, ys, xs]
            x1 = xs * STRIDE + 1.0
            y1 = ys * STRIDE + 1.0
            x2 = xs * STRIDE + float(CELL)
            y2 = ys * STRIDE + float(CELL)
            side = CELL - 1.0
            boxes = np.stack(
                [
                    x1 + offsets[:, 0] * side,
                    y1 + offsets[:, 1] * side,
                    x2 + offsets[:, 2] * side,
                    y2 + offsets[:, 3] * side,
                ],
                axis=1,
            )
            rows = np.concatenate([boxes / scale, prob[0, ys, xs, 1:2]], axis=1).astype(np.float64)
            levels.append(nms(rows, NMS_PNET_SCALE, "union"))
        if not levels:
            return np.zeros((0, 5))
        return to_square(nms(np.concatenate(levels), NMS_PNET_ALL, "union"))

    def _refine(self, norm: np.ndarray, rows: np.ndarray) -> np.ndarray:
        reg, prob = self.rnet(crop_and_resize(norm, rows, 24))
        rows = rows.copy()
        rows[:, 4] = prob[:, 1]
        rows = regress(rows, reg)
        rows = rows[rows[:, 4] > RNET_THRESHOLD]
        return to_square(nms(rows, NMS_RNET, "union"))

    def _output(self, norm: np.ndarray, rows: np.ndarray) -> np.ndarray:
        reg, marks, prob = self.onet(crop_and_resize(norm, rows, 48))
        w = rows[:, 2:3] - rows[:, 0:1] + 1
        h = rows[:, 3:4] - rows[:, 1:2] + 1
        lx = w * marks[:, 0:5] + rows[:, 0:1] - 1
        ly = h * marks[:, 5:10] + rows[:, 1:2] - 1
        out = rows.copy()
        out[:, 4] = prob[:, 1]
        out = np.concatenate([regress(out, reg), lx, ly], axis=1)
        out = out[out[:, 4] > self.cfg.score_threshold]
        return nms(out, NMS_ONET, "min")
