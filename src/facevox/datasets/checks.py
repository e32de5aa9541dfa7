"""Cheap checks of a file before training: its header only, with the one-line errors the full decoders give."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.fileio import report_skipped


def check_image_header(path: Path) -> tuple[int, int]:
    """(width, height) from an image's header; missing, empty, not an image or a decompression bomb raise
    as :func:`facevox.image.io.load_image` would (a truncated body is found when the image is decoded)."""
    from PIL import Image, UnidentifiedImageError

    from facevox.image.io import MAX_PIXELS, _bomb

    if not path.exists():
        raise FacevoxError("file not found", where=path)
    if not path.is_file():
        raise FacevoxError("not a file", where=path)
    if path.stat().st_size == 0:
        raise FacevoxError("empty file (0 bytes)", where=path)
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
        raise FacevoxError(f"cannot decode: {' '.join(str(err).split()) or type(err).__name__}", where=path) from None
    if size[0] * size[1] > MAX_PIXELS:
        raise _bomb(path, size)
    return size


def check_each(paths: Sequence[Path], check: Callable[[Path], object], skip_bad: bool,
               kind: str = "file") -> list[int]:
    """Indices of the paths that pass ``check``; a failure raises, or with ``skip_bad`` is listed on stderr."""
    keep, bad = [], []
    for i, p in enumerate(paths):
        try:
            check(Path(p))
        except FacevoxError as err:
            if not skip_bad:
                raise
            bad.append((Path(p), err.problem))
            continue
        keep.append(i)
    report_skipped(bad, kind)
    return keep
