"""Output folders written as one unit, one-line errors for failed writes, and the leftovers of killed runs.

**One unit.** An evaluation (``facevox eval-scores``, ``speaker eval``, ``face eval``, ``fakeface
eval``, ``fakeface explain``, ``invert run``, ``invert eval``) writes all its outputs into a new hidden
folder next to ``--out`` (``.OUT.XXXXXXXX.tmp``) and swaps it into place with
:func:`facevox.fileio.atomic_dir` only once everything is written (:func:`output_dir`). A kill, a full
disk or a crash leaves the previous outputs exactly as they were: no folder ever mixes a new
metrics.json with an old report.html.

**What may be replaced.** The swap replaces ``--out`` as a whole, so ``--out`` must hold nothing but
an earlier output. Every output folder facevox writes holds a small marker file, ``.facevox-output``.
``--out`` may be

* missing, or an empty folder;
* a folder with the marker: an earlier output of a facevox evaluation. It is replaced as a whole,
  with anything a user has added to it since;
* a folder written by a facevox from before the marker existed, recognised by holding only names
  the evaluations write (:data:`LEGACY_NAMES`, ``reconstructions/``, ``NNN_*_saliency.png``) and at
  least one of report.html, results.json, inversion.json or a saliency figure.

Anything else (a run folder that also holds a model, a folder of data, a file) is refused with one
line before any work is done (:func:`prepare_output`), and nothing in it is touched. A symbolic link
given as ``--out`` is followed: the folder it points to is replaced and the link kept.

**Errors.** An :class:`OSError` while writing the outputs (a full disk ``ENOSPC``, a quota
``EDQUOT``, a read-only file system ``EROFS``, a permission ``EACCES``) becomes one
:class:`~facevox.errors.FacevoxError` naming the output and the OS reason; the temporary folder is
removed and the old outputs stay. An OSError naming a file outside the output (an input that cannot
be read) is passed on unchanged.

**Nesting.** A writer handed a folder that is being staged (``classification_report`` called by
``fakeface eval`` with its staging folder) writes into it directly; only the outermost one swaps.

**Leftovers.** A process killed with ``-9`` leaves the temporaries of :func:`facevox.fileio.atomic_path`
and :func:`~facevox.fileio.atomic_dir` behind: ``.NAME.XXXXXXXX.tmp`` siblings, and ``.NAME.XXXXXXXX.old``
when killed inside the swap. :func:`clean_stale_temporaries` removes them at the start of a later
run (evaluations call it through :func:`prepare_output`). It touches only entries named exactly like
that (8 characters of :mod:`tempfile`'s alphabet) whose newest modification is older than the
current process, so the temporaries of this process are never touched; two processes writing the
same output at the same time are not supported (the later one may remove the earlier one's
temporaries, which then fails with one line). If a kill in the swap left ``NAME`` missing, the
previous version (``.NAME.XXXXXXXX.old/x``) is moved back instead of being deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.fileio import atomic_dir

MARKER = ".facevox-output"

LEGACY_NAMES = frozenset({
    "metrics.json", "report.html", "roc.png", "det.png", "scores.png", "scores.txt", "scores.csv", "confusion.png",
    "reliability.png", "groups.png", "misclassified.png", "saliency.png", "robustness.png", "grid.png", "table.md",
    "results.json", "config.yaml", "latents.npy", "latents.csv", "inversion.json", "reconstructions",
})
_LEGACY_ANCHORS = frozenset({"report.html", "results.json", "inversion.json", "saliency.png"})
_SALIENCY = re.compile(r"\d{3}_.+_saliency\.png")

# errors of the place being written to, whatever file they name (a write() gives no file name)
WRITE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO", "EXDEV",
                                      "EBUSY", "ENAMETOOLONG", "EMLINK")
    if hasattr(errno, name)
)

_STAGING: set[Path] = set()  # staging folders of the output_dir blocks now running in this process
_TEMP_CHARS = "[a-z0-9_]{8}"  # tempfile's names: 8 characters of "abcdefghijklmnopqrstuvwxyz0123456789_"
_CLOCK_SLACK = 2.0  # seconds: a file written this close to our start might be ours; left alone


def _process_start() -> float:
    """Wall-clock time this process started (from /proc on Linux), else the time this module was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, starttime, after "pid (comm) "
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_START = _process_start()


