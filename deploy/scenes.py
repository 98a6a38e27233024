"""Videos with known truth: real face photos moving over a background, and who is where in each frame.

A scene is a list of actors, each a face cut from a photo (soft-edged, so no rectangle gives it
away) that follows keyframes of position, face size and roll. Every frame's truth lists each
visible face with its box (the photo's detected face box carried through the actor's scale,
roll and position) and the name the pipeline must show on it ("Unknown" for people who are not
enrolled). Tests and the bench run the real pipeline on these videos and score what it showed
(deploy.truth); nothing here decides anything the pipeline does.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.errors import FacestreamError
from bus.records import Face
from detect.base import Detector
from faces.images import read_image

UNKNOWN = "Unknown"
SPRITE_CONTEXT = 2.4  # sprite side over face box side: hair, chin and room to roll
MASK_AXES = (0.78, 0.95)  # the visible ellipse around the face, as fractions of the box w, h
FEATHER = 0.12  # edge softness, as a fraction of the box side


@dataclass(frozen=True)
class Key:
    """Where an actor's face is at one frame: centre (px), face box side (px), roll (degrees)."""

    frame: int
    x: float
    y: float
    size: float
    roll: float = 0.0


@dataclass(frozen=True)
class Actor:
    photo: Path
    name: str  # what the pipeline must say: the enrolled name, or "Unknown"
    keys: tuple[Key, ...]  # at least one; the actor is on screen from the first to the last key

    def at(self, frame: int) -> Key | None:
        """The interpolated key at `frame`, None when the actor is off screen."""
        keys = self.keys
        if frame < keys[0].frame or frame > keys[-1].frame:
            return None
        for a, b in itertools.pairwise(keys):
            if a.frame <= frame <= b.frame:
                t = 0.0 if b.frame == a.frame else (frame - a.frame) / (b.frame - a.frame)
                return Key(
                    frame,
                    a.x + t * (b.x - a.x),
                    a.y + t * (b.y - a.y),
                    a.size + t * (b.size - a.size),
                    a.roll + t * (b.roll - a.roll),
                )
        return keys[0]


@dataclass(frozen=True)
class Scene:
    name: str
    frames: int
    actors: tuple[Actor, ...]
    size: tuple[int, int] = (640, 480)
    fps: float = 15.0
    noise: float = 2.0  # sensor noise (grey levels, std), new in every frame
    seed: int = 0


@dataclass
class Sprite:
    """A face cut out of a photo: pixels, a soft mask, and the face box inside it."""

    image: np.ndarray
    mask: np.ndarray  # float32 in [0, 1]
    box: tuple[float, float, float, float]  # the face box in sprite pixels

    @classmethod
    def from_photo(cls, path: Path, detector: Detector) -> Sprite:
        photo = read_image(path)
        faces = detector.detect(photo)
        if not faces:
            raise FacestreamError(f"no face found in {path} to make a scene actor of")
        face: Face = max(faces, key=lambda f: f.box[2] * f.box[3])
        x, y, w, h = face.box
        side = round(max(w, h) * SPRITE_CONTEXT)
        x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]], np.float32)
        image = cv2.warpAffine(photo, shift, (side, side), borderMode=cv2.BORDER_REPLICATE)
        box = (x - x0, y - y0, w, h)
        ellipse = np.zeros((side, side), np.float32)
        centre = (round(box[0] + w / 2), round(box[1] + h / 2 + 0.05 * h))
        axes = (round(w * MASK_AXES[0]), round(h * MASK_AXES[1]))
        cv2.ellipse(ellipse, centre, axes, 0.0, 0.0, 360.0, 1.0, -1)
        sigma = max(1.0, FEATHER * max(w, h))
        mask = np.asarray(cv2.GaussianBlur(ellipse, (0, 0), sigma), np.float32)
        return cls(image, mask, box)


