"""Text files and file names users give: UTF-8, or one clear error naming the file.

Trial lists, manifests, score files and the text files of a model folder are read with
:func:`read_text`: bytes that are not UTF-8 are a :class:`~facevox.errors.FacevoxError` such as
``trials.txt: not UTF-8 text (byte 0xff at offset 12)``, never a ``UnicodeDecodeError``.
A leading byte-order mark (Windows editors write one) is dropped.

A file name that is not UTF-8 is a valid Linux name (Python holds its odd bytes as surrogates),
but it cannot be written into a UTF-8 trial list or printed on a UTF-8 terminal;
:func:`shown_name` gives a printable form (``\\xff`` for the byte 0xff) and
:func:`check_utf8_name` the one-line error for a listing that meets one.
"""

from __future__ import annotations

import os
from pathlib import Path

from facevox.errors import FacevoxError


def read_text(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading BOM removed); a one-line error otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FacevoxError("file not found", shown_name(path)) from None
    except OSError as err:
        raise FacevoxError(f"cannot read ({err.strerror or type(err).__name__})", shown_name(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FacevoxError(f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                           "save it as UTF-8", shown_name(path)) from None
    return text.removeprefix("\ufeff")


def shown_name(path: str | Path) -> str:
    """``path`` as printable text: bytes of a non-UTF-8 name appear as ``\\xNN``."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def is_utf8_name(path: str | Path) -> bool:
    """Whether ``path`` can be written as UTF-8 text (no undecodable bytes in it)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_utf8_name(path: str | Path) -> None:
    """A one-line error for a file name that is not UTF-8 (it could not go into a trial list or a report)."""
    if not is_utf8_name(path):
        raise FacevoxError("file name is not UTF-8 text; rename the file (e.g. with convmv) to use it",
                           shown_name(path))
