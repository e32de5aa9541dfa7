"""Reading images, with one clear error per bad file.

Every image comes back as an ``uint8`` RGB array (H, W, 3), upright, whatever it was on disk:
JPEG, PNG, WebP, BMP, TIFF or PGM; greyscale, palette, CMYK, with alpha, or 16 bits per
channel; with or without an EXIF orientation. Every problem with a file (missing, not an image,
truncated) raises :class:`~facevox.errors.FacevoxError` naming the file, so a data set with one
broken image fails with one readable line, or is skipped and listed with :func:`load_many`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facevox.errors import FacevoxError
from facevox.fileio import list_files, load_each

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


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
    if not path.exists():
        raise FacevoxError("file not found", where=path)
    if not path.is_file():
        raise FacevoxError("not a file", where=path)
    if path.stat().st_size == 0:
        raise FacevoxError("empty file (0 bytes)", where=path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later in a batch
            upright = ImageOps.exif_transpose(img)
            rgb = _to_rgb(upright)
    except UnidentifiedImageError:
        raise FacevoxError("cannot decode: not an image file or an unsupported format", where=path) from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        if "truncated" in reason.lower():
            reason = "truncated image file"
        raise FacevoxError(f"cannot decode: {reason}", where=path) from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise FacevoxError(f"decoded to an unusable shape {arr.shape}", where=path)
    return arr


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