# --------------------------------------------------------------------------------------------- leftovers


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def clean_stale_temporaries(folder: str | Path, name: str) -> list[Path]:
    """Remove the temporaries a killed earlier run left next to ``folder/name``; returns what was removed.

    Only ``.NAME.XXXXXXXX.tmp`` and ``.NAME.XXXXXXXX.old`` entries (the names of
    :func:`facevox.fileio.atomic_path` and :func:`~facevox.fileio.atomic_dir`) are considered, and only
    those not modified since before this process started. When ``folder/name`` itself is missing and
    an ``.old`` folder holds its previous version (a kill in the middle of a swap), the newest such
    version is moved back to ``folder/name`` first. Symbolic links are never followed or removed.
    """
    folder = Path(folder)
    pattern = re.compile(rf"\.{re.escape(name)}\.{_TEMP_CHARS}\.(tmp|old)")
    try:
        entries = [p for p in folder.iterdir() if pattern.fullmatch(p.name) and not p.is_symlink()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = []
    for p in entries:
        with contextlib.suppress(OSError):  # gone meanwhile, or unreadable: leave it
            if _newest_mtime(p) < PROCESS_START - _CLOCK_SLACK:
                stale.append(p)
    _restore_previous(folder, name, [p for p in stale if p.name.endswith(".old")])
    removed = []
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if not os.path.lexists(p):
            removed.append(p)
    return removed


def _restore_previous(folder: Path, name: str, olds: list[Path]) -> Path | None:
    """When ``folder/name`` is missing, move the newest previous version held in one of ``olds``
    (``.NAME.XXXXXXXX.old/x``) back to it; returns the folder restored, if any."""
    target = folder / name
    if os.path.lexists(target):
        return None
    held = [p / "x" for p in olds if os.path.lexists(p / "x")]
    if not held:
        return None
    newest = max(held, key=lambda x: x.lstat().st_mtime)
    os.replace(newest, target)
    with contextlib.suppress(OSError):
        newest.parent.rmdir()  # the emptied .old folder
    return target


def _old_siblings(folder: Path, name: str) -> list[Path]:
    pattern = re.compile(rf"\.{re.escape(name)}\.{_TEMP_CHARS}\.old")
    try:
        return [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


# --------------------------------------------------------------------------------------------- errors


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _related(filename: str | bytes | int | None, out: Path, shown: Path, staging: Path | None) -> Path | None:
    """The output path an OSError's file name stands for, as the user named it (a staging path is
    shown as the path it will have in ``out``), or None when it is not part of the output."""
    if not isinstance(filename, (str, os.PathLike)):
        return None
    p = Path(os.path.abspath(filename))
    if staging is not None and _under(p, staging):
        return shown / p.relative_to(staging)
    if _under(p, out):
        return shown / p.relative_to(out)
    if p in out.parents:
        return p
    if p.parent == out.parent and p.name.startswith(f".{out.name}."):
        return shown  # one of its temporaries
    return None


def write_error(err: OSError, out: str | Path, staging: Path | None = None) -> FacevoxError | None:
    """A one-line FacevoxError for an OSError raised while writing the output ``out``, or None when the
    error is not about the output (it names some other file, or is not a write error)."""
    shown = Path(out)
    real = _target(out)
    where = _related(err.filename, real, shown, staging) or _related(err.filename2, real, shown, staging)
    if where is None:
        if err.filename is not None or err.errno not in WRITE_ERRNOS:
            return None
        where = shown
    reason = (err.strerror or os.strerror(err.errno)) if err.errno else (str(err) or type(err).__name__)
    return FacevoxError(f"cannot write the output: {reason}; nothing was changed", where)


@contextlib.contextmanager
def writing(out: str | Path) -> Iterator[None]:
    """Turn an OSError about the output ``out`` (a single file or a folder) into a one-line FacevoxError."""
    try:
        yield
    except OSError as err:
        fve = write_error(err, out)
        if fve is None:
            raise
        raise fve from None


# --------------------------------------------------------------------------------------------- output folders


def _target(out: str | Path) -> Path:
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()
    return Path(os.path.abspath(out))


def _staged(out: Path) -> bool:
    real = out.resolve()
    return any(_under(real, s) for s in _STAGING)


def _is_legacy_output(names: set[str]) -> bool:
    def known(n: str) -> bool:
        return n in LEGACY_NAMES or bool(_SALIENCY.fullmatch(n))

    return all(known(n) for n in names) and any(n in _LEGACY_ANCHORS or _SALIENCY.fullmatch(n) for n in names)


def check_replaceable(out: str | Path) -> Path:
    """Raise a one-line FacevoxError unless ``out`` may be replaced by an output (see the module docstring)."""
    out = _target(out)
    if not os.path.lexists(out) or _staged(out):
        return out
    if not out.is_dir():
        raise FacevoxError("exists and is not a folder; give a new or empty folder for the outputs", out)
    with contextlib.suppress(OSError):
        if _under(Path.cwd().resolve(), out.resolve()):  # the swap would move the folder we are in
            raise FacevoxError("is the current folder or holds it: give a folder of its own for the outputs", out)
    try:
        names = {p.name for p in out.iterdir()}
    except OSError as err:
        raise FacevoxError(f"cannot read the folder: {err.strerror or err}", out) from None
    if not names or MARKER in names or _is_legacy_output(names):
        return out
    shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
    raise FacevoxError(f"holds files facevox did not write as an output ({shown}): the outputs replace the "
                       "folder as a whole, so give a new or empty folder (or one an earlier evaluation wrote)", out)


def prepare_output(out: str | Path) -> Path:
    """Check early that ``out`` may be replaced and clean the leftovers of killed runs next to it.

    Call it before the long work, so a wrong ``--out`` fails at once; returns ``out`` as given.
    """
    target = check_replaceable(out)
    if not _staged(target):
        with writing(out):
            clean_stale_temporaries(target.parent, target.name)
    return Path(out)


@contextlib.contextmanager
def output_dir(out: str | Path, command: str = "") -> Iterator[Path]:
    """Yield a new folder to write the outputs in; it replaces ``out`` as a whole if the block succeeds.

    Refuses a non-empty ``out`` that is not an earlier output (see the module docstring). On an
    exception nothing at ``out`` changes; an OSError about the output becomes a one-line
    :class:`FacevoxError`. Inside another ``output_dir`` block's folder it yields ``out`` itself.
    """
    target = _target(out)
    if _staged(target):
        target.mkdir(parents=True, exist_ok=True)
        yield Path(out)
        return
    prepare_output(out)
    staging: Path | None = None
    try:
        with atomic_dir(target) as tmp:
            staging = tmp.resolve()
            _STAGING.add(staging)
            try:
                yield tmp
                from facevox import __version__

                (tmp / MARKER).write_text(
                    f"written by facevox {__version__}{f' ({command})' if command else ''}; facevox replaces "
                    "this folder as a whole when it writes this output again\n", encoding="utf-8")
                check_replaceable(target)  # something else may have been put there meanwhile
            finally:
                _STAGING.discard(staging)
    except OSError as err:
        fve = write_error(err, out, staging)
        if fve is None:
            raise
        with contextlib.suppress(OSError):  # a swap that failed half-way: put the previous version back
            _restore_previous(target.parent, target.name, _old_siblings(target.parent, target.name))
        raise fve from None