def background(size: tuple[int, int], seed: int) -> np.ndarray:
    """A still, textured backdrop: smooth colour gradients and blobs, like a wall and furniture."""
    w, h = size
    rng = np.random.default_rng(seed)
    tone = rng.uniform(70, 170, (6, 8, 1))
    low = (tone + rng.uniform(-18, 18, (6, 8, 3))).astype(np.float32)  # muted colours
    grain = rng.normal(0, 6, (h // 4, w // 4, 3)).astype(np.float32)
    image = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) + cv2.resize(grain, (w, h))
    return np.clip(image, 0, 255).astype(np.uint8)


def _place(sprite: Sprite, key: Key) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The similarity transform that puts the sprite's face at the key, and the face's truth box.

    The box keeps the face's own width and height (scaled), centred where the face now is: a
    detector frames a rolled face about as tightly as an upright one.
    """
    bx, by, bw, bh = sprite.box
    scale = key.size / max(bw, bh)
    matrix = cv2.getRotationMatrix2D((bx + bw / 2, by + bh / 2), key.roll, scale)
    matrix[:, 2] += np.array([key.x - (bx + bw / 2), key.y - (by + bh / 2)], np.float64)
    w, h = bw * scale, bh * scale
    return matrix, (key.x - w / 2, key.y - h / 2, w, h)


def render(
    scene: Scene, sprites: dict[Path, Sprite], frame: int, base: np.ndarray
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One frame of the scene and its truth (later actors are drawn over earlier ones)."""
    w, h = scene.size
    canvas = base.astype(np.float32)
    truth = []
    for index, actor in enumerate(scene.actors):
        key = actor.at(frame)
        if key is None:
            continue
        sprite = sprites[actor.photo]
        matrix, box = _place(sprite, key)
        pixels = cv2.warpAffine(
            sprite.image, matrix, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        alpha = cv2.warpAffine(sprite.mask, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)[
            ..., None
        ]
        canvas = canvas * (1.0 - alpha) + pixels.astype(np.float32) * alpha
        truth.append({"actor": index, "name": actor.name, "box": [round(v, 1) for v in box]})
    if scene.noise > 0:
        rng = np.random.default_rng(scene.seed * 100_003 + frame)
        canvas += rng.normal(0.0, scene.noise, canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8), truth


def iter_frames(scene: Scene, detector: Detector) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Every frame of the scene with its truth, rendered in memory."""
    sprites = {a.photo: Sprite.from_photo(a.photo, detector) for a in scene.actors}
    base = background(scene.size, scene.seed)
    for i in range(scene.frames):
        yield render(scene, sprites, i, base)


def write_scene(scene: Scene, video: Path, detector: Detector) -> Path:
    """Render the scene to an MP4 (mp4v) and its truth beside it (`<video>.truth.json`)."""
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), scene.fps, scene.size)
    if not writer.isOpened():
        raise FacestreamError(f"cannot write {video}")
    frames = []
    try:
        for i, (image, faces) in enumerate(iter_frames(scene, detector)):
            writer.write(image)
            frames.append({"seq": i, "faces": faces})
    finally:
        writer.release()
    truth_path = truth_file(video)
    truth = {"scene": scene.name, "fps": scene.fps, "size": list(scene.size), "frames": frames}
    truth_path.write_text(json.dumps(truth, separators=(",", ":")))
    return truth_path


def truth_file(video: Path) -> Path:
    return video.with_name(video.stem + ".truth.json")


@dataclass(frozen=True)
class Cast:
    """Which demo photos play whom: enrolled people are shown with a photo other than the enrolled one."""

    photos: Path
    enrolled: dict[str, str] = field(
        default_factory=lambda: {"macron": "macron_2.jpg", "ardern": "ardern_2.jpg", "obama": "obama_2.jpg"}
    )
    strangers: tuple[str, ...] = ("sunak_1.jpg", "biden_1.jpg")

    def person(self, name: str) -> tuple[Path, str]:
        return self.photos / self.enrolled[name], name

    def stranger(self, index: int) -> tuple[Path, str]:
        return self.photos / self.strangers[index], UNKNOWN


def crowd_scene(cast: Cast, frames: int = 180, fps: float = 15.0) -> Scene:
    """Several faces at once, 50-200 px: walking, growing, one rolled 30 degrees, two strangers,
    and one person replaced by a stranger at the very same place (then back)."""
    last = frames - 1
    third = frames // 3

    def actor(who: tuple[Path, str], *keys: Key) -> Actor:
        return Actor(who[0], who[1], keys)

    return Scene(
        "crowd",
        frames,
        (
            # walks towards the camera: 50 px far away, 190 px close
            actor(cast.person("macron"), Key(0, 90, 140, 50), Key(last, 180, 300, 190)),
            # rolled 30 degrees, crossing the frame
            actor(cast.person("ardern"), Key(0, 560, 110, 95, 30.0), Key(last, 420, 140, 95, 30.0)),
            # a stranger walking across
            actor(cast.stranger(0), Key(0, 320, 432, 70), Key(last, 580, 428, 70)),
            # obama sits still, a stranger takes his place in the same spot, then obama again
            actor(cast.person("obama"), Key(0, 470, 300, 120), Key(third - 1, 470, 300, 120)),
            actor(cast.stranger(1), Key(third, 470, 300, 120), Key(2 * third - 1, 470, 300, 120)),
            actor(cast.person("obama"), Key(2 * third, 470, 300, 120), Key(last, 470, 300, 120)),
        ),
        fps=fps,
    )


def empty_scene(cast: Cast, frames: int = 90, fps: float = 15.0) -> Scene:
    """Nobody: a still room with sensor noise."""
    return Scene("empty", frames, (), fps=fps, seed=1)


def still_person(cast: Cast, frames: int = 90, fps: float = 15.0) -> Scene:
    """Someone at a desk: one face that does not move."""
    return Scene(
        "still",
        frames,
        (Actor(*cast.person("obama"), (Key(0, 320, 230, 130), Key(frames - 1, 320, 230, 130))),),
        fps=fps,
        seed=2,
    )


def walking_person(cast: Cast, frames: int = 90, fps: float = 15.0) -> Scene:
    """One person walking across the room, getting a little closer."""
    last = frames - 1
    return Scene(
        "walking",
        frames,
        (Actor(*cast.person("macron"), (Key(0, 90, 220, 90), Key(last, 560, 260, 120))),),
        fps=fps,
        seed=3,
    )


def crowd_of_six(cast: Cast, frames: int = 90, fps: float = 15.0) -> Scene:
    """Six faces moving at once, 60-120 px, two of them strangers."""
    last = frames - 1
    obama_again = (cast.photos / "obama_3.jpg", "obama")
    paths = [
        (cast.person("macron"), Key(0, 70, 90, 80), Key(last, 250, 110, 80)),
        (cast.person("ardern"), Key(0, 560, 90, 90), Key(last, 400, 120, 90)),
        (cast.person("obama"), Key(0, 100, 380, 100), Key(last, 260, 360, 110)),
        (cast.stranger(0), Key(0, 580, 380, 95), Key(last, 440, 370, 95)),
        (cast.stranger(1), Key(0, 330, 240, 70), Key(last, 330, 200, 70)),
        (obama_again, Key(0, 470, 250, 60), Key(last, 560, 240, 60)),
    ]
    return Scene(
        "crowd6", frames, tuple(Actor(who[0], who[1], (a, b)) for who, a, b in paths), fps=fps, seed=4
    )
