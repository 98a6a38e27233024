"""Folder layouts and LFW pairs files (LFW's own header formats and a header-less file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.dataset import PhotoIndex, any_photos, labelled_photos, parse_pairs
from bus.errors import FacestreamError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_labelled_photos_and_errors(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="not found"):
        labelled_photos(tmp_path / "nope")
    with pytest.raises(FacestreamError, match="no images"):
        labelled_photos(tmp_path)
    _touch(tmp_path / "loose.jpg")
    with pytest.raises(FacestreamError, match="is not a folder"):
        labelled_photos(tmp_path / "loose.jpg")
    (tmp_path / "empty_person").mkdir()
    _touch(tmp_path / "bob" / "b2.png")
    _touch(tmp_path / "bob" / "b1.jpg")
    _touch(tmp_path / "bob" / "notes.txt")
    _touch(tmp_path / "amy" / "a.JPG")
    photos = labelled_photos(tmp_path)
    assert [(p.label, p.path.name) for p in photos] == [
        ("amy", "a.JPG"),
        ("bob", "b1.jpg"),
        ("bob", "b2.png"),
        ("loose", "loose.jpg"),
    ]
    everything = any_photos(tmp_path)
    assert [(p.label, p.path.name) for p in everything] == [
        ("amy", "a.JPG"),
        ("bob", "b1.jpg"),
        ("bob", "b2.png"),
        (None, "loose.jpg"),
    ]


def test_flat_layout_of_enroll_is_labelled_by_file_name(tmp_path: Path) -> None:
    for name in ("ann_1.jpg", "ann_2.jpg", "bob.png", "bob-3.jpg", "cy_dee_1.jpg"):
        _touch(tmp_path / name)
    photos = labelled_photos(tmp_path)
    assert [(p.label, p.path.name) for p in photos] == [
        ("ann", "ann_1.jpg"),
        ("ann", "ann_2.jpg"),
        ("bob", "bob-3.jpg"),
        ("bob", "bob.png"),
        ("cy_dee", "cy_dee_1.jpg"),
    ]


def test_lfw_pairs_with_folds_header(tmp_path: Path) -> None:
    text = "2\t1\nAnn\t1\t2\nAnn\t1\tBob\t1\nBob\t1\t3\nBob\t2\tAnn\t2\n"
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    specs = parse_pairs(path, default_folds=10)
    assert [(s.name1, s.index1, s.name2, s.index2, s.same, s.fold, s.line) for s in specs] == [
        ("Ann", 1, "Ann", 2, True, 0, 2),
        ("Ann", 1, "Bob", 1, False, 0, 3),
        ("Bob", 1, "Bob", 3, True, 1, 4),
        ("Bob", 2, "Ann", 2, False, 1, 5),
    ]


def test_single_number_header_is_one_fold(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("1\nAnn 1 2\nAnn 1 Bob 1\n")
    assert {s.fold for s in parse_pairs(path)} == {0}


def test_no_header_gives_stratified_folds(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("Ann 1 2\nAnn 1 Bob 1\nBob 1 2\nBob 2 Ann 2\n")
    specs = parse_pairs(path, default_folds=2)
    assert [(s.same, s.fold) for s in specs] == [(True, 0), (False, 0), (True, 1), (False, 1)]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "is empty"),
        ("2 1\nAnn 1 2\nAnn 1 Bob 1\n", "promises 2 folds"),
        ("1\nAnn 1\n", "expected 'name i j'"),
        ("1\nAnn 1 x\nAnn 1 Bob 1\n", "must be a positive integer"),
        ("1\nAnn 0 2\nAnn 1 Bob 1\n", "must be a positive integer"),
    ],
)
def test_bad_pairs_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(FacestreamError, match=needle):
        parse_pairs(path)


def test_missing_pairs_file(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="cannot read pairs file"):
        parse_pairs(tmp_path / "none.txt")


def test_photo_index_lfw_names_then_order(tmp_path: Path) -> None:
    _touch(tmp_path / "Ann" / "Ann_0001.jpg")
    _touch(tmp_path / "Ann" / "Ann_0002.jpg")
    _touch(tmp_path / "Bob" / "Bob_2.jpg")
    _touch(tmp_path / "Bob" / "Bob_1.jpg")
    _touch(tmp_path / "Cy" / "z.jpg")
    _touch(tmp_path / "Cy" / "a.jpg")
    index = PhotoIndex(labelled_photos(tmp_path))
    assert index.find("Ann", 2) == tmp_path / "Ann" / "Ann_0002.jpg"
    assert index.find("Bob", 2) == tmp_path / "Bob" / "Bob_2.jpg"
    assert index.find("Cy", 1) == tmp_path / "Cy" / "a.jpg"  # name order
    assert index.find("Cy", 3) is None and index.find("Dee", 1) is None
    path = tmp_path / "pairs.txt"
    path.write_text("Ann 1 3\n")
    (spec,) = parse_pairs(path)
    with pytest.raises(FacestreamError, match=r"pairs.txt:1: no image 3 of 'Ann'"):
        index.resolve(spec, path)
