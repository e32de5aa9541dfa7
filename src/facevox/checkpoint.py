"""A trained model is a folder: it carries everything needed to load it again.

Layout::

    model.yaml          what to build: registered model name + its keyword arguments
    model.safetensors   the weights
    config.yaml         the resolved run config that trained it (if any)
    metrics.json        its evaluation metrics (if any)
    extra.json          task data a model needs at inference (thresholds, calibration, ...)
    README.md           the model card: task, data, licence, metrics

``load_model(path)`` needs nothing else. Folders are written to a temporary name and renamed
into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from facevox.registry import create_model

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


def save_model(
    path: str | Path,
    model: nn.Module,
    *,
    card: ModelCard,
    config: Any = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (built with ``create_model``) as a model folder at ``path``."""
    spec = getattr(model, "facevox_spec", None)
    if spec is None:
        raise ValueError("save_model needs a model made by facevox.create_model (it has no facevox_spec)")
    from facevox import __version__

    path = Path(path)
    cfg = to_dict(config) if config is not None and not isinstance(config, Mapping) else dict(config or {})
    spec_doc = {"format_version": FORMAT_VERSION, "facevox_version": __version__, **spec}
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


def read_model_folder(path: str | Path, device: str | torch.device = "cpu") -> ModelFolder:
    """Load a model folder: the model (in eval mode) and its config, metrics and extras."""
    path = Path(path)
    if not path.is_dir():
        raise FacevoxError("model folder not found", path)
    spec_file = path / "model.yaml"
    weights = path / "model.safetensors"
    for needed in (spec_file, weights):
        if not needed.is_file():
            raise FacevoxError(f"not a facevox model folder: {needed.name} is missing", path)
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        name, kwargs = spec["name"], dict(spec.get("kwargs") or {})
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise FacevoxError(f"unreadable model description ({err})", spec_file) from None
    try:
        model = create_model(name, **kwargs)
    except FacevoxError as err:
        raise FacevoxError(err.problem, spec_file) from None
    try:
        missing, unexpected = _st_load(model, str(weights), strict=False, device=str(device))
    except Exception as err:  # safetensors raises several types for corrupt files
        text = " ".join(str(err).split())
        if "size mismatch" in text:
            detail = text[text.index("size mismatch") :][:160]
            raise FacevoxError(f"weights do not fit model '{name}' ({detail})", weights) from None
        raise FacevoxError(f"cannot read weights ({text[:200]})", weights) from None
    if missing or unexpected:
        bad = (list(missing) + list(unexpected))[:3]
        raise FacevoxError(f"weights do not fit model '{name}' (mismatched keys: {', '.join(bad)})", weights)
    model.to(device).eval()
    return ModelFolder(
        path=path,
        model=model,
        spec={"name": name, "kwargs": kwargs},
        config=_read_optional_yaml(path / "config.yaml"),
        metrics=_read_optional_json(path / "metrics.json"),
        extra=_read_optional_json(path / "extra.json"),
        card=(path / "README.md").read_text(encoding="utf-8") if (path / "README.md").is_file() else "",
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load the model saved in folder ``path`` (eval mode). Its extras are on ``model.facevox_extra``."""
    folder = read_model_folder(path, device)
    folder.model.facevox_extra = folder.extra
    return folder.model


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FacevoxError(f"not valid JSON ({err.msg} at line {err.lineno})", path) from None


def _read_optional_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise FacevoxError(f"not valid YAML ({err})", path) from None


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
        raise FacevoxError("weights file not found", path)
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
