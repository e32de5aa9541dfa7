"""Running one bad-input case in-process and judging what a user would have seen.

:func:`run_case` builds the case's argv in a fresh folder of its own, runs ``facevox.cli.main``
with stdout and stderr captured at the file-descriptor level (stdout strict UTF-8 and stderr with
``backslashreplace``, as a terminal has them; warnings are printed into stderr as the interpreter
would), in that folder as working directory, under a time limit and an address-space limit. An
exception that escapes ``main`` is printed as the interpreter prints it (``Traceback ...``, status
1). The outcome lists every way the run fell short of the rule for bad input: exit status 2, one
line on stderr of the form ``facevox: error: ...`` (or argparse's ``facevox ...: error: ...``)
naming the file or key at fault, no traceback, and nothing written (the case's folder and the
shared fixtures are unchanged, and its forbidden paths do not exist).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ERROR_LINE = re.compile(r"^facevox(?: [\w-]+)*: error: ")
TIME_LIMIT_S = 60.0  # a case still running after this is stopped: it was accepted and is doing real work
MEMORY_HEADROOM = 12 << 30  # bytes of address space a case may add (a "terabyte model" fails, not the machine)


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv(env)`` builds the command (writing its bad files under ``env.tmp``);
    the one error line must contain ``expect`` (or one of several alternatives)."""

    id: str
    description: str
    expect: str | tuple[str, ...]
    argv: Callable[[Env], list[str]]

    @property
    def expected(self) -> tuple[str, ...]:
        return (self.expect,) if isinstance(self.expect, str) else tuple(self.expect)


@dataclass
class Env:
    """What a case's argv builder gets: the fixtures, its own empty folder and its output path."""

    fx: Any
    tmp: Path
    forbidden: list[Path] = field(default_factory=list)

    @property
    def out(self) -> Path:
        """The case's --out: a path that does not exist (and must not exist afterwards)."""
        return self.tmp / "out"

    def path(self, name: str | bytes) -> Path:
        if isinstance(name, bytes):
            return Path(os.fsdecode(os.path.join(os.fsencode(self.tmp), name)))
        return self.tmp / name

    def write(self, name: str | bytes, data: bytes | str) -> Path:
        from bad_inputs.files import write

        return write(self.path(name), data)

    def copy(self, src: Path, name: str, link: bool = False) -> Path:
        """A copy of a fixture file or folder; ``link``: files over 1 MB are hard links (checkpoints
        and weights that the case only reads; facevox replaces such files, never writes into them)."""
        dst = self.path(name)
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=_link_big if link else shutil.copy2)
        else:
            shutil.copy2(src, dst)
        return dst

    def forbid(self, path: Path) -> Path:
        """``path`` must not exist after the run (e.g. the file a malicious pickle would create)."""
        self.forbidden.append(path)
        return path


def _link_big(src: str, dst: str) -> None:
    if os.path.getsize(src) > 1 << 20:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


@dataclass
class Outcome:
    case: Case
    argv: list[str]
    status: int | None = None
    stdout: str = ""
    stderr: str = ""
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    @property
    def kind(self) -> str:
        """one-line error, traceback, silently accepted, timed out or other (for the table's totals)."""
        if self.timed_out:
            return "timed out"
        if self.traceback:
            return "traceback"
        if self.status == 0:
            return "silently accepted"
        if self.status == 2 and len(self.lines) == 1 and ERROR_LINE.match(self.lines[0]):
            return "one-line error"
        return "other"

    def report(self) -> str:
        """What happened, for a failing test or the status note."""
        lines = [f"case {self.case.id}: {self.case.description}", f"argv: {' '.join(self.argv)}",
                 f"exit status: {self.status}"]
        lines += [f"problem: {p}" for p in self.problems]
        err = self.stderr.rstrip()
        if err:
            lines.append("stderr (last 2000 characters):\n" + err[-2000:])
        return "\n".join(lines)


class CaseTimeout(BaseException):
    """Raised in the case by the alarm: a BaseException, so no ``except Exception`` swallows it."""


# ------------------------------------------------------------------------------------------ capture


@contextlib.contextmanager
def captured() -> Iterator[dict[str, str]]:
    """Capture fd 1 and 2 (and sys.stdout/sys.stderr on them) into the yielded dict's
    ``stdout``/``stderr`` once the block ends. stdout is strict UTF-8 and stderr UTF-8 with
    backslashreplace, as the interpreter sets them up on a UTF-8 terminal."""
    got: dict[str, str] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    files = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    os.dup2(files[0].fileno(), 1)
    os.dup2(files[1].fileno(), 2)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="strict",
                                  write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  write_through=True)
    try:
        yield got
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = streams
        for fd, old in zip((1, 2), saved, strict=True):
            os.dup2(old, fd)
            os.close(old)
        for name, fh in zip(("stdout", "stderr"), files, strict=True):
            fh.seek(0)
            got[name] = fh.read().decode("utf-8", "backslashreplace")
            fh.close()


@contextlib.contextmanager
def _limits(seconds: float) -> Iterator[None]:
    """Stop the block after ``seconds`` (SIGALRM) and cap the address space it may add."""

    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"still running after {seconds:g} s")

    old_handler = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    old_as = _cap_address_space()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_as is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, old_as)


def _cap_address_space() -> tuple[int, int] | None:
    try:
        import resource

        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        old = resource.getrlimit(resource.RLIMIT_AS)
        soft = vm + MEMORY_HEADROOM
        if old[1] != resource.RLIM_INFINITY:
            soft = min(soft, old[1])
        resource.setrlimit(resource.RLIMIT_AS, (soft, old[1]))
        return old
    except (ImportError, OSError, ValueError, StopIteration):
        return None


# ------------------------------------------------------------------------------------------ snapshots


