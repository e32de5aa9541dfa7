"""The one exception type for user errors.

A :class:`FacevoxError` means the user gave something wrong (a missing or undecodable file, an
empty folder, an unknown name, a bad config key). The command line prints it as a single line
and exits with status 2; library callers can catch it like any other exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class FacevoxError(Exception):
    """A user error: bad input, bad name, bad configuration.

    ``where`` names the file, folder or config key at fault; the message says what is wrong.
    ``str(err)`` is ``"<where>: <problem>"`` so it can be printed as one line.
    """

    def __init__(self, problem: str, where: str | Path | None = None) -> None:
        self.problem = " ".join(str(problem).split())  # always one line
        self.where = None if where is None else str(where)
        super().__init__(self.problem if self.where is None else f"{self.where}: {self.problem}")


@contextlib.contextmanager
def naming(where: str | Path) -> Iterator[None]:
    """Give a :class:`FacevoxError` raised in the block that names nothing the ``where`` of the setting
    that caused it (e.g. ``model.backbone_kwargs`` for a size the model factory refuses)."""
    try:
        yield
    except FacevoxError as err:
        if err.where is not None:
            raise
        raise FacevoxError(err.problem, where) from None


def from_worker(err: BaseException) -> FacevoxError | None:
    """The one-line :class:`FacevoxError` behind an error that a DataLoader worker re-raised, or None.

    PyTorch re-raises an exception from a worker process as ``type(err)(message)`` where the message is
    ``Caught FacevoxError in DataLoader worker process 0. Original Traceback (...) ... FacevoxError: <where>:
    <problem>``; this recovers the original ``<where>: <problem>`` (``where`` is the text before the first
    ``": "``, which gives the same printed line).
    """
    text = " ".join(str(err).split())
    if not text.startswith("Caught ") or " in DataLoader worker process " not in text:
        return None
    name = text[len("Caught "):].split(" ", 1)[0]
    if not isinstance(err, FacevoxError) and name not in _error_names():
        return None  # a worker error of another kind: left as it is
    marker = f"{name}: "
    at = text.rfind(marker)
    if at < 0:
        return None
    original = text[at + len(marker):]
    where, sep, problem = original.partition(": ")
    return FacevoxError(problem, where) if sep and problem else FacevoxError(original)


def _error_names() -> set[str]:
    names, todo = set(), [FacevoxError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Turn a :class:`FacevoxError` that a DataLoader worker re-raised (many lines) back into the one-line original."""
    try:
        yield
    except Exception as err:
        one_line = from_worker(err)
        if one_line is None:
            raise
        raise one_line from None
