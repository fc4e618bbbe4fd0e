"""The printable label (tools/provision.py, PROTOCOL §1.2): its PNG carries everything a
user types by hand — the setup code in digits and the device id — besides the QR code."""

from __future__ import annotations

import struct
import zlib

from tools.provision import label_png

PAYLOAD = "HS1:XTM7HVRRKFWZCCEW:31415926"


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of an 8-bit greyscale PNG without filters (what we write)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    idat = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[idat - 4 : idat])
    raw = zlib.decompress(png[idat + 4 : idat + 4 + length])
    stride = width + 1
    rows = [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]
    assert all(raw[i * stride] == 0 for i in range(height))
    return width, height, rows


def test_png_label_shows_the_device_id_below_the_qr_code() -> None:
    first = _pixels(label_png(PAYLOAD, "3141-5926", "xtm7-hvrr-kfwz-ccew"))
    other = _pixels(label_png(PAYLOAD, "3141-5926", "mfrg-gzdf-mztw-q2lk"))
    width, height, rows = first
    assert (width, height) == other[:2]
    # The QR code and the digits are the same; only the band below the QR code differs.
    qr_rows = next(i for i in range(height - 1, -1, -1) if rows[i][: width // 4].count(0) > 0)
    differing = [i for i in range(height) if rows[i] != other[2][i]]
    assert differing, "the device id is not drawn"
    band_top = min(differing)
    assert all(i >= band_top for i in differing)
    assert any(rows[i].count(0) for i in range(band_top, height))
    assert qr_rows >= band_top  # the id's glyphs are the last dark rows


def test_png_label_shows_the_code() -> None:
    _, height, rows = _pixels(label_png(PAYLOAD, "3141-5926", "xtm7-hvrr-kfwz-ccew"))
    _, _, other = _pixels(label_png(PAYLOAD, "2718-2818", "xtm7-hvrr-kfwz-ccew"))
    assert any(rows[i] != other[i] for i in range(height))
