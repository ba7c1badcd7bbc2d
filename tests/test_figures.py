import struct
import zlib

import numpy as np
import pytest

from pipelines.figures import (
    PNG_SIGNATURE,
    confusion_image,
    palette,
    png_bytes,
    scatter_image,
    write_png,
)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each chunk, checking each CRC."""
    out, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        pos += 12 + length
    return out


def decode(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB, filter-0 PNG back to (H, W, 3)."""
    assert data.startswith(PNG_SIGNATURE)
    parts = chunks(data)
    assert [k for k, _ in parts] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    assert (depth, colour, interlace) == (8, 2, 0)
    rows = np.frombuffer(zlib.decompress(parts[1][1]), np.uint8).reshape(h, 1 + 3 * w)
    assert np.all(rows[:, 0] == 0)
    return rows[:, 1:].reshape(h, w, 3)


def test_png_has_signature_header_size_and_round_trips_through_zlib():
    img = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    data = png_bytes(img)
    w, h = struct.unpack(">II", chunks(data)[0][1][:8])
    assert (w, h) == (11, 7)
    assert np.array_equal(decode(data), img)


def test_png_refuses_a_non_rgb_array():
    with pytest.raises(ValueError, match="RGB"):
        png_bytes(np.zeros((4, 4), np.uint8))


def test_write_png_writes_the_encoded_bytes(tmp_path):
    img = np.full((3, 5, 3), 200, np.uint8)
    write_png(str(tmp_path / "a.png"), img)
    assert (tmp_path / "a.png").read_bytes() == png_bytes(img)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_palette_colours_are_distinct_for_many_classes():
    colours = palette(120)
    assert colours.shape == (120, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 120


def test_scatter_draws_each_point_in_its_class_colour_on_white():
    points = np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    labels = np.array([0, 1, 2])
    img = scatter_image(points, labels, size=100, radius=2, margin=4)
    colours = palette(3)
    corners = {(93, 6): 0, (6, 93): 1, (6, 6): 2}      # (row, col); y grows upwards
    for (r, c), label in corners.items():
        assert tuple(img[r, c]) == tuple(colours[label])
    assert tuple(img[50, 50]) == (255, 255, 255)
    assert len({tuple(p) for p in img.reshape(-1, 3)}) == 4


def test_confusion_heatmap_scales_cells_and_darkens_with_the_row_fraction():
    conf = np.array([[9, 1, 0], [0, 10, 0], [0, 0, 0]])
    img = confusion_image(conf, size=30)
    assert img.shape == (30, 30, 3)
    cell = lambda r, c: img[r * 10:(r + 1) * 10, c * 10:(c + 1) * 10]  # noqa: E731
    assert np.all(cell(0, 0) == cell(0, 0)[0, 0])
    assert cell(1, 1)[0, 0].sum() < cell(0, 0)[0, 0].sum() < cell(0, 1)[0, 0].sum()
    assert tuple(cell(2, 2)[0, 0]) == (255, 255, 255)   # an empty row stays white
