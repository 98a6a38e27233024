"""Box arithmetic that detect (tracking) and match (joining tracks) must agree on."""

from __future__ import annotations

Box = tuple[float, float, float, float]  # x, y, w, h


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two x, y, w, h boxes; 0 when they do not overlap."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0
