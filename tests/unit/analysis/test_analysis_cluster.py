"""`facestream cluster` on real photos of 3-4 people: same-person photos must end up together."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis.clustering import inverse_purity, purity
from faces.enroll import enrollment_items
from tests.unit.analysis.conftest import layout, run_cli
from tests.unit.analysis.test_analysis_calibrate import assert_png


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "clusters.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_suggested_k_groups_four_people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = layout(tmp_path / "photos", ["obama", "macron", "ardern", "biden"])
    out = tmp_path / "out"
    assert run_cli(["cluster", str(folder), "--out", str(out), "-q", "--copy"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["faces"] == 8
    assert report["suggested_k"] == 4 and report["k"] == 4
    assert report["cluster_sizes"] == [3, 2, 2, 1]
    assert report["folder_purity"] == 1.0 and report["folder_inverse_purity"] == 1.0
    rows = _rows(out)
    assert list(rows[0]) == [
        "path",
        "face",
        "cluster",
        "x",
        "y",
        "box_x",
        "box_y",
        "box_w",
        "box_h",
        "folder",
    ]
    person = [Path(r["path"]).parent.name for r in rows]
    clusters = [int(r["cluster"]) for r in rows]
    # checked from the CSV alone, not from the command's own numbers
    assert purity(clusters, person) == 1.0 and inverse_purity(clusters, person) == 1.0
    assert all(float(r["x"]) == float(r["x"]) and r["face"] == "0" for r in rows)
    # folders: cluster_00 holds the three Obama photos; each folder is one person
    folders = sorted((out / "clusters").iterdir())
    assert [f.name for f in folders] == ["cluster_00", "cluster_01", "cluster_02", "cluster_03"]
    people_in = [{p.name.split("__")[0] for p in f.iterdir()} for f in folders]
    assert people_in[0] == {"obama"} and all(len(s) == 1 for s in people_in)
    assert sum(len(list(f.iterdir())) for f in folders) == 8
    # the folders are ready for `facestream enroll GALLERY clusters/` once renamed
    assert {name for name, _ in enrollment_items(out / "clusters")} == {f.name for f in folders}
    assert_png(out / "elbow.png")
    assert_png(out / "scatter.png")
    printed = capsys.readouterr().out
    assert "suggested K=4" in printed and "purity 100.00%" in printed


def test_forced_k_on_three_people_and_rerun_replaces_folders(tmp_path: Path) -> None:
    folder = layout(tmp_path / "photos", ["obama", "macron", "ardern"])
    out = tmp_path / "out"
    (out / "clusters" / "cluster_07").mkdir(parents=True)  # left over from an earlier run
    (out / "clusters" / "jacinda").mkdir()  # a cluster the user already named: kept
    assert (
        run_cli(["cluster", str(folder), "--out", str(out), "-q", "--k", "3", "--max-k", "4", "--copy"]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["k"] == 3 and report["ks"] == [1, 2, 3, 4]
    assert report["suggested_k"] == 3
    rows = _rows(out)
    assert purity([int(r["cluster"]) for r in rows], [r["folder"] for r in rows]) == 1.0
    names = sorted(p.name for p in (out / "clusters").iterdir())
    assert names == ["cluster_00", "cluster_01", "cluster_02", "jacinda"]


def test_forced_k_too_small_mixes_people(tmp_path: Path) -> None:
    folder = layout(tmp_path / "photos", ["obama", "macron", "ardern"])
    out = tmp_path / "out"
    assert run_cli(["cluster", str(folder), "--out", str(out), "-q", "--k", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["k"] == 2 and report["folder_purity"] < 1.0
    assert not (out / "clusters").exists()  # no --copy: CSV only
    assert (out / "clusters.csv").is_file()


def test_output_folder_inside_the_input_is_not_read(tmp_path: Path) -> None:
    folder = layout(tmp_path / "photos", ["macron", "sunak"])
    out = folder / "facestream-cluster"
    for _ in range(2):  # the second run must not cluster the first run's copies and plots
        assert run_cli(["cluster", str(folder), "--out", str(out), "-q", "--copy"]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["images"] == 3 and report["faces"] == 3
