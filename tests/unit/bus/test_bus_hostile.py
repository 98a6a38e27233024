"""Hostile messages at the wire level: JPEG bombs, sizes past the limits, byte order, lax
versions, topic prefixes, kinds and cameras a receiver never takes, and fault kinds as an enum."""

from __future__ import annotations

import json
import time
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from bus.errors import Fault, WireError
from bus.jpeg import jpeg_size
from bus.records import EndOfStream, Frame, record_from_message
from bus.wire import MAX_PART_BYTES, decode, encode, topic_of
from tests.forge import claiming, jpeg, jpeg_message


def _frame_message(data: bytes, shape: list[int]) -> list[bytes]:
    return jpeg_message("frame", "cam0", data, shape)


@pytest.fixture()
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> None:
        raise AssertionError("the JPEG was decoded before its size was checked")

    monkeypatch.setattr(cv2, "imdecode", refuse)


def test_jpeg_size_reads_the_frame_header() -> None:
    size = jpeg_size(jpeg(40, 24))
    assert (size.height, size.width, size.components) == (24, 40, 3)
    for bad in (b"", b"\xff\xd8", b"GIF89a" + bytes(20), b"\xff\xd8\xff\xe0\x00\x01"):
        with pytest.raises(WireError):
            jpeg_size(bad)


def test_a_jpeg_bomb_is_refused_from_its_header(no_decoding: None) -> None:
    bomb = claiming(jpeg(), 16384, 16384)
    assert len(bomb) < 1000
    for shape in ([16, 16, 3], [480, 640, 3]):  # it lies about its size: refused as it says
        with pytest.raises(WireError) as info:
            decode(_frame_message(bomb, shape))
        assert info.value.kind == Fault.BAD_PAYLOAD and "16384x16384" in str(info.value)
    with pytest.raises(WireError) as info:  # it declares what it claims: past the size limit
        decode(_frame_message(bomb, [16384, 16384, 3]))
    assert info.value.kind == Fault.OVERSIZE


def test_declared_sizes_are_bounded_whatever_the_encoding() -> None:
    assert 16384 * 16384 * 3 > MAX_PART_BYTES >= 2160 * 3840 * 3  # a 4K frame fits, a bomb does not
    with pytest.raises(WireError) as info:
        decode(_frame_message(jpeg(), [32768, 32768, 3]))
    assert info.value.kind == Fault.OVERSIZE
    with pytest.raises(WireError) as info:
        decode(_frame_message(jpeg(), [16, 16, 4]))  # a JPEG part is HxWx3
    assert info.value.kind == Fault.BAD_SHAPE


def test_an_honest_jpeg_still_decodes() -> None:
    msg = decode(_frame_message(jpeg(40, 24), [24, 40, 3]))
    assert msg.parts[0].shape == (24, 40, 3)


def test_big_endian_arrays_go_out_little_endian() -> None:
    values = (np.arange(6).reshape(2, 3) + 0.5).astype(">f4")
    assert values.dtype.byteorder == ">"
    frames = encode("cam0", {"kind": "x", "camera_id": "cam0", "seq": 0, "ts_ns": 0}, [values])
    assert bytes(frames[2]) == (np.arange(6, dtype="<f4") + 0.5).tobytes()
    back = decode([bytes(f) for f in frames]).parts[0]
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, None])
def test_schema_version_must_be_the_integer_one(version: Any) -> None:
    frames = [bytes(f) for f in EndOfStream("cam0", 3, 1).to_frames()]
    header = json.loads(frames[1])
    header["schema_version"] = version
    with pytest.raises(WireError) as info:
        decode([frames[0], json.dumps(header).encode()])
    assert info.value.kind == Fault.BAD_VERSION


def test_subscribing_to_one_camera_gets_that_camera_only() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, topic_of("cam1"))
        sub.connect(f"tcp://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        got: list[str] = []
        seq = 0
        while not got and time.monotonic() < deadline:  # until the subscription has arrived
            for camera in ("cam10", "cam1", "cam1.b"):
                pub.send_multipart(EndOfStream(camera, seq, 1).to_frames())
            seq += 1
            if sub.poll(100):
                while sub.poll(200):
                    got.append(record_from_message(decode(sub.recv_multipart())).camera_id)
        assert got and set(got) == {"cam1"}
    finally:
        ctx.destroy(linger=0)


def test_a_topic_without_its_terminator_is_refused() -> None:
    frames = [bytes(f) for f in EndOfStream("cam1", 3, 1).to_frames()]
    assert frames[0] == b"cam1\0"
    with pytest.raises(WireError) as info:
        decode([b"cam1", frames[1]])
    assert info.value.kind == Fault.MALFORMED_TOPIC


def test_kinds_and_cameras_a_receiver_never_takes_are_refused_before_decoding(no_decoding: None) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    frames = [bytes(f) for f in Frame("cam0", 0, 1, image=image).to_frames(jpeg_quality=90)]
    with pytest.raises(WireError) as info:
        decode(frames, kinds={"embeddings", "eos"})
    assert info.value.kind == Fault.UNEXPECTED_KIND
    with pytest.raises(WireError) as info:
        decode(frames, kinds={"frame"}, cameras={"door"})
    assert info.value.kind == Fault.UNKNOWN_CAMERA


def test_fault_kinds_are_a_closed_set() -> None:
    assert WireError("bad_field", "x").kind is Fault.BAD_FIELD
    with pytest.raises(ValueError):
        WireError("something_new", "x")
