from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import WireError
from bus.records import (
    Embeddings,
    EndOfStream,
    Face,
    FaceCrops,
    Frame,
    MatchResult,
    record_from_message,
)
from bus.wire import decode, encode


def _roundtrip(frames):
    return record_from_message(decode([bytes(f) for f in frames]))


def test_frame_roundtrip_keeps_pixels_and_fields() -> None:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frame = Frame("cam0", 7, 123, stamps={"capture": 123}, image=image, fps=29.97)
    back = _roundtrip(frame.to_frames())
    assert isinstance(back, Frame)
    assert back.seq == 7 and back.ts_ns == 123 and back.fps == pytest.approx(29.97)
    assert back.stamps == {"capture": 123}
    np.testing.assert_array_equal(back.image, image)


def test_jpeg_frame_decodes_to_declared_shape() -> None:
    image = np.full((32, 40, 3), 120, np.uint8)
    back = _roundtrip(Frame("cam0", 0, 1, image=image).to_frames(jpeg_quality=90))
    assert isinstance(back, Frame)
    assert back.image.shape == (32, 40, 3)
    assert np.abs(back.image.astype(int) - 120).max() < 4


def test_faces_embeddings_results_roundtrip() -> None:
    lm = np.arange(10, dtype=np.float32).reshape(5, 2)
    face = Face((1, 2, 30, 40), 0.9, lm, crop_index=0, crop_origin=(1, 2))
    crops = FaceCrops("c", 1, 2, frame_size=(64, 48), faces=[face], crops=[np.zeros((5, 6, 3), np.uint8)])
    back = _roundtrip(crops.to_frames())
    assert isinstance(back, FaceCrops)
    assert back.crops[0].shape == (5, 6, 3)
    assert back.faces[0].landmarks is not None
    np.testing.assert_allclose(back.faces[0].landmarks, lm.astype(np.float64))
    vec = np.eye(1, 128, dtype=np.float32)
    emb = Embeddings("c", 1, 2, frame_size=(64, 48), faces=[face], vectors=vec, model_id="m")
    got = _roundtrip(emb.to_frames())
    assert isinstance(got, Embeddings)
    np.testing.assert_array_equal(got.vectors, vec)
    named = Face((1, 2, 30, 40), 0.9, name="alice", similarity=0.71)
    res = _roundtrip(MatchResult("c", 1, 2, frame_size=(64, 48), faces=[named], threshold=0.36).to_frames())
    assert isinstance(res, MatchResult)
    assert res.faces[0].name == "alice" and res.threshold == pytest.approx(0.36)
    eos = _roundtrip(EndOfStream("c", 9, 3, reason="end of file").to_frames())
    assert isinstance(eos, EndOfStream) and eos.seq == 9 and eos.reason == "end of file"


def test_zero_faces_message_is_valid() -> None:
    emb = Embeddings("c", 0, 0, frame_size=(10, 10), vectors=np.zeros((0, 128), np.float32))
    got = _roundtrip(emb.to_frames())
    assert isinstance(got, Embeddings) and got.vectors.shape == (0, 128)


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (
            lambda fr: [fr[0], json.dumps({**json.loads(fr[1]), "schema_version": 2}).encode(), *fr[2:]],
            "bad_version",
        ),
        (lambda fr: [fr[0], fr[1][:-5], *fr[2:]], "malformed_header"),
        (lambda fr: [fr[0], fr[1], fr[2][:-1]], "bad_payload"),
        (lambda fr: [fr[0], fr[1].replace(b'"uint8"', b'"object"'), fr[2]], "bad_dtype"),
        (lambda fr: [fr[0], fr[1]], "malformed_header"),
        (lambda fr: [b"other\0", *fr[1:]], "malformed_topic"),
        (lambda fr: [b"cam0", *fr[1:]], "malformed_topic"),
        (lambda fr: [fr[0]], "malformed_frames"),
    ],
)
def test_malformed_messages_raise_wire_error_with_kind(mutate, kind) -> None:
    frames = [bytes(f) for f in Frame("cam0", 0, 1, image=np.zeros((4, 4, 3), np.uint8)).to_frames()]
    with pytest.raises(WireError) as info:
        record_from_message(decode(mutate(frames)))
    assert info.value.kind == kind


def test_wrong_shape_in_record_is_refused() -> None:
    frames = encode(
        "cam0", {"kind": "frame", "camera_id": "cam0", "seq": 0, "ts_ns": 0}, [np.zeros((4, 4), np.uint8)]
    )
    with pytest.raises(WireError) as info:
        record_from_message(decode([bytes(f) for f in frames]))
    assert info.value.kind == "bad_shape"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=5))
def test_garbage_never_raises_anything_but_wire_error(parts: list[bytes]) -> None:
    with contextlib.suppress(WireError):
        record_from_message(decode(parts))
