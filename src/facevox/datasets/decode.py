"""Decoding a shard member's bytes with exactly the code that decodes a file.

A member is written to a short-lived temporary file (in ``/dev/shm`` where there is one) with
its original extension and read back with the same loader a file on disk goes through
(:func:`facevox.audio.io.load_audio`, :func:`facevox.image.io.load_image`), so a shard item is
bit-for-bit the item its source file gives, and every check and one-line error is the same; the
error names ``shard.tar:member`` instead of the temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facevox.errors import FacevoxError

T = TypeVar("T")
_SHM = "/dev/shm"


def _tmp_dir() -> str | None:
    return _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


def decode_bytes(data: bytes, suffix: str, where: str, load: Callable[[Path], T]) -> T:
    """``load(path)`` of a temporary file holding ``data``; a :class:`FacevoxError` names ``where``."""
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="facevox-", dir=_tmp_dir()) as fh:
        fh.write(data)
        fh.flush()
        try:
            return load(Path(fh.name))
        except FacevoxError as err:
            raise FacevoxError(err.problem, where) from None
