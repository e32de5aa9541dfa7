"""Run settings: dataclasses, YAML recipes and type-checked ``--set a.b=value`` overrides.

A task describes its settings as nested dataclasses (see :class:`TrainConfig`). A recipe is a
YAML file with the same nesting; :func:`load_config` reads it, applies overrides and checks
every value against the dataclass field types. An unknown key is an error that lists the valid
keys; a value of the wrong type is an error that names the dotted key.

Every numeric field declares the values it allows with :func:`ranged` (``lr: float = ranged(1e-3,
gt=0)``); :func:`validate` checks them after the types, so recipes, ``--set`` overrides and configs
built in Python are held to the same rules. Floats must be finite (no nan or inf) unless a field
says otherwise, a fixed-length tuple (``tuple[float, float]``) takes exactly that many values, and
a dataclass can add rules between its fields with a ``cross_check`` method.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# the values a numeric setting allows

RANGE = "facevox_range"  # the dataclasses.field metadata key of a Range


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric setting allows; for a tuple or list, the rule for each item.

    ``ge``/``gt``/``le``/``lt`` are inclusive/exclusive bounds (None: unbounded). Floats must be
    finite unless ``finite`` is False. ``order`` asks the items of a tuple to increase: ``"<="``
    (``low <= high``) or ``"<"`` (strictly). ``None`` is allowed when the field's type allows it.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True
    order: Literal["<=", "<"] | None = None

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return not self.finite and self.ge is None and self.gt is None and self.le is None and self.lt is None
        if self.finite and isinstance(value, float) and math.isinf(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self, integer: bool = False) -> str:
        """``"a finite number > 0"``, ``"an integer in [1, 100]"`` ..."""
        what = "an integer" if integer else "a finite number" if self.finite else "a number"
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else None
        high = ("]", self.le) if self.le is not None else (")", self.lt) if self.lt is not None else None
        if low and high:
            return f"{what} in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
        if low:
            return f"{what} {'>=' if low[0] == '[' else '>'} {_num(low[1])}"
        if high:
            return f"{what} {'<=' if high[0] == ']' else '<'} {_num(high[1])}"
        return what


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def ranged(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
    order: Literal["<=", "<"] | None = None,
) -> Any:
    """A dataclass field with a default and the :class:`Range` of values it allows."""
    rng = Range(ge=ge, gt=gt, le=le, lt=lt, finite=finite, order=order)
    return dataclasses.field(default=default, metadata={RANGE: rng})


# bounds used by many settings
PROB = {"ge": 0.0, "le": 1.0}  # a probability or fraction
SEED = {"ge": 0, "le": 2**32 - 1}  # what NumPy's legacy seeding takes
MAX_IMAGE_SIZE = 4096  # pixels a side: larger images would need gigabytes each
IMAGE_SIZE = {"ge": 1, "le": MAX_IMAGE_SIZE}


def ranged_arg(kind: type[int] | type[float], **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses an int or float and checks it against ``Range(**bounds)``.

    A bad value is an argparse error (one line, exit status 2): ``argument --batch-size: must be
    an integer >= 1, got '0'``.
    """
    rng = Range(**bounds)

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rng.describe(kind is int)}, got {text!r}") from None
        if not rng.allows(value):
            raise argparse.ArgumentTypeError(f"must be {rng.describe(kind is int)}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


@dataclasses.dataclass
class TrainConfig:
    """Settings of the shared training loop (:mod:`facevox.train`)."""

    epochs: int = ranged(1, ge=1)
    max_steps: int | None = ranged(None, ge=1)  # stop after this many optimiser steps, whatever ``epochs`` says
    batch_size: int = ranged(16, ge=1)  # global batch: split across processes under torchrun
    drop_last: bool = True
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.0, ge=0)
    decay_norms_and_biases: bool = False  # false: no weight decay on biases and norm-layer weights (ndim < 2)
    accum_steps: int = ranged(1, ge=1)  # micro-batches of batch_size per optimiser step (effective batch x this)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = ranged(0.9, ge=0, lt=1)  # sgd only
    scheduler: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = ranged(0, ge=0)
    grad_clip: float | None = ranged(None, gt=0)
    seed: int = ranged(0, **SEED)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where the hardware has it
    channels_last: bool | None = None  # None: on for models with 2-D convolutions
    device: str = "auto"  # auto, cpu, cuda, cuda:1 ...
    num_workers: int = ranged(0, ge=0)
    prefetch_factor: int = ranged(2, ge=1)  # batches each DataLoader worker loads ahead (num_workers > 0)
    pin_memory: bool | None = None  # None: page-locked batches when training on CUDA
    log_every: int = ranged(10, ge=1)
    ckpt_every: int = ranged(200, ge=1)  # steps; a checkpoint is also written at the end of every epoch
    progress: bool = True


