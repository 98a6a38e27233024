"""Which photos an analysis reads: labelled `person/*.jpg` folders, loose photos, LFW pairs files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.protocol import stratified_folds
from bus.errors import FacestreamError
from faces.images import IMAGE_SUFFIXES, name_from_stem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str | None  # its person (folder, or name from the file name); None when unknown


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise FacestreamError(f"folder {folder} not found")
    if not folder.is_dir():
        raise FacestreamError(f"{folder} is not a folder (expected a folder of person/*.jpg)")
    return folder


def _inside(path: Path, exclude: Path | None) -> bool:
    return exclude is not None and path.resolve().is_relative_to(exclude.resolve())


def labelled_photos(folder: Path, exclude: Path | None = None) -> list[Photo]:
    """Labelled photos in the layouts `facestream enroll` reads: `folder/person/*.jpg` (the
    subfolder names the person) and `folder/person.jpg`, `folder/person_2.jpg` (the file name
    does), mixed as they come.

    `exclude` (the output folder, when it lies inside `folder`) is never read as a person.
    """
    folder = _folder(folder)
    people = sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and not _inside(p, exclude)
    )
    photos = [Photo(p, person.name) for person in people for p in sorted(person.iterdir()) if _is_image(p)]
    photos += [Photo(p, name_from_stem(p.stem)) for p in sorted(folder.iterdir()) if _is_image(p)]
    if not photos:
        raise FacestreamError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}: lay the photos out as "
            f"{folder}/NAME/*.jpg or {folder}/NAME_1.jpg, {folder}/NAME_2.jpg"
        )
    return photos


def any_photos(folder: Path, exclude: Path | None = None) -> list[Photo]:
    """Every image under `folder`, at any depth; the first-level subfolder, if any, is its label."""
    folder = _folder(folder)
    photos = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden or not _is_image(path) or _inside(path, exclude):
            continue
        rel = path.relative_to(folder).parts
        photos.append(Photo(path, rel[0] if len(rel) > 1 else None))
    if not photos:
        raise FacestreamError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return photos


def people_count(photos: list[Photo]) -> int:
    return len({p.label for p in photos if p.label is not None})


# --- pairs files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSpec:
    line: int  # 1-based line number in the file, for messages
    name1: str
    index1: int
    name2: str
    index2: int
    same: bool
    fold: int


def _index(token: str, path: Path, line: int) -> int:
    try:
        value = int(token)
    except ValueError:
        value = 0
    if value < 1:
        raise FacestreamError(f"{path}:{line}: image number {token!r} must be a positive integer")
    return value


def parse_pairs(path: Path, default_folds: int = 10) -> list[PairSpec]:
    """Read an LFW pairs file.

    Header: `FOLDS N` (FOLDS folds, each N same-person then N different-person lines, as in LFW's
    pairs.txt: `10 300`) or `N` (one fold, as in pairsDevTest.txt). Lines: `name i j` (same person)
    or `name1 i name2 j`. Without a header, pairs are dealt over `default_folds` stratified folds.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FacestreamError(f"cannot read pairs file {path}: {exc.strerror or exc}") from exc
    rows = [(n, ln.split()) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not rows:
        raise FacestreamError(f"pairs file {path} is empty")
    header: tuple[int, int] | None = None
    first = rows[0][1]
    if all(tok.isdigit() for tok in first) and len(first) in (1, 2):
        nums = [int(tok) for tok in first]
        header = (1, nums[0]) if len(nums) == 1 else (nums[0], nums[1])
        rows = rows[1:]
        if header[0] < 1 or header[1] < 1:
            raise FacestreamError(f"{path}:1: header must be 'FOLDS PAIRS' with positive numbers")
    specs = []
    for pos, (line, tokens) in enumerate(rows):
        fold = pos // (2 * header[1]) if header else 0
        if len(tokens) == 3:
            specs.append(
                PairSpec(
                    line,
                    tokens[0],
                    _index(tokens[1], path, line),
                    tokens[0],
                    _index(tokens[2], path, line),
                    True,
                    fold,
                )
            )
        elif len(tokens) == 4:
            i1, i2 = _index(tokens[1], path, line), _index(tokens[3], path, line)
            specs.append(PairSpec(line, tokens[0], i1, tokens[2], i2, tokens[0] == tokens[2], fold))
        else:
            raise FacestreamError(
                f"{path}:{line}: expected 'name i j' or 'name1 i name2 j', got {len(tokens)} fields"
            )
    if not specs:
        raise FacestreamError(f"pairs file {path} lists no pairs")
    if header is not None:
        expected = header[0] * 2 * header[1]
        if len(specs) != expected:
            raise FacestreamError(
                f"{path}: the header promises {header[0]} folds of {header[1]}+{header[1]} pairs "
                f"({expected} lines), the file has {len(specs)}"
            )
        return specs
    folds = stratified_folds(np.array([s.same for s in specs]), max(2, default_folds))
    return [
        PairSpec(s.line, s.name1, s.index1, s.name2, s.index2, s.same, int(f))
        for s, f in zip(specs, folds, strict=True)
    ]


class PhotoIndex:
    """Image number i of a person: `person_0001.jpg` (LFW), `person_1.jpg`, else the i-th by name."""

    def __init__(self, photos: list[Photo]) -> None:
        self._by_person: dict[str, list[Path]] = {}
        for p in photos:
            if p.label is not None:
                self._by_person.setdefault(p.label, []).append(p.path)
        for paths in self._by_person.values():
            paths.sort()

    def find(self, person: str, number: int) -> Path | None:
        paths = self._by_person.get(person)
        if not paths:
            return None
        stems = {p.stem: p for p in paths}
        for stem in (f"{person}_{number:04d}", f"{person}_{number}"):
            if stem in stems:
                return stems[stem]
        return paths[number - 1] if number <= len(paths) else None

    def resolve(self, spec: PairSpec, pairs_file: Path) -> tuple[Path, Path]:
        out = []
        for person, number in ((spec.name1, spec.index1), (spec.name2, spec.index2)):
            found = self.find(person, number)
            if found is None:
                raise FacestreamError(
                    f"{pairs_file}:{spec.line}: no image {number} of {person!r} in the folder "
                    f"(looked for {person}/{person}_{number:04d}.jpg, {person}_{number}.jpg, "
                    f"or photo #{number})"
                )
            out.append(found)
        return out[0], out[1]
