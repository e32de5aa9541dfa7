"""Registries: models, losses and explainers are created by name.

Each family registers its factories with a decorator::

    @MODELS.register("resnet18")
    def resnet18(*, num_classes: int = 2) -> nn.Module: ...

and callers build them with ``create_model("resnet18", num_classes=1)``. A duplicate name is an
error at import time; an unknown name, or a keyword the factory does not take, is a
:class:`~facevox.errors.FacevoxError` that lists the valid choices. Registries fill themselves
lazily by importing their packages the first time they are asked for a name.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from facevox.errors import FacevoxError


class Registry:
    """A name -> factory map for one kind of object (``kind`` is used in messages)."""

    def __init__(self, kind: str, packages: Sequence[str] = ()) -> None:
        self.kind = kind
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
        obj = factory(**kwargs)
        # remembered so a model folder can rebuild the object from its config alone
        with contextlib.suppress(AttributeError):
            obj.facevox_spec = {"name": name, "kwargs": dict(kwargs)}
        return obj

    def describe(self, name: str) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""


def _where(obj: Callable[..., Any]) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("model", ["facevox.nets"])
LOSSES = Registry("loss", ["facevox.losses"])
EXPLAINERS = Registry("explainer", ["facevox.explain"])
REGISTRIES = {"models": MODELS, "losses": LOSSES, "explainers": EXPLAINERS}

register_model = MODELS.register
register_loss = LOSSES.register
register_explainer = EXPLAINERS.register


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model by name (see ``facevox list models``)."""
    return MODELS.create(name, **kwargs)


def create_loss(name: str, **kwargs: Any) -> Any:
    """Build a registered loss by name (see ``facevox list losses``)."""
    return LOSSES.create(name, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a glob pattern."""
    return MODELS.names(pattern)
