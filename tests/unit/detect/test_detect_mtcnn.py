"""MTCNN in numpy/cv2 + onnxruntime: hand-checked steps, and boxes equal to the mtcnn package's on real photos.

The ONNX files are exported from the package's bundled weights by the trainer (TensorFlow), so the
comparisons are marked `train`; the step functions need neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.mtcnn import MtcnnDetector, crop_and_resize, nms, overlap, regress, scale_pyramid, to_square


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_bundled_files_find_one_face_per_photo_without_tensorflow() -> None:
    import cv2

    from tests.conftest import PHOTOS

    det = MtcnnDetector(DetectConfig(backend="mtcnn", score_threshold=0.95))  # bundled: no mtcnn_dir
    for path in sorted(PHOTOS.glob("*.jpg")):
        image = cv2.imread(str(path))
        assert image is not None
        faces = det.detect(image)
        assert len(faces) == 1, (path.name, len(faces))
        assert faces[0].landmarks is not None and faces[0].score > 0.9


def test_missing_model_files(tmp_path: Path) -> None:
    (tmp_path / "pnet.onnx").write_bytes(b"")
    with pytest.raises(FacestreamError, match=r"missing: .*rnet\.onnx, .*onet\.onnx; write them with"):
        MtcnnDetector(DetectConfig(backend="mtcnn", mtcnn_dir=tmp_path))
    for name in ("rnet", "onet"):
        (tmp_path / f"{name}.onnx").write_bytes(b"junk")
    with pytest.raises(FacestreamError, match="not a usable ONNX model"):
        MtcnnDetector(DetectConfig(backend="mtcnn", mtcnn_dir=tmp_path))


def test_scale_pyramid_follows_mtcnn_rule() -> None:
    scales = scale_pyramid(640, 480, min_face=20)
    # round(log(480 / 12) / log(1 / 0.709) - 1) = round(9.73) = 10 levels from 12 / 20
    assert len(scales) == 10
    np.testing.assert_allclose(scales, 0.6 * 0.709 ** np.arange(10))
    assert int(480 * scales[-1]) >= 12
    assert len(scale_pyramid(11, 100, 20)) == 0


def test_nms_drops_rows_overlapping_any_better_row() -> None:
    rows = np.array(
        [
            [1, 1, 11, 11, 0.8],  # IoU 0.68 with the first
            [0, 0, 10, 10, 0.9],
            [2, 2, 12, 12, 0.7],  # IoU 0.47 with the first, 0.68 with the (dropped) second
            [30, 30, 40, 40, 0.6],
        ]
    )
    assert overlap(rows[:2, :4])[0, 1] == pytest.approx(81 / 119)
    kept = nms(rows, 0.5, "union")
    # mtcnn's rule: a dropped row still suppresses, so [2, 2, 12, 12] goes too (greedy NMS would keep it)
    assert kept[:, 4].tolist() == [0.9, 0.6]
    inner = np.array([[0, 0, 10, 10, 0.9], [2, 2, 5, 5, 0.95]])
    assert nms(inner, 0.7, "union")[:, 4].tolist() == [0.95, 0.9]
    assert nms(inner, 0.7, "min")[:, 4].tolist() == [0.95]  # inside a box: overlap over the smaller area = 1
    assert len(nms(np.zeros((0, 5)), 0.5)) == 0


def test_square_and_regression() -> None:
    np.testing.assert_allclose(to_square(np.array([[0.0, 0, 10, 4, 1]])), [[0, -3, 10, 7, 1]])
    got = regress(np.array([[10.0, 10, 19, 19, 0.5]]), np.array([[0.1, -0.1, 0.2, 0.0]]))
    np.testing.assert_allclose(got, [[11, 9, 21, 19, 0.5]])  # width = x2 - x1 + 1 = 10


def test_crop_and_resize_hand_case() -> None:
    image = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    # box = the whole image: TF maps [0, 3] onto pixel centres 0..2, so a 3x3 crop is the image
    np.testing.assert_allclose(crop_and_resize(image, np.array([[0.0, 0, 3, 3]]), 3)[0], image)
    out = crop_and_resize(image, np.array([[0.0, 0, 3, 3]]), 5)[0, :, :, 0]
    assert (
        out[0, 1] == pytest.approx(0.5)
        and out[2, 2] == pytest.approx(4.0)
        and out[4, 4] == pytest.approx(8.0)
    )
    # a box starting left of the image: columns sampled outside are zero
    left = crop_and_resize(image, np.array([[-3.0, 0, 3, 3]]), 3)[0, :, :, 0]
    assert left[:, 0].tolist() == [0, 0, 0] and left[:, 2].tolist() == [2, 5, 8]


# --- against the mtcnn package (TensorFlow) ------------------------------------------------


@pytest.fixture(scope="module")
def mtcnn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    pytest.importorskip("mtcnn")
    from trainer.export import export_mtcnn

    folder = tmp_path_factory.mktemp("mtcnn")
    report = export_mtcnn(folder, threads=2)
    assert set(report["parity_max_abs_diff"]) == {"pnet", "rnet", "onet"}
    assert max(report["parity_max_abs_diff"].values()) < 1e-4
    return folder


def test_bundled_files_equal_a_fresh_export(mtcnn_dir: Path) -> None:
    import onnxruntime as ort

    from detect.mtcnn import BUNDLED

    rng = np.random.default_rng(0)
    for name, size in (("pnet", 24), ("rnet", 24), ("onet", 48)):
        fresh = ort.InferenceSession(str(mtcnn_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        shipped = ort.InferenceSession(str(BUNDLED / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        feed = {fresh.get_inputs()[0].name: rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)}
        for a, b in zip(fresh.run(None, feed), shipped.run(None, feed), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.fixture(scope="module")
def reference() -> Any:
    pytest.importorskip("mtcnn")
    from mtcnn import MTCNN

    return MTCNN()


def detector(folder: Path, **kw: Any) -> MtcnnDetector:
    cfg = {
        "score_threshold": 0.8,
        "min_face": 20,
        "max_side": 2000,
        **kw,
    }  # the package's defaults, full size
    return MtcnnDetector(DetectConfig(backend="mtcnn", mtcnn_dir=folder, **cfg))


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = min(a.shape[0], b.shape[0])
    scale = [h / a.shape[0], h / b.shape[0]]
    parts = [cv2.resize(img, (round(img.shape[1] * s), h)) for img, s in zip((a, b), scale, strict=True)]
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


@pytest.mark.train
def test_boxes_match_the_mtcnn_package(
    mtcnn_dir: Path, reference: Any, photos: dict[str, np.ndarray]
) -> None:
    det = detector(mtcnn_dir)
    images = dict(photos)
    images["obama_1+ardern_1"] = side_by_side(photos["obama_1"], photos["ardern_1"])
    ious = []
    for name, image in images.items():
        want = reference.detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        got = det.detect(image)
        assert len(got) == len(want) >= 1, name
        for w in want:  # pair each of the package's faces with our best-overlapping one
            g = max(got, key=lambda f: box_iou(f.box, tuple(w["box"])))
            ious.append(box_iou(g.box, tuple(w["box"])))
            assert ious[-1] >= 0.9, (name, g.box, w["box"])
            assert g.score == pytest.approx(w["confidence"], abs=1e-3)
            kp = w["keypoints"]
            assert g.landmarks is not None
            order = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image left / right
            np.testing.assert_allclose(g.landmarks, np.array([kp[k] for k in order], np.float32), atol=1.5)
    assert len(det.detect(images["obama_1+ardern_1"])) == 2
    assert float(np.mean(ious)) > 0.95  # the package rounds its boxes to whole pixels


@pytest.mark.train
def test_unrounded_boxes_are_the_same(mtcnn_dir: Path, reference: Any, photos: dict[str, np.ndarray]) -> None:
    det = detector(mtcnn_dir)
    for name, image in photos.items():
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        # rows [image, x1, y1, x2, y2, score, landmark x1..x5, y1..y5], before rounding
        want = reference.detect_faces(rgb, output_type="numpy", box_format="xyxy")
        got = det.detect_rows(rgb)
        assert len(got) == len(want), name
        for row in want:
            best = max(got, key=lambda g: box_iou(xywh(g[:4]), xywh(row[1:5])))
            assert box_iou(xywh(best[:4]), xywh(row[1:5])) > 0.999, name
            np.testing.assert_allclose(best[5:15], row[6:16], atol=0.05)  # landmark x1..x5, y1..y5


def xywh(box: np.ndarray) -> tuple[float, ...]:
    return (float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1]))


@pytest.mark.train
def test_landmarks_in_yunet_order(mtcnn_dir: Path, photos: dict[str, np.ndarray], yunet: Any) -> None:
    det = detector(mtcnn_dir)
    for name, image in photos.items():
        ours, theirs = det.detect(image)[0], yunet.detect(image)[0]
        assert ours.landmarks is not None and theirs.landmarks is not None
        size = ours.box[2]
        # same point, same index: each landmark lies near YuNet's, far from the others
        dist = np.linalg.norm(ours.landmarks[:, None] - theirs.landmarks[None], axis=2)
        assert (np.argmin(dist, axis=1) == np.arange(5)).all(), name
        assert float(np.max(np.diag(dist))) < 0.2 * size, name


@pytest.mark.train
def test_crop_and_resize_equals_tensorflow(photos: dict[str, np.ndarray]) -> None:
    tf = pytest.importorskip("tensorflow")
    image = (photos["sunak_1"].astype(np.float32) - 127.5) / 128.0
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    x1, y1 = rng.uniform(-40, w - 20, 30), rng.uniform(-40, h - 20, 30)
    side = rng.uniform(12, 200, 30)
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1)
    for size in (24, 48):
        norm = boxes[:, [1, 0, 3, 2]] / np.array([h, w, h, w])
        want = tf.image.crop_and_resize(image[None], norm, np.zeros(30, np.int32), (size, size)).numpy()
        np.testing.assert_allclose(crop_and_resize(image, boxes, size), want, atol=1e-4)


@pytest.mark.train
def test_config_is_respected(mtcnn_dir: Path, photos: dict[str, np.ndarray], noise: np.ndarray) -> None:
    from detect.factory import make_detector

    made = make_detector(DetectConfig(backend="mtcnn", mtcnn_dir=mtcnn_dir))
    assert isinstance(made, MtcnnDetector) and made.name == "mtcnn"
    image = photos["obama_1"]
    base = detector(mtcnn_dir).detect(image)
    assert len(base) == 1 and base[0].landmarks is not None and base[0].landmarks.dtype == np.float32
    assert detector(mtcnn_dir, score_threshold=1.0).detect(image) == []
    assert detector(mtcnn_dir, min_face=300).detect(image) == []
    assert detector(mtcnn_dir).detect(noise) == []
    assert detector(mtcnn_dir).detect(np.zeros((8, 8, 3), np.uint8)) == []
    small = detector(mtcnn_dir, max_side=200).detect(image)  # detected at 200 px, boxes in the photo's pixels
    assert len(small) == 1 and box_iou(small[0].box, base[0].box) > 0.8
    with pytest.raises(FacestreamError, match="uint8"):
        detector(mtcnn_dir).detect(image.astype(np.float32))
