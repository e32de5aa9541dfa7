"""A trained model is a folder: it carries everything needed to load it again.

Layout::

    model.yaml          what to build: registered model name + its keyword arguments, and the task
                        (speaker, fakeface, face, invert) whose commands use it
    model.safetensors   the weights
    config.yaml         the resolved run config that trained it (if any)
    metrics.json        its evaluation metrics (if any)
    extra.json          task data a model needs at inference (thresholds, calibration, ...)
    README.md           the model card: task, data, licence, metrics

``load_model(path)`` needs nothing else. Folders are written to a temporary name and renamed
into place, so an interrupted save never leaves a half-written model. Reading checks what a
folder holds before anything uses it: the task (a speaker model given to a fakeface command is
a one-line error saying so), the types of what the task reads from ``extra.json``, UTF-8 text,
and finite weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_model as _st_load
from safetensors.torch import save_model as _st_save
from torch import nn

from facevox.config import dump_yaml, to_dict
from facevox.errors import FacevoxError
from facevox.fileio import atomic_dir
from facevox.model_schema import (  # noqa: F401 - TASKS, task_of re-exported
    CONFIG_SCHEMAS,
    EXTRA_SCHEMAS,
    MAPPING,
    TASKS,
    TEXT,
    check_fields,
    infer_task,
    one_of,
    or_null,
    shown_value,
    task_of,
)
from facevox.registry import create_model
from facevox.textfile import read_text, shown_name

FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """The short description saved as ``README.md`` next to the weights."""

    task: str
    data: str  # which data trained it, e.g. "LibriSpeech train-clean-100 (251 speakers)"
    licence: str  # licence of the training data / weights
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_markdown(self, name: str, spec: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
        lines = [f"# {name}", "", self.description or f"A facevox model for {self.task}.", ""]
        lines += [f"- **Task:** {self.task}", f"- **Architecture:** `{spec['name']}` {dict(spec['kwargs'])}"]
        lines += [f"- **Training data:** {self.data}", f"- **Licence:** {self.licence}"]
        if self.intended_use:
            lines.append(f"- **Intended use:** {self.intended_use}")
        if self.limitations:
            lines.append(f"- **Limitations:** {self.limitations}")
        lines += [f"- **{k}:** {v}" for k, v in self.extra.items()]
        if metrics:
            lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if not isinstance(v, (dict, list))]
        lines += ["", "Load it with `facevox.load_model(path)`.", ""]
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------------------------
# reading a folder


@dataclass
class ModelFolder:
    """Everything read back from a model folder."""

    path: Path
    model: nn.Module
    spec: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    extra: dict[str, Any]
    card: str
    task: str | None = None  # one of TASKS; None for a folder that does not say (and whose task is not inferred)

    @property
    def inference(self) -> Any:
        """The task's typed inference spec (:mod:`facevox.inference_spec`), or None for an unknown task."""
        from facevox.inference_spec import inference_spec

        return inference_spec(self.task, self.extra, self.config)


