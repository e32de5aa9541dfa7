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
