"""What ``embed SOURCE`` reads: a folder (searched recursively), a CSV manifest with a ``path``
column, or a list file of paths (one per line); relative paths are relative to the file's folder."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.textfile import read_text


def read_source(source: str | Path, list_folder: Callable[[Path], list[Path]], extensions: tuple[str, ...],
                kind: str) -> list[Path]:
    """The files of ``source``: ``list_folder(source)`` for a folder, else the paths a manifest or list gives.

    A listed path with another extension than ``extensions`` is a one-line error naming the line.
    """
    source = Path(source)
    if source.is_dir():
        return list_folder(source)
    if not source.is_file():
        raise FacevoxError("no such folder, manifest or list file", source)
    text = read_text(source)
    if source.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if "path" not in (reader.fieldnames or []):
            raise FacevoxError("manifest needs a 'path' column", source)
        names = [(i, (row["path"] or "").strip()) for i, row in enumerate(reader, 2)]
    else:
        names = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
        names = [(i, n) for i, n in names if n and not n.startswith("#")]
    files = []
    for i, name in names:
        p = Path(name)
        if p.suffix.lower() not in extensions:
            raise FacevoxError(f"line {i}: not a{'n' if kind[0] in 'aeiou' else ''} {kind} file extension: {name}",
                               source)
        files.append(p if p.is_absolute() else source.parent / p)
    if not files:
        raise FacevoxError(f"lists no {kind} files", source)
    return files
