"""The size a JPEG says it has, read from its frame header without decoding it.

A 631-byte JPEG may claim 16384x16384 pixels; decoding it costs seconds and gigabytes. The wire
compares this size with the part's declared shape (and so with the wire limits) first.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.errors import Fault, WireError

# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
# 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range but are not frame headers.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: markers without a length


@dataclass(frozen=True)
class JpegSize:
    height: int
    width: int
    components: int


def _bad(message: str) -> WireError:
    return WireError(Fault.BAD_PAYLOAD, f"JPEG part: {message}")


def jpeg_size(data: bytes | memoryview) -> JpegSize:
    """Height, width and colour components from the first frame header (SOFn) of a JPEG."""
    buf = memoryview(data)
    if len(buf) < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        raise _bad("no JPEG start marker")
    pos = 2
    while pos + 4 <= len(buf):
        if buf[pos] != 0xFF:
            raise _bad(f"expected a marker at byte {pos}")
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if length < 2:
            raise _bad(f"segment length {length} at byte {pos}")
        if marker in _SOF:
            if length < 8 or pos + 2 + length > len(buf):
                raise _bad("truncated frame header")
            height = (buf[pos + 5] << 8) | buf[pos + 6]
            width = (buf[pos + 7] << 8) | buf[pos + 8]
            return JpegSize(height, width, buf[pos + 9])
        pos += 2 + length
    raise _bad("no frame header before the image data")
