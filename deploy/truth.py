"""Score what the pipeline showed (results.jsonl) against a video's truth (deploy.scenes).

Two questions, asked of every frame the overlay showed:
- Was a wrong name shown? A name (not "Unknown", not pending) on a box whose face is someone
  else, or on a box where no face is. Strangers named are the part of these on people who are
  not enrolled. The product's promise is that there are none, at any load.
- How much was named right? The share of enrolled people's face-frames that carry a box
  (IoU >= 0.5 with the truth) with their name. Frames shown without a result count as misses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.geometry import Box, box_iou

UNKNOWN = "Unknown"
BOX_IOU = 0.5  # a box "on" a face, for the named-right share
SAME_FACE_IOU = 0.3  # a box meant for a face, for the wrong-name check (lagging boxes included)


@dataclass(frozen=True)
class WrongName:
    seq: int
    shown: str
    truth: str | None  # None: no face there at all
    tracked: bool  # the box was carried by its track, not detected in that frame

    def __str__(self) -> str:
        where = f"on {self.truth}" if self.truth is not None else "where no face is"
        how = " (tracked box)" if self.tracked else ""
        return f"frame {self.seq}: {self.shown!r} {where}{how}"


@dataclass
class TruthScore:
    frames: int = 0  # frames shown
    frames_with_result: int = 0
    face_frames: int = 0  # enrolled people's faces, summed over the frames shown
    named_right: int = 0
    stranger_frames: int = 0
    wrong: list[WrongName] = field(default_factory=list)
    per_person: dict[str, list[int]] = field(default_factory=dict)  # name -> [named right, seen]

    @property
    def share(self) -> float:
        return self.named_right / self.face_frames if self.face_frames else 0.0

    @property
    def strangers_named(self) -> int:
        return sum(1 for w in self.wrong if w.truth == UNKNOWN)

    def summary(self) -> str:
        return (
            f"{len(self.wrong)} wrong names ({self.strangers_named} on strangers); "
            f"{self.named_right}/{self.face_frames} face-frames of enrolled people named right "
            f"({100 * self.share:.1f} %) over {self.frames} frames ({self.frames_with_result} with a result)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "frames_with_result": self.frames_with_result,
            "face_frames": self.face_frames,
            "named_right": self.named_right,
            "share": round(self.share, 4),
            "wrong_names": len(self.wrong),
            "strangers_named": self.strangers_named,
            "wrong": [str(w) for w in self.wrong[:20]],
            "per_person": {
                k: {"named_right": v[0], "face_frames": v[1]} for k, v in sorted(self.per_person.items())
            },
        }


def load_truth(path: Path) -> dict[int, list[dict[str, Any]]]:
    """seq -> the truth faces of that frame."""
    data = json.loads(Path(path).read_text())
    return {int(f["seq"]): f["faces"] for f in data["frames"]}


def load_results(path: Path, camera_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    return [r for r in lines if r["camera_id"] == camera_id]


def _best(box: list[float], faces: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, float]:
    best, best_iou = None, 0.0
    for face in faces:
        overlap = box_iou(tuple(box), tuple(face["box"]))  # type: ignore[arg-type]
        if overlap > best_iou:
            best, best_iou = face, overlap
    return best, best_iou


def score(results: list[dict[str, Any]], truth: dict[int, list[dict[str, Any]]]) -> TruthScore:
    out = TruthScore()
    for line in results:
        seq = int(line["seq"])
        if seq not in truth:
            continue
        out.frames += 1
        out.frames_with_result += bool(line.get("result", True))
        real = truth[seq]
        shown = line["faces"]
        for face in shown:
            name = face.get("name")
            if name is None or name == UNKNOWN:
                continue
            match, overlap = _best(face["box"], real)
            if match is None or overlap < SAME_FACE_IOU:
                out.wrong.append(WrongName(seq, name, None, bool(face.get("tracked"))))
            elif match["name"] != name:
                out.wrong.append(WrongName(seq, name, match["name"], bool(face.get("tracked"))))
        for person in real:
            if person["name"] == UNKNOWN:
                out.stranger_frames += 1
                continue
            out.face_frames += 1
            tally = out.per_person.setdefault(person["name"], [0, 0])
            tally[1] += 1
            right = any(
                f.get("name") == person["name"] and box_iou(tuple(f["box"]), tuple(person["box"])) >= BOX_IOU
                for f in shown
            )
            if right:
                out.named_right += 1
                tally[0] += 1
    return out


def boxes_agree(shown: list[Box], reference: list[Box], iou: float = BOX_IOU) -> bool:
    """Whether two sets of boxes describe the same faces: each has a partner (IoU >= iou) in the
    other, one to one. Used to price skipped detections against a detection on every frame."""
    if len(shown) != len(reference):
        return False
    free = list(reference)
    for box in sorted(shown, key=lambda b: -b[2] * b[3]):
        best = max(free, key=lambda r: box_iou(box, r), default=None)
        if best is None or box_iou(box, best) < iou:
            return False
        free.remove(best)
    return True
