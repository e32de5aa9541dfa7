"""A training run folder: the settings it was started with, checked before it is resumed.

Running ``train`` again into the same ``--out`` resumes the run from its last checkpoint. That is
only right when the settings are those the run was started with: a different learning rate,
recipe or corpus would silently continue the old run while ``config.yaml`` recorded the new
settings. So a run folder holds ``run.json``, the resolved config it was started with; resuming
compares the new config with it and refuses a mismatch with one line naming the keys that
differ. Keys that may change on resume (how long to train, logging, workers, device) are left
out of the comparison (:data:`RESUMABLE`). ``--restart`` starts over and records the new settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facevox.config import save_config, to_dict
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_json
from facevox.precision import resolve_device

RUN_FILE = "run.json"
# last components of dotted keys that may differ between the start of a run and its resumption
RESUMABLE = frozenset({"epochs", "max_steps", "log_every", "progress", "ckpt_every", "num_workers", "device",
                       "prefetch_factor", "pin_memory"})


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fingerprint(cfg: Any) -> dict[str, Any]:
    """The settings that must match on resume: the flattened config less :data:`RESUMABLE` keys."""
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return {k: v for k, v in flatten(data).items() if k.rsplit(".", 1)[-1] not in RESUMABLE}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key (old -> new)`` for every key whose value differs, sorted."""
    keys = sorted(set(old) | set(new))
    missing = "(unset)"
    return [f"{k} ({old.get(k, missing)!r} -> {new.get(k, missing)!r})" for k in keys
            if _norm(old.get(k, missing)) != _norm(new.get(k, missing))]


def _norm(value: Any) -> Any:
    # YAML/JSON round trips turn tuples into lists and may write 1e-3 as a string
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "last.pt").is_file()


def check_resume(out: str | Path, cfg: Any, *, resume: bool, run_dir: str | Path | None = None) -> bool:
    """Refuse to resume the run in ``out`` with settings other than its own; returns whether it will resume.

    ``run_dir`` is the trainer's folder (holding ``checkpoints/``; default ``out/train``). Call
    this before anything is written into ``out``. Without a checkpoint, or with ``resume``
    false (``--restart``), nothing is checked.
    """
    out = Path(out)
    run_dir = Path(run_dir) if run_dir is not None else out / "train"
    train = getattr(cfg, "train", None)
    if train is not None and hasattr(train, "device"):
        resolve_device(train.device)  # a bad device is refused now, not after files are written
    if out.exists() and not out.is_dir():
        raise FacevoxError("--out names a file, not a folder", out)
    if not (resume and has_checkpoint(run_dir)):
        return False
    new = fingerprint(cfg)
    old = _recorded(out)
    if old is None:
        return True  # a run folder from before run.json: nothing to compare against
    diff = differences(old, new)
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise FacevoxError(
            f"this run folder holds a run started with other settings: {shown}. Use the same settings to "
            "resume it, --restart to start over, or another --out", out)
    return True


def _recorded(out: Path) -> dict[str, Any] | None:
    path = out / RUN_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return dict(data["settings"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise FacevoxError(f"unreadable run record {RUN_FILE}; use --restart to start over", path) from None
    legacy = out / "config.yaml"
    if legacy.is_file():
        from facevox.config import read_yaml

        return fingerprint(read_yaml(legacy))
    return None


def start_run(out: str | Path, cfg: Any, *, resuming: bool, run_dir: str | Path | None = None) -> None:
    """Write ``config.yaml`` and, for a new run, the settings record ``run.json``.

    A new run (``--restart``) first removes the old run's checkpoint, so that a run killed
    before its first checkpoint cannot later resume the old one under the new record.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        run_dir = Path(run_dir) if run_dir is not None else out / "train"
        (run_dir / "checkpoints" / "last.pt").unlink(missing_ok=True)
    if not resuming or not (out / RUN_FILE).is_file():
        atomic_write_json(out / RUN_FILE, {"settings": fingerprint(cfg),
                                           "note": "settings this run was started with; resuming checks them"})
    save_config(cfg, out / "config.yaml")
