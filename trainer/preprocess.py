"""BGR uint8 crops -> the network input a model card describes (the same arithmetic as embed's)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bus.model_card import ModelCard


def to_input(crops_bgr: Sequence[np.ndarray] | np.ndarray, card: ModelCard) -> np.ndarray:
    """(n, h, w, c) float32 in the card's colour order, (pixels - mean) / std; NCHW if the card says so."""
    rows = []
    for img in crops_bgr:
        if img.shape[:2] != (card.input_height, card.input_width):
            img = cv2.resize(img, (card.input_width, card.input_height), interpolation=cv2.INTER_AREA)
        if card.color_order == "RGB":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif card.color_order == "GRAY":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
        rows.append(img)
    batch = np.stack(rows).astype(np.float32)
    channels = batch.shape[3]
    mean = np.asarray(card.mean[:channels], np.float32)
    std = np.asarray(card.std[:channels], np.float32)
    batch = (batch - mean) / std
    if card.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, np.float32)
