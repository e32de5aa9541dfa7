"""Cheap checks of a file before training: its header only, with the one-line errors the full decoders give."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.fileio import report_skipped


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
