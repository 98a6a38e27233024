"""Put each camera's frames back in the order detect sent them, before they are named.

Frames reach match on two paths: those with a face to embed through embed (tens of ms to
seconds later, with the load), the others straight from detect. Named as they arrive, the
frames after a new face would all say "not known yet" until its embedding came in, and, worse,
the frames after an embedding that withdraws a name would still show the old name. So every
frame names the frame it follows (`after`, the seq its detect worker sent before it for that
camera) and waits here until that one has been handled, or `wait_s` at most (a frame dropped on
the way must not hold the rest up for long).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bus.records import Embeddings

REMEMBERED = 512  # handled seqs kept per camera


@dataclass
class _Camera:
    done: set[int] = field(default_factory=set)
    done_order: deque[int] = field(default_factory=deque)
    waiting: dict[int, list[tuple[Embeddings, float]]] = field(default_factory=dict)  # after -> records

    def handled(self, seq: int) -> None:
        self.done.add(seq)
        self.done_order.append(seq)
        if len(self.done_order) > REMEMBERED:
            self.done.discard(self.done_order.popleft())

    def ready(self, record: Embeddings) -> bool:
        after = record.after
        if after is None or after in self.done:
            return True
        # The frame it follows is older than anything remembered: it was handled long ago.
        return bool(self.done_order) and len(self.done_order) >= REMEMBERED and after < min(self.done_order)


@dataclass
class InOrder:
    wait_s: float = 0.5
    _cameras: dict[str, _Camera] = field(default_factory=dict)
    released_early: int = 0  # frames let go after wait_s without the frame they follow

    def add(self, record: Embeddings, now: float) -> list[Embeddings]:
        """The records ready to be named now, in order: this one and those that waited for it."""
        cam = self._cameras.setdefault(record.camera_id, _Camera())
        if not cam.ready(record):
            assert record.after is not None
            cam.waiting.setdefault(record.after, []).append((record, now))
            return []
        return self._release(cam, [record])

    def _release(self, cam: _Camera, records: list[Embeddings]) -> list[Embeddings]:
        out = []
        todo = deque(records)
        while todo:
            record = todo.popleft()
            out.append(record)
            cam.handled(record.seq)
            todo.extend(rec for rec, _ in cam.waiting.pop(record.seq, []))
        return out

    def due(self, now: float) -> list[Embeddings]:
        """Records that waited `wait_s` for a frame that never came, oldest first, with their followers."""
        out: list[Embeddings] = []
        for cam in self._cameras.values():
            late = sorted(
                (
                    after
                    for after, items in cam.waiting.items()
                    if any(now - since >= self.wait_s for _, since in items)
                ),
                key=lambda after: min(rec.seq for rec, _ in cam.waiting[after]),
            )
            for after in late:
                items = cam.waiting.pop(after, [])  # may have gone already with an earlier release
                self.released_early += len(items)
                out.extend(self._release(cam, sorted((rec for rec, _ in items), key=lambda r: r.seq)))
        return out

    def flush(self, camera: str) -> list[Embeddings]:
        """Everything of a camera that is still waiting (its end came), in seq order."""
        cam = self._cameras.pop(camera, None)
        if cam is None:
            return []
        return sorted((rec for items in cam.waiting.values() for rec, _ in items), key=lambda r: r.seq)

    def __len__(self) -> int:
        return sum(len(items) for c in self._cameras.values() for items in c.waiting.values())
