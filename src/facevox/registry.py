"""Registries: models, losses and explainers are created by name.

Each family registers its factories with a decorator::

    @MODELS.register("resnet18")
    def resnet18(*, num_classes: int = 2) -> nn.Module: ...

and callers build them with ``create_model("resnet18", num_classes=1)``. A duplicate name is an
error at import time; an unknown name, or a keyword the factory does not take, is a
:class:`~facevox.errors.FacevoxError` that lists the valid choices. Registries fill themselves
lazily by importing their packages the first time they are asked for a name.

Models are first built on PyTorch's ``meta`` device, which allocates nothing, to
count their parameters: one above :data:`MAX_PARAMETERS` (2e9, 8 GB in fp32 before gradients
and optimiser state) is refused before any memory is taken, so a typo such as
``--set model.backbone_kwargs.channels=10000000`` is a one-line error, not an out-of-memory
crash. A factory that rejects its arguments (a negative channel count, a string for a width)
raises :class:`BuildError`, a FacevoxError that is also a ValueError.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from facevox.errors import FacevoxError

MAX_PARAMETERS = 2_000_000_000  # parameters and buffers of one model (8 GB in fp32)

# what a factory raises for arguments it cannot build with (NotImplementedError is a RuntimeError)
_BUILD_ERRORS = (TypeError, ValueError, RuntimeError, ArithmeticError, IndexError, KeyError, AttributeError,
                 AssertionError)


class BuildError(FacevoxError, ValueError):
    """A factory could not build an object with the arguments given (or it would be too large)."""


class Registry:
    """A name -> factory map for one kind of object (``kind`` is used in messages).

    With ``probe``, :meth:`create` first builds the object on the meta device to check its
    size and arguments (for factories of ``nn.Module`` s).
    """

    def __init__(self, kind: str, packages: Sequence[str] = (), probe: bool = False) -> None:
        self.kind = kind
        self.probe = probe
        self._packages = tuple(packages)
        self._loaded = False
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a factory (a function or a class) under ``name``."""

        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or factory.__name__
            if key in self._factories:
                old = self._factories[key]
                raise ValueError(f"{self.kind} '{key}' registered twice: {_where(old)} and {_where(factory)}")
            self._factories[key] = factory
            return factory

        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for package in self._packages:
                importlib.import_module(package)

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a glob pattern (``"resnet*"``)."""
        self._load()
        names = sorted(self._factories)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def get(self, name: str) -> Callable[..., Any]:
        self._load()
        if name not in self._factories:
            valid = ", ".join(self.names()) or "(none)"
            raise FacevoxError(f"unknown {self.kind} '{name}'; valid {self.kind}s: {valid}")
        return self._factories[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._factories

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build ``name`` with keyword arguments checked against the factory's signature."""
        factory = self.get(name)
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not takes_any:
            valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            for key in kwargs:
                if key not in valid:
                    raise FacevoxError(
                        f"{self.kind} '{name}' takes no argument '{key}'; valid: {', '.join(valid) or '(none)'}"
                    )
            missing = [n for n in valid if params[n].default is inspect.Parameter.empty and n not in kwargs]
            if missing:
                raise FacevoxError(f"{self.kind} '{name}' needs argument '{missing[0]}'")
        obj = self._build(name, factory, kwargs)
        # remembered so a model folder can rebuild the object from its config alone
        with contextlib.suppress(AttributeError):
            obj.facevox_spec = {"name": name, "kwargs": dict(kwargs)}
        return obj

    def _build(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """``factory(**kwargs)``, probed on the meta device first; argument errors become BuildErrors."""
        if self.probe:
            try:
                import torch

                with torch.device("meta"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
                    probe = factory(**kwargs)
            except FacevoxError:
                raise
            except _BUILD_ERRORS:
                pass  # a bad argument, or a factory the meta device cannot run: the real build tells
            else:
                self._check_size(name, probe, kwargs)
        try:
            obj = factory(**kwargs)
        except FacevoxError:
            raise
        except _BUILD_ERRORS as err:
            raise BuildError(f"{self.kind} '{name}' cannot be built with {_args(kwargs)}: "
                             f"{type(err).__name__}: {err}") from None
        if self.probe:
            self._check_size(name, obj, kwargs)
        return obj

    def _check_size(self, name: str, obj: Any, kwargs: dict[str, Any]) -> None:
        tensors = _tensors(obj)
        count = sum(t.numel() for t in tensors)
        if count > MAX_PARAMETERS:
            raise BuildError(f"{self.kind} '{name}' with {_args(kwargs)} would have {count:.3g} parameters "
                             f"({4 * count / 1e9:.3g} GB in fp32), more than the limit of {MAX_PARAMETERS:.3g}; "
                             "make it smaller")
        if any(t.numel() == 0 for t in tensors):
            raise BuildError(f"{self.kind} '{name}' with {_args(kwargs)} has a layer of size 0 (a size set to 0?)")

    def describe(self, name: str) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""


def _args(kwargs: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
    return text if len(text) <= 200 else text[:197] + "..."


def _tensors(obj: Any) -> list[Any]:
    """The parameters and buffers of an ``nn.Module`` (nothing for other objects)."""
    params, buffers = getattr(obj, "parameters", None), getattr(obj, "buffers", None)
    if not (callable(params) and callable(buffers)):
        return []
    return [*params(), *buffers()]


def _where(obj: Callable[..., Any]) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("model", ["facevox.nets"], probe=True)
LOSSES = Registry("loss", ["facevox.losses"])  # facevox.losses.settings.build_loss checks their arguments
EXPLAINERS = Registry("explainer", ["facevox.explain"])
ATTACKS = Registry("attack", ["facevox.attacks"])
REGISTRIES = {"models": MODELS, "losses": LOSSES, "explainers": EXPLAINERS, "attacks": ATTACKS}

register_model = MODELS.register
register_loss = LOSSES.register
register_explainer = EXPLAINERS.register
register_attack = ATTACKS.register


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model by name (see ``facevox list models``)."""
    return MODELS.create(name, **kwargs)


def create_loss(name: str, **kwargs: Any) -> Any:
    """Build a registered loss by name (see ``facevox list losses``)."""
    return LOSSES.create(name, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a glob pattern."""
    return MODELS.names(pattern)