# --------------------------------------------------------------------------------------------
# building a dataclass from plain data, with type checks


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges recursively.

    ``where`` is the dotted key prefix used in error messages (``"train."``). Keys missing from
    ``data`` keep their values in ``base`` (default: the class defaults). A nested section
    given in ``data`` is merged into that field's own default, so a recipe that sets one key of
    ``speaker.train`` keeps the other keys of the default ``speaker.train``, not those of a
    bare ``TrainConfig()``. The result passes :func:`validate`.
    """
    cfg = _build(cls, data, where, base)
    validate(cfg, where)
    return cfg


def _build(cls: type[T], data: Mapping[str, Any] | None, where: str, base: T | None) -> T:
    """:func:`from_dict` without the range checks (done once, on the whole result)."""
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
            kwargs[name] = _build(tp, value, key + ".", default)
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
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own message ("expected 2 values ...")
            return _coerce(value, options[0], key)
        for arg in options:
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
        fixed = _fixed_length(tp)
        if fixed is not None and len(value) != fixed:
            raise FacevoxError(f"expected {fixed} values, got {len(value)}: {list(value)!r}", key)
        item_tps = args if fixed is not None else [args[0] if args else Any] * len(value)
        items = [_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_tps, strict=True))]
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
        if isinstance(value, Path):  # set in Python code
            return str(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise FacevoxError(f"expected a string, got {value!r}", key)
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise FacevoxError(f"expected a path, got {value!r}", key)
    raise TypeError(f"config field {key} has unsupported type {tp!r}")


def _fixed_length(tp: Any) -> int | None:
    """The length of a fixed-length tuple type (``tuple[float, float]``: 2), else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis and args != ((),):
        return len(args)
    return None


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(tp) else "")


# --------------------------------------------------------------------------------------------
# range checks


def validate(cfg: Any, where: str = "") -> None:
    """Check a config dataclass (recursively): types, tuple lengths, declared ranges, cross-checks.

    Raises a one-line :class:`FacevoxError` naming the dotted key (``where`` is its prefix,
    e.g. ``"speaker."``), such as ``train.lr: must be a finite number > 0, got nan``. Every float
    must be finite unless its field's :class:`Range` says ``finite=False``; floats inside
    free-form mappings (``model.backbone_kwargs``) must be finite too.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"validate expects a dataclass instance, got {type(cfg).__name__}")
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, tp, key = getattr(cfg, f.name), hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, key + ".")
            continue
        value = _coerce(value, tp, key)  # the type check, for configs built in Python
        _check_range(value, tp, f.metadata.get(RANGE), key)
    cross_check = getattr(cfg, "cross_check", None)
    if callable(cross_check):
        for name, problem in cross_check():
            raise FacevoxError(problem, f"{where}{name}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_range(value: Any, tp: Any, rng: Range | None, key: str) -> None:
    """Check ``value`` (already of type ``tp``) against ``rng`` and the finite-float rule."""
    if value is None:
        return
    rng = rng or Range()
    if isinstance(value, (bool, str, Path)):
        return
    if isinstance(value, (int, float)):
        if not rng.allows(value):
            prefix = "null or " if _allows_none(tp) else ""
            raise FacevoxError(f"must be {prefix}{rng.describe(isinstance(value, int))}, got {value!r}", key)
        return
    if isinstance(value, Mapping):  # free-form settings (kwargs): only the finite-float rule
        for k, v in value.items():
            _check_range(v, Any, None, f"{key}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not rng.allows(v):
                raise FacevoxError(f"each value must be {rng.describe(isinstance(v, int))}, got {v!r}", f"{key}[{i}]")
            if isinstance(v, (list, tuple, Mapping)):
                _check_range(v, Any, None, f"{key}[{i}]")
        if rng.order is not None:
            pairs = list(zip(value, value[1:], strict=False))
            if any(a > b if rng.order == "<=" else a >= b for a, b in pairs):
                what = "low <= high" if rng.order == "<=" else "low < high"
                if len(value) > 2:
                    what = "increasing" if rng.order == "<" else "in increasing order (each <= the next)"
                raise FacevoxError(f"must be {what}, got {list(value)!r}", key)


def _allows_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _numeric(tp: Any) -> bool:
    """Whether a field of type ``tp`` holds numbers: int, float, their tuples or lists, or X | None."""
    if tp in (int, float):
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType, tuple, list, Sequence):
        return any(_numeric(a) for a in args if a is not Ellipsis)
    return False


def fields_without_range(cls: type, where: str = "") -> list[str]:
    """Dotted keys of the numeric fields of ``cls`` (and its nested sections) that declare no range."""
    missing = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            missing += fields_without_range(tp, f"{where}{f.name}.")
        elif _numeric(tp) and RANGE not in f.metadata:
            missing.append(f"{where}{f.name}")
    return missing


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
    if path.is_dir():
        raise FacevoxError("is a folder, not a recipe file", path)
    if not path.is_file():
        raise FacevoxError("recipe file not found", path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise FacevoxError(f"not UTF-8 text (byte {err.start}); a recipe is a UTF-8 YAML file", path) from None
    except PermissionError:
        raise FacevoxError("cannot read the recipe: permission denied", path) from None
    except OSError as err:
        raise FacevoxError(f"cannot read the recipe ({err.strerror or err})", path) from None
    try:
        data = yaml.safe_load(text)
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
    from facevox.recipes import resolve_recipe  # a file, or a built-in name such as "ecapa_mmp"

    data = read_yaml(resolve_recipe(recipe)) if recipe is not None else {}
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
