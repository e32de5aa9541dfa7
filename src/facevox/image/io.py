"""Reading images, with one clear error per bad file.

Every image comes back as an ``uint8`` RGB array (H, W, 3), upright, whatever it was on disk:
JPEG, PNG, WebP, BMP, TIFF or PGM; greyscale, palette, CMYK, with alpha, or 16 bits per
channel; with or without an EXIF orientation. Every problem with a file (missing, not an image,
truncated) raises :class:`~facevox.errors.FacevoxError` naming the file, so a data set with one
broken image fails with one readable line, or is skipped and listed with :func:`load_many`.

Decompression bombs: a file may claim a huge size in a few bytes (a 69-byte PNG claiming
60000 x 60000 pixels would take 10.8 GB to decode). An image of more than :data:`MAX_PIXELS`
pixels is refused from its header, before anything is decoded, with one line naming the file and the
size it claims (and is skipped like any broken file with ``--skip-bad``). The limit is Pillow's own
hard one (twice ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels, e.g. 13377 x 13377, 537 MB as
RGB): every photo of a camera up to 108 MP passes, and nothing that Pillow would decode by default is
newly refused. Pillow's ``DecompressionBombWarning`` (between its limit and twice it) is not shown:
the limit here decides. To allow larger images, raise both ``facevox.image.io.MAX_PIXELS`` and
``PIL.Image.MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facevox.errors import FacevoxError
from facevox.fileio import list_files, load_each

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")
MAX_PIXELS = 2 * 89_478_485  # width x height: Pillow's default hard limit (2 x 1 GiB / 4 / 3); see the docstring


def _bomb(path: Path, size: tuple[int, int] | None, pixels: int | None = None) -> FacevoxError:
    claimed = f"{size[0]} x {size[1]} pixels" if size else f"{pixels} pixels"
    return FacevoxError(f"image claims {claimed}, more than the limit of {MAX_PIXELS / 1e6:.0f} megapixels "
                        "(a decompression bomb or a corrupt header); not decoded", where=path)


def _bomb_error_size(err: Exception) -> tuple[tuple[int, int] | None, int | None]:
    """The (width, height) behind Pillow's DecompressionBombError (its check's argument), else the pixel count
    its message gives."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    size = tb.tb_frame.f_locals.get("size") if tb is not None else None
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return (int(size[0]), int(size[1])), None
    found = re.search(r"\((\d+) pixels\)", str(err))
    return None, int(found.group(1)) if found else None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Alpha is composited on white (a transparent corner is not black)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16- or 32-bit greyscale: scale the full range of the file's type to 8 bits
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() <= 65535 else float(a.max())
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a / a.max() if a.max() > 1.0 else a
        return Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGB


def load_image(path: str | Path) -> np.ndarray:
    """Load an image file as an upright uint8 RGB array (H, W, 3).

    The EXIF orientation is applied (a phone photo stored sideways comes back upright), CMYK and
    palette images are converted, 16-bit images are scaled to 8 bits. Raises
    :class:`FacevoxError` when the file is missing, is not an image, or is truncated.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides, below
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:  # from the header: nothing decoded yet
                    raise _bomb(path, img.size)
                img.load()  # decode now: a truncated file fails here, not later in a batch
                upright = ImageOps.exif_transpose(img)
                rgb = _to_rgb(upright)
    except Image.DecompressionBombError as err:  # more than twice PIL.Image.MAX_IMAGE_PIXELS: refused by Pillow
        raise _bomb(path, *_bomb_error_size(err)) from None
    except MemoryError:
        raise FacevoxError("not enough memory to decode this image", where=path) from None
    except UnidentifiedImageError:
        raise FacevoxError("cannot decode: not an image file or an unsupported format", where=path) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _decode_error(path, err) from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise FacevoxError(f"decoded to an unusable shape {arr.shape}", where=path)
    return arr


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from an image's header alone; a missing, empty or non-image file or a
    decompression bomb raises as :func:`load_image` would (a truncated body is found only when the
    image is decoded)."""
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size = img.size
    except Image.DecompressionBombError:
        raise _bomb(path, None) from None
    except UnidentifiedImageError:
        raise FacevoxError("cannot decode: not an image file or an unsupported format", where=path) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _decode_error(path, err) from None
    if size[0] * size[1] > MAX_PIXELS:
        raise _bomb(path, size)
    return size


def _check_file(path: Path) -> None:
    """The checks before any decoding: the path exists, is a file and is not empty."""
    if not path.exists():
        raise FacevoxError("file not found", where=path)
    if not path.is_file():
        raise FacevoxError("not a file", where=path)
    if path.stat().st_size == 0:
        raise FacevoxError("empty file (0 bytes)", where=path)


def _decode_error(path: Path, err: Exception) -> FacevoxError:
    reason = " ".join(str(err).split()) or type(err).__name__
    if "truncated" in reason.lower():
        reason = "truncated image file"
    return FacevoxError(f"cannot decode: {reason}", where=path)


def list_image_files(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive, sorted, hidden ones left out)."""
    return list_files(root, IMAGE_EXTENSIONS, "image")


def load_many(paths: Iterable[str | Path], skip_bad: bool = False) -> tuple[list[np.ndarray], list[tuple[Path, str]]]:
    """Load several images: (arrays of the good ones, [(path, problem)] of the bad ones).

    With ``skip_bad=False`` the first bad file raises its :class:`FacevoxError`.
    """
    return load_each(paths, load_image, skip_bad)


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 image (H, W, 3) or (H, W) atomically; the format follows the suffix (default PNG)."""
    from facevox.fileio import atomic_path

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format=fmt)
    return path