def snapshot(root: Path) -> dict[str, tuple]:
    """relative path -> what identifies its content, for everything under ``root``.

    A folder is ``("dir",)``; a file up to 1 MB is its size and SHA-1 (rewriting it with the same
    bytes is no change); a bigger file (weights, checkpoints) its size, mtime and inode.
    """
    out: dict[str, tuple] = {}
    if not os.path.lexists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.isdir(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = ("dir",)
            elif st.st_size <= 1 << 20 and not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, root)] = ("file", st.st_size, hashlib.sha1(fh.read()).hexdigest())
            else:
                out[os.path.relpath(p, root)] = ("big", st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def changes(before: dict, after: dict, label: str) -> list[str]:
    """``wrote``/``changed``/``removed`` lines for what differs between two snapshots of ``label``."""
    out = [f"wrote {label}/{p}" for p in sorted(set(after) - set(before))]
    out += [f"changed {label}/{p}" for p in sorted(set(after) & set(before)) if after[p] != before[p]]
    out += [f"removed {label}/{p}" for p in sorted(set(before) - set(after))]
    return [os.fsencode(x).decode("utf-8", "backslashreplace") for x in out]


# ------------------------------------------------------------------------------------------ running


def _quiet_warnings() -> None:
    """The interpreter's default warning filters: each warning once per place, deprecations hidden."""
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def run_case(case: Case, fx: Any, tmp: Path, main: Callable[[Sequence[str]], int] | None = None,
             time_limit: float = TIME_LIMIT_S) -> Outcome:
    """Run ``case`` in the empty folder ``tmp`` and judge it (see the module docstring)."""
    if main is None:
        from facevox.cli import main
    tmp.mkdir(parents=True, exist_ok=True)
    env = Env(fx, tmp)
    try:
        argv = [os.fspath(a) for a in case.argv(env)]
    except Exception as err:  # a broken case, not a finding about facevox
        outcome = Outcome(case, [])
        outcome.problems.append(f"the case's setup failed: {type(err).__name__}: {err}")
        return outcome
    outcome = Outcome(case, argv)
    before_tmp, before_fx = snapshot(tmp), snapshot(fx.root)
    cwd = os.getcwd()
    t0 = time.perf_counter()
    with captured() as got:
        os.chdir(tmp)  # a default --out relative to the working directory lands here, and is seen
        try:
            with warnings.catch_warnings(record=True) as caught:
                _quiet_warnings()
                try:
                    with _limits(time_limit):
                        outcome.status = main(argv)
                except SystemExit as stop:  # argparse, or a command that exits
                    code = stop.code
                    if code is None or isinstance(code, int):
                        outcome.status = code or 0
                    else:
                        print(code, file=sys.stderr)
                        outcome.status = 1
                except CaseTimeout as err:
                    outcome.timed_out = True
                    outcome.problems.append(str(err))
                except BaseException:  # what the interpreter would print for an uncaught exception
                    traceback.print_exc()
                    outcome.status = 1
            for w in caught:
                sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
        finally:
            os.chdir(cwd)
    outcome.seconds = time.perf_counter() - t0
    outcome.stdout, outcome.stderr = got["stdout"], got["stderr"]
    outcome.changes = changes(before_tmp, snapshot(tmp), "TMP") + changes(before_fx, snapshot(fx.root), "FIXTURES")
    outcome.problems += judge(outcome, env)
    return outcome


def judge(o: Outcome, env: Env) -> list[str]:
    """Every way the outcome falls short of the rule for bad input."""
    problems = []
    if not o.timed_out and o.status != 2:
        problems.append(f"exit status {o.status}, expected 2" + (" (silently accepted)" if o.status == 0 else ""))
    if o.traceback:
        tail = [ln for ln in (o.stderr + o.stdout).splitlines() if ln.strip()][-1:]
        problems.append(f"traceback: {tail[0] if tail else ''}")
    lines = o.lines
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, expected one")
    if lines and not ERROR_LINE.match(lines[-1]):
        problems.append(f"the last stderr line is not 'facevox: error: ...': {lines[-1][:200]!r}")
    if lines and not any(s in lines[-1] for s in o.case.expected):
        problems.append(f"the error line does not name {' or '.join(map(repr, o.case.expected))}")
    problems += o.changes
    problems += [f"created {p}" for p in env.forbidden if os.path.lexists(p)]
    return problems


def placeholder_text(text: str, fx: Any, tmp: Path) -> str:
    """``text`` with fixture and case paths replaced by short names (OUT, TMP, CORPUS, MODEL_FF, ...)."""
    names = [(str(tmp / "out"), "OUT"), (str(tmp), "TMP"), *fx.placeholders()]
    for path, name in sorted(names, key=lambda p: -len(p[0])):
        text = text.replace(path, name)
    return text


def placeholder_argv(argv: Sequence[str], fx: Any, tmp: Path) -> str:
    """The argv as one shell-like line with paths replaced by short names (see :func:`placeholder_text`)
    and each block of tiny settings of :mod:`bad_inputs.commands` shown by its name (``[SP_TINY]``)."""
    from bad_inputs import commands

    argv = list(argv)
    for name in ("SP_TINY", "FF_TINY", "FA_TINY", "IN_TINY", "DEMO_TINY"):
        block = commands.sets(*getattr(commands, name))
        for i in range(len(argv) - len(block) + 1):
            if argv[i : i + len(block)] == block:
                argv[i : i + len(block)] = [f"[{name}]"]
                break
    shown = []
    for arg in argv:
        arg = placeholder_text(os.fsencode(arg).decode("utf-8", "backslashreplace"), fx, tmp)
        shown.append(arg if arg and not re.search(r"[\s{}'\"]", arg) else repr(arg))
    return " ".join(shown)
