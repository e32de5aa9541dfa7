"""Checking a loss's settings when it is built, and building a loss from a task's config.

Every loss checks its keyword arguments in ``__init__`` with the helpers here: a bad value (a
negative scale, a NaN margin, a string where a number goes, an unknown margin type) raises
:class:`LossSettingError`, a :class:`~facevox.errors.FacevoxError` (and a ``ValueError``) whose
``key`` names the argument. :func:`build_loss` is what the tasks call: it turns those errors, unknown
arguments and arguments the task sets itself into one-line errors naming the config key, e.g.
``loss.kwargs.scale: must be > 0, got -30``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from facevox.errors import FacevoxError

SIZE_ARGS = ("embed_dim", "num_classes")  # set by the task from the model and the data, never by loss.kwargs


class LossSettingError(FacevoxError, ValueError):
    """A loss argument with a value the loss cannot use; ``key`` is the argument's name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem, key)
        self.key = key


def number(key: str, value: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
           le: float | None = None) -> float:
    """``value`` as a finite float within the given bounds, else a :class:`LossSettingError` naming ``key``.

    Numeric strings are read as numbers (PyYAML reads ``3e-1`` as a string); booleans are refused.
    """
    v: float | None = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
    elif isinstance(value, str):
        try:
            v = float(value)
        except ValueError:
            v = None
    if v is None:
        raise LossSettingError(key, f"must be a number, got {value!r}")
    if not math.isfinite(v):
        raise LossSettingError(key, f"must be a finite number, got {value!r}")
    for bound, ok, word in ((gt, lambda b: v > b, ">"), (ge, lambda b: v >= b, ">="), (lt, lambda b: v < b, "<"),
                            (le, lambda b: v <= b, "<=")):
        if bound is not None and not ok(bound):
            raise LossSettingError(key, f"must be {word} {bound:g}, got {v:g}")
    return v


def choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a :class:`LossSettingError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise LossSettingError(key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def flag(key: str, value: Any) -> bool:
    """``value`` if it is a bool, else a :class:`LossSettingError`."""
    if not isinstance(value, bool):
        raise LossSettingError(key, f"must be true or false, got {value!r}")
    return value


def loss_settings(name: str) -> list[str]:
    """The keyword arguments loss ``name`` takes from ``loss.kwargs`` (its sizes left out)."""
    from facevox.registry import LOSSES

    params = inspect.signature(LOSSES.get(name)).parameters
    return [n for n, p in params.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in SIZE_ARGS]


def build_loss(name: str, kwargs: Mapping[str, Any] | None = None, *, where: str = "loss", **sizes: int) -> Any:
    """``create_loss(name, **sizes, **kwargs)`` with every problem a one-line FacevoxError naming its key.

    ``where`` is the loss's section in the task's config (``loss``): an unknown name is reported at
    ``loss.name``, a bad or unknown argument at ``loss.kwargs.<argument>``. ``sizes`` are
    ``embed_dim`` and ``num_classes`` for a classification head, nothing for a pair loss.
    """
    from facevox.registry import LOSSES, create_loss

    if name not in LOSSES:
        raise FacevoxError(f"unknown loss '{name}'; valid losses: {', '.join(LOSSES.names())}", f"{where}.name")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping):
        raise FacevoxError(f"expected a mapping of loss arguments, got {kwargs!r}", f"{where}.kwargs")
    params = inspect.signature(LOSSES.get(name)).parameters
    if sizes and not all(s in params for s in sizes):
        raise FacevoxError(f"'{name}' is a pair loss (for pair or siamese models), not a classification head",
                           f"{where}.name")
    valid = loss_settings(name)
    for key in kwargs:
        if key in SIZE_ARGS:
            raise FacevoxError(f"is set by the task (from the model and the data), not in {where}.kwargs",
                               f"{where}.kwargs.{key}")
        if key not in valid:
            raise FacevoxError(f"'{name}' has no argument '{key}'; valid: {', '.join(valid) or '(none)'}",
                               f"{where}.kwargs.{key}")
    try:
        return create_loss(name, **sizes, **kwargs)
    except LossSettingError as err:
        raise FacevoxError(err.problem, f"{where}.kwargs.{err.key}") from None
    except ValueError as err:  # a loss's own check that names no single argument
        raise FacevoxError(str(err), f"{where}.kwargs") from None
