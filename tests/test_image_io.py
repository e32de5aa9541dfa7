"""Image decoding: every format and mode comes back as upright uint8 RGB; bad files are one-line errors."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from facevox.errors import FacevoxError
from facevox.image import io as image_io
from facevox.image.io import list_image_files, load_image, load_many


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(("suffix", "kwargs", "tol"), [
    (".png", {}, 0), (".bmp", {}, 0), (".tiff", {}, 0), (".webp", {"lossless": True}, 0),
    (".jpg", {"quality": 95}, 12), (".webp", {"quality": 90}, 20),
])
def test_round_trip_formats(tmp_path, suffix, kwargs, tol):
    img = gradient()
    path = tmp_path / f"x{suffix}"
    Image.fromarray(img).save(path, **kwargs)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    assert np.abs(out.astype(int) - img).mean() <= tol


def test_greyscale_becomes_three_equal_channels(tmp_path):
    grey = gradient()[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    Image.fromarray(grey, mode="L").save(tmp_path / "g.pgm")
    for name in ("g.png", "g.pgm"):
        out = load_image(tmp_path / name)
        assert out.shape == (24, 32, 3) and np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)


def test_16_bit_greyscale_is_scaled_to_8_bits(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128, 255 in 8 bits
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")  # really a 16-bit file
    out = load_image(tmp_path / "deep.png")
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_jpeg_is_converted(tmp_path):
    red = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    red.save(tmp_path / "cmyk.jpg", quality=95)
    out = load_image(tmp_path / "cmyk.jpg")
    assert out.shape == (16, 16, 3)
    assert out[..., 0].mean() > 230 and out[..., 1].mean() < 25 and out[..., 2].mean() < 25


def test_exif_orientation_is_applied(tmp_path):
    # stored 2 high x 4 wide with a red left column; orientation 6 says "rotate 90 degrees clockwise to view"
    stored = np.zeros((2, 4, 3), dtype=np.uint8)
    stored[:, 0] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif.tobytes())
    out = load_image(tmp_path / "phone.png")
    assert out.shape == (4, 2, 3)  # upright: 4 high x 2 wide
    assert out[0, :, 0].tolist() == [255, 255] and out[1:, :, 0].max() == 0  # the left column is now the top row


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (0, 0, 255, 255)  # opaque blue top half, transparent bottom half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba, mode="RGBA").convert("P").save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "a.png")
    assert out[0, 0].tolist() == [0, 0, 255] and out[3, 3].tolist() == [255, 255, 255]
    assert load_image(tmp_path / "p.png").shape == (4, 4, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_an_error_naming_it(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(FacevoxError) as err:
        load_image(cut)
    assert str(cut) in str(err.value) and "truncated" in str(err.value)


@pytest.mark.parametrize(("content", "words"), [(b"", "empty"), (b"\x00not an image at all" * 10, "not an image")])
def test_bad_bytes_are_errors(tmp_path, content, words):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(FacevoxError, match=words) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_folder(tmp_path):
    with pytest.raises(FacevoxError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(FacevoxError, match="not a file"):
        load_image(tmp_path)


def test_list_image_files(tmp_path):
    for rel in ("real/a.PNG", "real/sub/b.jpg", "fake/c.webp", "fake/.hidden/d.png", "fake/._e.jpg", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_image_files(tmp_path)]
    assert names == ["fake/c.webp", "real/a.PNG", "real/sub/b.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacevoxError, match="no image files"):
        list_image_files(tmp_path / "empty")


def test_load_many_skips_and_lists_bad_files(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    paths = [tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "good.png"]
    images, bad = load_many(paths, skip_bad=True)
    assert len(images) == 2 and [p.name for p, _ in bad] == ["bad.png"]
    with pytest.raises(FacevoxError, match="bad.png"):
        load_many(paths)


# ------------------------------------------------------------------------------------------ decompression bombs


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height RGB pixels, with a tiny IDAT: a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_one_line_naming_its_size(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(60000, 60000))
    assert path.stat().st_size < 80
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(FacevoxError) as err:
            load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: image claims 60000 x 60000 pixels, more than the limit of 179 megapixels")
    assert "\n" not in message
    Image.fromarray(gradient()).save(tmp_path / "good.png")
    images, bad = load_many([tmp_path / "good.png", path, tmp_path / "good.png"], skip_bad=True)
    assert len(images) == 2 and [(p.name, "60000 x 60000" in problem) for p, problem in bad] == [("bomb.png", True)]


def test_the_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(gradient(24, 32)).save(path)  # 768 pixels
    monkeypatch.setattr(image_io, "MAX_PIXELS", 768)
    assert load_image(path).shape == (24, 32, 3)  # at the limit: fine
    monkeypatch.setattr(image_io, "MAX_PIXELS", 767)
    with pytest.raises(FacevoxError, match="claims 32 x 24 pixels, more than the limit"):
        load_image(path)


def test_pillows_warning_band_and_its_error(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    Image.fromarray(gradient(24, 32)).save(path)  # 768 pixels
    monkeypatch.setattr(image_io, "MAX_PIXELS", 10_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow warns above 500 and refuses above 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MAX_PIXELS decides: Pillow's warning is not shown
        assert load_image(path).shape == (24, 32, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # now Pillow itself refuses (768 > 600)
    with pytest.raises(FacevoxError, match="claims 32 x 24 pixels"):
        load_image(path)
