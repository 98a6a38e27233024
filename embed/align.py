"""Face alignment: the 5-point similarity warp of cv2.FaceRecognizerSF.alignCrop, and a box crop.

Embedders are trained on faces warped onto fixed eye/nose/mouth positions; feeding them the same
warp as their reference implementation is what makes published thresholds hold.
"""

from __future__ import annotations

import cv2
import numpy as np

from bus.errors import FacestreamError

# OpenCV's face_recognize.cpp template for 112x112 (ArcFace layout), in YuNet's landmark order:
# right eye, left eye, nose tip, right mouth corner, left mouth corner (as seen in the image: x grows).
REFERENCE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
# OpenCV hard-codes the template mean rounded to 4 decimals; kept so the warp matches to the bit.
REFERENCE_MEAN_112 = np.array([56.0262, 71.9008], dtype=np.float32)
_FLT_MIN = float(np.finfo(np.float32).tiny)


def similarity_transform(src: np.ndarray, dst: np.ndarray, dst_mean: np.ndarray) -> np.ndarray:
    """Umeyama least-squares similarity (rotation, uniform scale, shift) mapping src onto dst.

    Follows OpenCV's getSimilarityTransformMatrix step by step (float32 points, float64 sums).
    """
    src = np.asarray(src, dtype=np.float32)
    dst = np.asarray(dst, dtype=np.float32)
    n = src.shape[0]
    total = np.zeros(2, np.float32)
    for point in src:  # sequential float32 sums, as in OpenCV
        total = (total + point).astype(np.float32)
    src_mean = (total / np.float32(n)).astype(np.float32)
    src_demean = src - src_mean
    dst_demean = dst - dst_mean.astype(np.float32)
    # A[i][j] = mean over points of dst_demean[:, i] * src_demean[:, j] (products in float32)
    a = np.zeros((2, 2), np.float64)
    for i in range(2):
        for j in range(2):
            a[i, j] = float(np.sum((dst_demean[:, i] * src_demean[:, j]).astype(np.float64))) / n
    d = np.ones(2, np.float64)
    if np.linalg.det(a) < 0:
        d[1] = -1.0
    u, s, vt = np.linalg.svd(a)
    tol = float(s.max()) * 2 * _FLT_MIN
    rank = int((s > tol).sum())
    if rank == 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        t = u @ np.diag([d[0], -1.0]) @ vt
    elif rank == 1:
        t = u @ vt
    else:
        t = u @ np.diag(d) @ vt
    var = float(np.sum((src_demean * src_demean).astype(np.float64))) / n
    scale = (s[0] * d[0] + s[1] * d[1]) / var
    m = np.zeros((2, 3), np.float64)
    m[:, :2] = t * scale
    m[:, 2] = dst_mean.astype(np.float64) - scale * (t @ src_mean.astype(np.float64))
    return m


def reference_points(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The 112x112 template (and its mean) scaled to another (width, height)."""
    w, h = size
    factor = np.array([w / 112.0, h / 112.0], dtype=np.float32)
    return REFERENCE_112 * factor, REFERENCE_MEAN_112 * factor


def _check(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise FacestreamError("alignment needs a uint8 image (HxW or HxWxC)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FacestreamError(f"alignment got an empty image {image.shape}")


def align_5point(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """Warp the face so its 5 landmarks (image pixels, YuNet order) land on the template."""
    _check(image)
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise FacestreamError(f"5-point alignment needs (5, 2) finite landmarks, got {lm.shape}")
    dst, dst_mean = reference_points(size)
    matrix = similarity_transform(lm, dst, dst_mean)
    return cv2.warpAffine(image, matrix, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def align_box(
    image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int] = (112, 112)
) -> np.ndarray:
    """Crop the smallest region of the output's aspect ratio around the box (centred), resized.

    Parts outside the image are black, so a face at the border is not stretched.
    """
    _check(image)
    x, y, bw, bh = (float(v) for v in box)
    out_w, out_h = int(size[0]), int(size[1])
    if not (bw > 0 and bh > 0) or not np.isfinite([x, y, bw, bh]).all():
        raise FacestreamError(f"box alignment needs a box with positive size, got {box!r}")
    crop_h = max(bh, bw * out_h / out_w)
    crop_w = crop_h * out_w / out_h
    cx, cy = x + bw / 2.0, y + bh / 2.0
    sx, sy = out_w / crop_w, out_h / crop_h
    left, top = cx - crop_w / 2.0, cy - crop_h / 2.0
    if sx < 1.0:
        # Shrinking: warpAffine has no area filter, so cut the region (black border) and resize.
        return _crop_resize(image, left, top, crop_w, crop_h, (out_w, out_h))
    # Pixel centres: output pixel u samples input x = left + (u + 0.5) / sx - 0.5.
    matrix = np.array(
        [[sx, 0.0, sx * (0.5 - left) - 0.5], [0.0, sy, sy * (0.5 - top) - 0.5]], dtype=np.float64
    )
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR)


def _crop_resize(
    image: np.ndarray, left: float, top: float, w: float, h: float, size: tuple[int, int]
) -> np.ndarray:
    x0, y0 = round(left), round(top)
    x1, y1 = max(x0 + 1, round(left + w)), max(y0 + 1, round(top + h))
    ih, iw = image.shape[:2]
    pad = (max(0, -y0), max(0, y1 - ih), max(0, -x0), max(0, x1 - iw))
    region = image[max(0, y0) : min(ih, y1), max(0, x0) : min(iw, x1)]
    if region.size == 0:
        shape = (size[1], size[0], *image.shape[2:])
        return np.zeros(shape, np.uint8)
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(region, size, interpolation=cv2.INTER_AREA)
