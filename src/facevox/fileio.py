"""Atomic writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from facevox.errors import FacevoxError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON to ``path`` atomically (inf and NaN become null)."""
    text = json.dumps(_strict(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _strict(obj: Any) -> Any:
    # JSON has no inf/NaN (an "accept everything" threshold is -inf): write them as null
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _strict(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the usual things that end up in metrics dicts
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` if the block succeeds.

    An existing folder at ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "x", path)  # put the previous version back
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_output_path(path: str | Path, *, is_file: bool = False, what: str = "--out") -> Path:
    """Check, before anything is written, that ``path`` can be written as a folder (or a file).

    One-line errors for: a file where a folder is wanted (or the reverse), a file on the way
    (``existing_file/sub``), and a place that cannot be written (read-only file system, no
    permission). Nothing is created.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if is_file and path.is_dir():
            raise FacevoxError(f"{what} names a folder; it must be a file to write", path)
        if not is_file and not path.is_dir():
            raise FacevoxError(f"{what} names an existing file; it must be a folder (or a new name)", path)
    ancestor = path if path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FacevoxError(f"{what} cannot be made: {ancestor} is a file, not a folder", path)
    try:
        read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise FacevoxError(f"{what} cannot be written: {ancestor} is on a read-only file system", path)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FacevoxError(f"{what} cannot be written: no permission to write in {ancestor}", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def list_files(root: str | Path, extensions: tuple[str, ...], kind: str) -> list[Path]:
    """All files under ``root`` (recursive, sorted) whose extension is in ``extensions``, case-insensitively.

    Hidden files and folders (names starting with ``.``) are left out: they include the ``._x.wav``
    metadata files macOS leaves on shared drives, which carry a data extension but hold no data.
    ``kind`` ("audio", "image") names what was looked for in the error for a folder with none.
    """
    root = Path(root)
    if not root.exists():
        raise FacevoxError("folder not found", where=root)
    if not root.is_dir():
        raise FacevoxError("not a folder", where=root)
    found = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in extensions
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )
    if not found:
        raise FacevoxError(f"no {kind} files ({', '.join(extensions)}) under this folder", where=root)
    return found


def load_each(paths: Iterable[str | Path], load: Callable[[Path], Any],
              skip_bad: bool = False) -> tuple[list[Any], list[tuple[Path, str]]]:
    """``load`` every path; returns ``(loaded, bad)``, ``loaded`` in the order of ``paths``.

    With ``skip_bad`` a file whose ``load`` raises :class:`FacevoxError` is left out and listed
    in ``bad`` as ``(path, problem)``, so the caller can print one summary; without it the first
    bad file raises.
    """
    loaded: list[Any] = []
    bad: list[tuple[Path, str]] = []
    for path in paths:
        try:
            loaded.append(load(Path(path)))
        except FacevoxError as err:
            if not skip_bad:
                raise
            bad.append((Path(path), err.problem))
    return loaded, bad


def report_skipped(bad: Iterable[tuple[Path, str]], kind: str = "file") -> set[Path]:
    """Print the summary of the files :func:`load_each` skipped (one line each, on stderr); returns their paths."""
    bad = list(bad)
    if bad:
        print(f"skipped {len(bad)} bad {kind}(s):", file=sys.stderr)
        for path, problem in bad:
            print(f"  {path}: {problem}", file=sys.stderr)
    return {Path(p) for p, _ in bad}
