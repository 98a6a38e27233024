"""Triplet loss with in-batch mining (written in keras.ops, so any Keras backend can train with it).

- batch-hard (Hermans et al. 2017): per anchor, its farthest positive against its closest negative.
- semi-hard (Schroff et al. 2015, FaceNet): per anchor-positive pair, the closest negative that is
  still farther than the positive; when there is none, the farthest negative.
Distances are Euclidean (not squared); the loss is the mean hinge over the anchors (batch-hard)
or the anchor-positive pairs (semi-hard) that have both a positive and a negative in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from keras import ops

Mining = Literal["batch_hard", "semi_hard"]
MINING: tuple[str, ...] = ("batch_hard", "semi_hard")


def pairwise_distances(embeddings: Any) -> Any:
    """(n, n) Euclidean distances; the gradient stays finite where a distance is 0."""
    dot = ops.matmul(embeddings, ops.transpose(embeddings))
    sq = ops.diagonal(dot)
    d2 = ops.maximum(ops.expand_dims(sq, 1) - 2.0 * dot + ops.expand_dims(sq, 0), 0.0)
    zero = ops.cast(ops.equal(d2, 0.0), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


def _masks(labels: Any) -> tuple[Any, Any]:
    labels = ops.reshape(labels, (-1,))
    same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
    eye = ops.cast(ops.eye(ops.shape(labels)[0]), "bool")
    return ops.logical_and(same, ops.logical_not(eye)), ops.logical_not(same)


def _mean_over(values: Any, valid: Any) -> Any:
    valid_f = ops.cast(valid, values.dtype)
    return ops.sum(values * valid_f) / ops.maximum(ops.sum(valid_f), 1.0)


def batch_hard(labels: Any, embeddings: Any, margin: float) -> Any:
    dist = pairwise_distances(embeddings)
    pos, neg = _masks(labels)
    pos_f, neg_f = ops.cast(pos, dist.dtype), ops.cast(neg, dist.dtype)
    hardest_pos = ops.max(dist * pos_f, axis=1)
    far = ops.max(dist, axis=1, keepdims=True)
    hardest_neg = ops.min(dist + far * (1.0 - neg_f), axis=1)
    valid = ops.logical_and(ops.any(pos, axis=1), ops.any(neg, axis=1))
    return _mean_over(ops.relu(hardest_pos - hardest_neg + margin), valid)


def semi_hard(labels: Any, embeddings: Any, margin: float) -> Any:
    dist = pairwise_distances(embeddings)
    pos, neg = _masks(labels)
    big = ops.max(dist) + 1.0
    d_ap = ops.expand_dims(dist, 2)  # [a, p, 1]
    d_an = ops.expand_dims(dist, 1)  # [a, 1, n]
    neg3 = ops.expand_dims(neg, 1)
    semi = ops.logical_and(neg3, ops.greater(d_an, d_ap))  # [a, p, n]
    closest_semi = ops.min(ops.where(semi, d_an, big), axis=2)  # [a, p]
    farthest_neg = ops.max(ops.where(neg, dist, -big), axis=1, keepdims=True)  # [a, 1]
    chosen = ops.where(ops.any(semi, axis=2), closest_semi, farthest_neg)
    valid = ops.logical_and(pos, ops.any(neg, axis=1, keepdims=True))
    return _mean_over(ops.relu(dist - chosen + margin), valid)


def triplet_loss(labels: Any, embeddings: Any, margin: float = 0.2, mining: str = "batch_hard") -> Any:
    """Scalar loss for one batch of integer labels (n,) and embeddings (n, d)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    embeddings = ops.cast(embeddings, "float32")
    if mining == "batch_hard":
        return batch_hard(labels, embeddings, margin)
    if mining == "semi_hard":
        return semi_hard(labels, embeddings, margin)
    raise ValueError(f"mining must be one of {', '.join(MINING)}, got {mining!r}")


def make_loss(margin: float, mining: str) -> Callable[[Any, Any], Any]:
    """A Keras loss `fn(y_true=labels, y_pred=embeddings)`."""
    if mining not in MINING:
        raise ValueError(f"mining must be one of {', '.join(MINING)}, got {mining!r}")

    def loss(y_true: Any, y_pred: Any) -> Any:
        return triplet_loss(y_true, y_pred, margin=margin, mining=mining)

    loss.__name__ = f"triplet_{mining}"
    return loss


__all__ = ["MINING", "make_loss", "pairwise_distances", "triplet_loss"]
