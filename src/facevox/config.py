"""Run settings: dataclasses, YAML recipes and type-checked ``--set a.b=value`` overrides.

A task describes its settings as nested dataclasses (see :class:`TrainConfig`). A recipe is a
YAML file with the same nesting; :func:`load_config` reads it, applies overrides and checks
every value against the dataclass field types. An unknown key is an error that lists the valid
keys; a value of the wrong type is an error that names the dotted key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text

T = TypeVar("T")


@dataclasses.dataclass
class TrainConfig:
    """Settings of the shared training loop (:mod:`facevox.train`)."""

    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimiser steps, whatever ``epochs`` says
    batch_size: int = 16  # global batch: split across processes under torchrun
    drop_last: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.9  # sgd only
    scheduler: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where the hardware has it
    channels_last: bool | None = None  # None: on for models with 2-D convolutions
    device: str = "auto"  # auto, cpu, cuda, cuda:1 ...
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 200  # steps; a checkpoint is also written at the end of every epoch
    progress: bool = True


# --------------------------------------------------------------------------------------------
# building a dataclass from plain data, with type checks


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively.

    ``where`` is the dotted key prefix used in error messages (``"train."``). Keys missing from
    ``data`` keep their values in ``base`` (default: the class defaults). A nested section
    given in ``data`` is merged into that field's own default, so a recipe that sets one key of
    ``speaker.train`` keeps the other keys of the default ``speaker.train``, not those of a
    bare ``TrainConfig()``.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise FacevoxError(f"expected a mapping of settings, got {type(data).__name__}", where.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise FacevoxError(
            f"unknown key '{unknown[0]}'; valid keys: {', '.join(sorted(fields))}", f"{where}{unknown[0]}"
        )
    kwargs = {}
    for name in (n for n in fields if n in data):
        value, tp, key = data[name], hints[name], f"{where}{name}"
        if dataclasses.is_dataclass(tp) and value is None:
            value = {}  # "train:" with nothing under it: the defaults, as for a missing section
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            if base is not None:
                default = getattr(base, name)
            elif fields[name].default_factory is not dataclasses.MISSING:
                default = fields[name].default_factory()
            elif fields[name].default is not dataclasses.MISSING:
                default = fields[name].default
            else:
                default = None
            kwargs[name] = from_dict(tp, value, key + ".", default)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs) if base is None else dataclasses.replace(base, **kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise a FacevoxError naming ``key``."""
    tp = {dict: dict[str, Any], list: list[Any], tuple: tuple[Any, ...]}.get(tp, tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except FacevoxError:
                continue
        raise FacevoxError(f"expected {_type_name(tp)}, got {value!r}", key)
    if origin is Literal:
        if value in args:
            return value
        raise FacevoxError(f"expected one of {', '.join(map(repr, args))}, got {value!r}", key)
    if origin in (list, Sequence, tuple):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise FacevoxError(f"expected a list, got {value!r}", key)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise FacevoxError(f"expected a mapping, got {value!r}", key)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
        raise FacevoxError(f"expected true or false, got {value!r}", key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise FacevoxError(f"expected an integer, got {value!r}", key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise FacevoxError(f"expected a number, got {value!r}", key)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise FacevoxError(f"expected a string, got {value!r}", key)
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise FacevoxError(f"expected a path, got {value!r}", key)
    raise TypeError(f"config field {key} has unsupported type {tp!r}")


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(tp) else "")


# --------------------------------------------------------------------------------------------
# overrides, recipes, saving


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"train.lr=3e-4"`` into (``["train", "lr"]``, value parsed as YAML)."""
    if "=" not in text:
        raise FacevoxError(f"override must look like key.sub=value, got {text!r}", "--set")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise FacevoxError(f"override has an empty key: {text!r}", "--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=value`` override set (keys are checked later)."""
    out = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise FacevoxError(f"'{part}' is a value, not a section", ".".join(parts[: i + 1]))
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and syntax errors into one-line user errors."""
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("recipe file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise FacevoxError(f"not valid YAML{line}: {getattr(err, 'problem', err)}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FacevoxError("a recipe must be a mapping of sections", path)
    return data


def load_config(cls: type[T], recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load dataclass ``cls`` from an optional YAML recipe plus ``--set`` overrides."""
    data = read_yaml(recipe) if recipe is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except FacevoxError as err:
        if recipe is not None and err.where is not None:
            raise FacevoxError(err.problem, f"{recipe}: {err.where}") from None
        raise


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (paths as strings, tuples as lists)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(_plain(dict(data)), sort_keys=False, default_flow_style=False)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return atomic_write_text(path, dump_yaml(data))