def save_model(
    path: str | Path,
    model: nn.Module,
    *,
    card: ModelCard,
    config: Any = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (built with ``create_model``) as a model folder at ``path``.

    ``model.yaml`` records the task (one of :data:`TASKS`) that ``card.task`` names (or
    ``extra["task"]``), so commands of another task refuse the folder with a clear message.
    """
    spec = getattr(model, "facevox_spec", None)
    if spec is None:
        raise ValueError("save_model needs a model made by facevox.create_model (it has no facevox_spec)")
    from facevox import __version__

    path = Path(path)
    cfg = to_dict(config) if config is not None and not isinstance(config, Mapping) else dict(config or {})
    task = task_of(card.task) or (extra or {}).get("task")
    spec_doc = {"format_version": FORMAT_VERSION, "facevox_version": __version__,
                **({"task": task} if task in TASKS else {}), **spec}
    with atomic_dir(path) as tmp:
        (tmp / "model.yaml").write_text(dump_yaml(spec_doc), encoding="utf-8")
        was_training = model.training
        _st_save(model.eval(), str(tmp / "model.safetensors"))
        model.train(was_training)
        if cfg:
            (tmp / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(dict(metrics or {}), indent=2, default=float) + "\n")
        if extra:
            (tmp / "extra.json").write_text(json.dumps(dict(extra), indent=2, default=float) + "\n")
        (tmp / "README.md").write_text(card.to_markdown(path.name, spec, metrics or {}), encoding="utf-8")
    return path


def read_model_folder(path: str | Path, device: str | torch.device = "cpu", *,
                      task: str | Sequence[str] | None = None, use: str | None = None) -> ModelFolder:
    """Load a model folder: the model (in eval mode) and its config, metrics and extras.

    ``task`` (one of :data:`TASKS`, or several) is what the caller needs: a folder of another
    task is a one-line error saying which task it holds and what ``use`` (e.g. ``"speaker
    verify"``) needs. What the task's commands read from ``extra.json`` and ``config.yaml`` is
    type-checked (:data:`EXTRA_SCHEMAS`), and weights with NaN or infinite values are refused,
    each with a one-line error naming the file.
    """
    path = Path(path)
    wanted = (task,) if isinstance(task, str) else tuple(task or ())
    if not path.is_dir():
        raise FacevoxError("model folder not found", shown_name(path))
    spec_file = path / "model.yaml"
    weights = path / "model.safetensors"
    for needed in (spec_file, weights):
        if not needed.is_file():
            raise FacevoxError(f"not a facevox model folder: {needed.name} is missing", shown_name(path))
    spec = _read_spec(spec_file)
    name, kwargs = spec["name"], spec["kwargs"]
    extra = _read_optional_json(path / "extra.json")
    card = read_text(path / "README.md") if (path / "README.md").is_file() else ""
    found = spec.get("task") or infer_task(spec, extra, card)
    if wanted and found is not None and found not in wanted:
        needs = " or ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 2 else wanted)
        raise FacevoxError(f"this is a {found} model folder; {use or 'this command'} needs "
                           f"{'an' if needs[0] in 'aeiou' else 'a'} {needs} model", shown_name(path))
    schema_task = found or (wanted[0] if len(wanted) == 1 else None)
    check_fields(extra, EXTRA_SCHEMAS.get(schema_task, {}), shown_name(path / "extra.json"))
    config = _read_optional_yaml(path / "config.yaml")
    check_fields(config, CONFIG_SCHEMAS.get(schema_task, {}), shown_name(path / "config.yaml"))
    metrics = _read_optional_json(path / "metrics.json")
    try:
        model = create_model(name, **kwargs)
    except FacevoxError as err:
        raise FacevoxError(err.problem, shown_name(spec_file)) from None
    except (TypeError, ValueError) as err:  # a keyword of the right name but a value the factory rejects
        raise FacevoxError(f"cannot build model '{name}' ({' '.join(str(err).split())[:160]})",
                           shown_name(spec_file)) from None
    try:
        missing, unexpected = _st_load(model, str(weights), strict=False, device=str(device))
    except Exception as err:  # safetensors raises several types for corrupt files
        text = " ".join(str(err).split())
        if "size mismatch" in text:
            detail = text[text.index("size mismatch") :][:160]
            raise FacevoxError(f"weights do not fit model '{name}' ({detail})", shown_name(weights)) from None
        raise FacevoxError(f"cannot read weights ({text[:200]})", shown_name(weights)) from None
    if missing or unexpected:
        bad = (list(missing) + list(unexpected))[:3]
        raise FacevoxError(f"weights do not fit model '{name}' (mismatched keys: {', '.join(bad)})",
                           shown_name(weights))
    check_finite(model.state_dict(), weights)
    model.to(device).eval()
    return ModelFolder(path=path, model=model, spec={"name": name, "kwargs": kwargs}, config=config,
                       metrics=metrics, extra=extra, card=card, task=found)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load the model saved in folder ``path`` (eval mode). Its extras are on ``model.facevox_extra``."""
    folder = read_model_folder(path, device)
    folder.model.facevox_extra = folder.extra
    return folder.model


def check_finite(state: Mapping[str, torch.Tensor], where: str | Path) -> None:
    """A one-line error naming ``where`` and the first floating-point tensor with NaN or infinite values."""
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
            raise FacevoxError(f"weights contain {kind} values (first in tensor '{key}'); the model "
                               "diverged or the file is damaged", shown_name(where))


def _read_spec(spec_file: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(read_text(spec_file))
    except yaml.YAMLError as err:
        raise FacevoxError(f"not valid YAML ({' '.join(str(err).split())[:160]})", shown_name(spec_file)) from None
    if not isinstance(spec, dict):
        raise FacevoxError(f"must be a mapping with 'name' and 'kwargs', got {shown_value(spec)}",
                           shown_name(spec_file))
    check_fields(spec, {"name": TEXT.needed(), "kwargs": or_null(MAPPING),
                        "task": one_of(*TASKS)}, shown_name(spec_file))
    return {**spec, "kwargs": dict(spec.get("kwargs") or {})}


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise FacevoxError(f"not valid JSON ({err.msg} at line {err.lineno})", shown_name(path)) from None
    if not isinstance(doc, dict):
        raise FacevoxError(f"must be a JSON object ({{\"key\": value, ...}}), got {shown_value(doc)}", shown_name(path))
    return doc


def _read_optional_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as err:
        raise FacevoxError(f"not valid YAML ({' '.join(str(err).split())[:160]})", shown_name(path)) from None
    if not isinstance(doc, dict):
        raise FacevoxError(f"must be a YAML mapping (key: value), got {shown_value(doc)}", shown_name(path))
    return doc


def load_weights(module: nn.Module, path: str | Path, *, what: str = "the module", key: str | None = None,
                 optional: str | None = None) -> list[str]:
    """Load a state-dict file (``torch.save`` or safetensors) into ``module``; returns the keys left as they were.

    The state dict may sit under ``key`` (or ``state_dict``/``model``) of a checkpoint dict; a
    ``module.`` prefix (DataParallel) is removed. Keys starting with ``optional`` (e.g. ``"fc."``,
    a classifier whose class count differs) are skipped when the file lacks them or their shape
    differs. Anything else that is unreadable or does not fit raises a one-line
    :class:`FacevoxError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("weights file not found", shown_name(path))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FacevoxError(f"cannot read weights ({' '.join(str(err).split())[:160]})", path) from None
    for k in (key, "state_dict", "model"):
        if k and isinstance(state, Mapping) and isinstance(state.get(k), Mapping):
            state = state[k]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FacevoxError("not a state dict (a mapping of parameter names to tensors)", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    check_finite(state, path)
    own = module.state_dict()
    skipped = [k for k in own if optional and k.startswith(optional)
               and (k not in state or tuple(state[k].shape) != tuple(own[k].shape))]
    state = {k: v for k, v in state.items() if k not in skipped}
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise FacevoxError(f"weights do not fit {what} ({len(missing)} missing, {len(unexpected)} unexpected "
                           f"keys, e.g. {detail})", path)
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise FacevoxError(f"weights do not fit {what} (shape of {k}: {tuple(state[k].shape)}, "
                           f"expected {tuple(own[k].shape)})", path)
    module.load_state_dict(state, strict=not skipped)
    return skipped
