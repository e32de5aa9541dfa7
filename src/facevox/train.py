"""The one training loop every task uses.

A task supplies a model, a dataset and ``compute_loss(model, batch) -> loss or dict``; the
:class:`Trainer` does the rest: device placement, bf16 autocast and channels_last where they
help, the optimiser and learning-rate schedule, progress, per-step metric logs
(``metrics.jsonl`` and ``metrics.csv``), atomic checkpoints and exact resumption.

Scaling past one process goes through PyTorch DDP: launch the same command under
``torchrun --nproc_per_node N`` and the trainer joins the process group (gloo on CPU, nccl on
GPU), splits every global batch across ranks and lets DDP average the gradients. Only rank 0
writes files.

A resumed run produces the same weights as an uninterrupted one with the same seed: the
checkpoint holds model, optimiser, schedule, RNG states and the position in the epoch, and the
data order and per-sample randomness depend only on (seed, epoch, position); see
:mod:`facevox.data`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facevox.config import TrainConfig, to_dict
from facevox.data import EpochBatches, PlainDataset, SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_text
from facevox.outdir import clean_stale_temporaries
from facevox.precision import autocast, bf16_supported, resolve_device, resolve_precision  # noqa: F401 - re-exported

LossFn = Callable[[nn.Module, Any], "torch.Tensor | Mapping[str, Any]"]
StepHook = Callable[[int], None]


# --------------------------------------------------------------------------------------------
# devices, precision, process groups


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (call before building a model for reproducible weights)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move tensors in a (nested) batch to ``device``; 4-D float tensors go channels_last."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by torchrun; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


# --------------------------------------------------------------------------------------------
# checkpoints: tensors and plain data only

CHECKPOINT_FORMAT = 2  # 2: RNG states as tensors and lists, loadable with weights_only=True


def rng_state() -> dict[str, Any]:
    """The RNG states of torch, CUDA, NumPy and Python as tensors and plain data."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(rng: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    n = rng["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``; anything else is a one-line error.

    A pickle that would build other objects (code, in a planted file) is refused before any of
    it runs; so is a checkpoint of an older facevox that stored NumPy RNG states as arrays.
    """
    import pickle

    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise FacevoxError("refusing to load this checkpoint: it holds objects other than tensors and plain data "
                           "(not written by this facevox); delete it or use --restart to start over", path) from None
    except Exception as err:  # truncated, not a zip, not a torch file at all
        text = " ".join(str(err).split())[:160]
        raise FacevoxError(f"cannot resume from this checkpoint ({text}); use --restart to start over", path) from None
    needed = ("model", "optimizer", "scheduler", "state", "rng")
    if not isinstance(payload, dict) or any(k not in payload for k in needed):
        raise FacevoxError("not a facevox training checkpoint (expected keys: " + ", ".join(needed) + "); use "
                           "--restart to start over", path)
    return payload


# --------------------------------------------------------------------------------------------
# the loop


class _LossModule(nn.Module):
    """Wraps (model, compute_loss) so DDP sees the whole loss computation as one forward."""

    def __init__(self, model: nn.Module, compute_loss: LossFn) -> None:
        super().__init__()
        self.model = model
        self.compute_loss = compute_loss

    def forward(self, batch: Any) -> Any:
        return self.compute_loss(self.model, batch)


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of the current epoch already done


class Trainer:
    """Train ``model`` on ``dataset`` by minimising ``compute_loss(model, batch)``.

    ``compute_loss`` returns the loss tensor, or a dict with key ``"loss"`` plus other scalars
    to log. ``step_hooks`` are called with the step number before every step (margin warm-up:
    they must depend on the step alone so that resumption is exact). ``epoch_end(trainer,
    epoch)`` may return validation metrics, which are logged to ``epochs.jsonl``.
    ``run_dir=None`` trains without writing anything.
    """

    def __init__(
        self,
        model: nn.Module,
        compute_loss: LossFn,
        dataset: Dataset,
        cfg: TrainConfig,
        run_dir: str | Path | None = None,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        params: Iterable[Any] | None = None,
        step_hooks: Sequence[StepHook] = (),
        epoch_end: Callable[[Trainer, int], Mapping[str, float] | None] | None = None,
        sample_weights: Sequence[float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.rank, self.world = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.channels_last = has_conv2d(model) if cfg.channels_last is None else cfg.channels_last

        self.dataset = dataset if isinstance(dataset, SeededDataset) else PlainDataset(dataset)
        if len(self.dataset) == 0:
            raise FacevoxError("the training set is empty")
        self.collate_fn = collate_fn
        self.sample_weights = sample_weights
        self.batches_per_epoch = len(self._batches(epoch=0, start=0))
        if self.batches_per_epoch == 0:
            raise FacevoxError(
                f"the training set has {len(self.dataset)} items, fewer than one batch of {cfg.batch_size}"
            )
        self.total_steps = cfg.max_steps or cfg.epochs * self.batches_per_epoch
        self.num_epochs = math.ceil(self.total_steps / self.batches_per_epoch)

        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.loss_module: nn.Module = _LossModule(model, compute_loss)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.loss_module = DistributedDataParallel(self.loss_module, device_ids=ids)
        self.optimizer = self._make_optimizer(model.parameters() if params is None else params)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step_hooks = list(step_hooks)
        self.epoch_end = epoch_end
        self.state = TrainState()
        self._stop_requested = False

    # ---- building blocks

    def _make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        cfg = self.cfg
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def _lr_factor(self, step: int) -> float:
        warm = self.cfg.warmup_steps
        if warm and step < warm:
            return (step + 1) / warm
        if self.cfg.scheduler == "cosine":
            progress = (step - warm) / max(1, self.total_steps - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    def _batches(self, epoch: int, start: int) -> EpochBatches:
        return EpochBatches(
            len(self.dataset),
            self.cfg.batch_size,
            seed=self.cfg.seed,
            epoch=epoch,
            drop_last=self.cfg.drop_last,
            rank=self.rank,
            world=self.world,
            start=start,
            weights=self.sample_weights,
        )

    def _loader(self, epoch: int, start: int) -> DataLoader:
        # an explicit generator keeps DataLoader from drawing on the global RNG, which would
        # shift dropout randomness depending on where a run was resumed
        return DataLoader(
            self.dataset,
            batch_sampler=self._batches(epoch, start),
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(self.cfg.seed + epoch),
            persistent_workers=False,
        )

    # ---- checkpoints

    def save_checkpoint(self) -> None:
        """Write ``checkpoints/last.pt`` atomically (rank 0 only).

        Everything in it is a tensor or plain data (numbers, strings, lists, dicts), so it loads
        with ``torch.load(weights_only=True)``: resuming never unpickles arbitrary objects.
        """
        if not (self.is_main and self.ckpt_path):
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": vars(self.state).copy(),
            "rng": rng_state(),
            "config": to_dict(self.cfg),
        }
        with atomic_path(self.ckpt_path) as tmp:
            torch.save(payload, tmp)

    def load_checkpoint(self) -> bool:
        """Restore the last checkpoint if there is one; returns whether it did.

        A file that holds anything but tensors and plain data is refused unread (one line), as is
        one written with other training settings or for another model.
        """
        if not (self.ckpt_path and self.ckpt_path.is_file()):
            return False
        path = self.ckpt_path
        payload = read_checkpoint(path, self.device)
        old_cfg = payload.get("config")
        if isinstance(old_cfg, Mapping):
            from facevox.runfolder import differences, fingerprint

            diff = differences(fingerprint(old_cfg), fingerprint(self.cfg))
            if diff:
                raise FacevoxError(f"this checkpoint was written with other training settings ({'; '.join(diff[:3])});"
                                   " resume with the same settings or start over (--restart)", path)
        try:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["scheduler"])
            self.state = TrainState(**payload["state"])
            set_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            text = " ".join(str(err).split())[:200]
            raise FacevoxError(f"cannot resume from this checkpoint: it does not fit this model or optimiser ({text});"
                               " use --restart to start over", path) from None
        return True

    # ---- the loop

    def fit(self, resume: bool = True) -> nn.Module:
        """Train to ``total_steps``; continue from the last checkpoint when ``resume``."""
        if self.is_main and self.ckpt_path is not None:
            for stale in clean_stale_temporaries(self.ckpt_path.parent, self.ckpt_path.name):
                print(f"removed {stale}, left by an interrupted checkpoint write", file=sys.stderr)
        resumed = resume and self.load_checkpoint()
        if not resumed:
            seed_everything(self.cfg.seed)
        log = _MetricLog(self.run_dir if self.is_main else None, keep_until=self.state.step)
        progress = _Progress(
            self.total_steps, self.state.step, enabled=self.cfg.progress and self.is_main, log_every=self.cfg.log_every
        )
        self.model.train()
        old_handler = _install_sigint(self)
        try:
            with progress:
                self._run(log, progress)
        finally:
            _restore_sigint(old_handler)
            log.close()
        if self._stop_requested:
            self.save_checkpoint()
            raise KeyboardInterrupt("training interrupted; run the same command again to resume")
        if self.is_main and self.run_dir is not None:
            self._plot_curves()
        return self.model

    def _run(self, log: _MetricLog, progress: _Progress) -> None:
        st, cfg = self.state, self.cfg
        while st.step < self.total_steps:
            t0, n_seen = time.perf_counter(), 0
            for batch in self._loader(st.epoch, st.batch_in_epoch):
                for hook in self.step_hooks:
                    hook(st.step)
                batch = to_device(batch, self.device, self.channels_last)
                with autocast(self.device, self.amp_dtype):
                    out = self.loss_module(batch)
                logs = dict(out) if isinstance(out, Mapping) else {"loss": out}
                loss = logs["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {st.step}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    logs["grad_norm"] = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                lr = self.scheduler.get_last_lr()[0]
                self.scheduler.step()
                st.step += 1
                st.batch_in_epoch += 1
                n_seen += _batch_len(batch) * self.world
                row = {"step": st.step, "epoch": st.epoch, "lr": lr}
                row.update({k: _scalar(v) for k, v in logs.items()})
                row["samples_per_s"] = n_seen / max(1e-9, time.perf_counter() - t0)
                log.write(row)
                progress.update(row)
                at_epoch_end = st.batch_in_epoch >= self.batches_per_epoch
                if st.step >= self.total_steps or self._stop_requested:
                    break
                if st.step % cfg.ckpt_every == 0 and not at_epoch_end:
                    self.save_checkpoint()
                    log.flush_csv()
            if self._stop_requested:
                return
            if st.batch_in_epoch >= self.batches_per_epoch:
                metrics = self.epoch_end(self, st.epoch) if self.epoch_end else None
                if metrics:
                    log.write_epoch({"epoch": st.epoch, "step": st.step, **metrics})
                    progress.note(f"epoch {st.epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
                    self.model.train()
                st.epoch += 1
                st.batch_in_epoch = 0
            self.save_checkpoint()
            log.flush_csv()

    def _plot_curves(self) -> None:
        from facevox.report import plot_training_curves

        csv_path = self.run_dir / "metrics.csv"
        if csv_path.is_file():
            plot_training_curves(csv_path, self.run_dir / "train_curves.png")


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_len(batch[0])
    return 1


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean())
    return v


def _install_sigint(trainer: Trainer) -> Any:
    # Ctrl-C finishes the current step, writes a checkpoint and stops; a second Ctrl-C kills.
    if sys.platform == "win32" or not _in_main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if trainer._stop_requested:
            raise KeyboardInterrupt
        trainer._stop_requested = True

    return signal.signal(signal.SIGINT, handler)


def _restore_sigint(old: Any) -> None:
    if old is not None:
        signal.signal(signal.SIGINT, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------------------------
# logs and progress


class _MetricLog:
    """Per-step metrics as JSON lines (appended as they come) and CSV (rewritten atomically)."""

    def __init__(self, run_dir: Path | None, keep_until: int) -> None:
        self.run_dir = run_dir
        self.rows: list[dict[str, Any]] = []
        self._fh = None
        if run_dir is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        jsonl = run_dir / "metrics.jsonl"
        if jsonl.is_file():  # resuming: keep the steps the checkpoint holds, drop the rest
            for line in jsonl.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if row.get("step", 0) <= keep_until:
                    self.rows.append(row)
        atomic_write_text(jsonl, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._fh = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._fh is not None:
            self._fh.write(json.dumps(row) + "\n")
            self._fh.flush()

    def write_epoch(self, row: dict[str, Any]) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "epochs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def flush_csv(self) -> None:
        if self.run_dir is None or not self.rows:
            return
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        with atomic_path(self.run_dir / "metrics.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        self.flush_csv()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Progress:
    """A rich progress bar on a terminal; a plain log line every ``log_every`` steps otherwise."""

    def __init__(self, total: int, done: int, enabled: bool, log_every: int) -> None:
        self.total, self.done, self.enabled, self.log_every = total, done, enabled, max(1, log_every)
        self._bar = None
        self._task = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.total, completed=self.done, info="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        info = f"epoch {row['epoch']}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['samples_per_s']:.0f}/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=row["step"], info=info)
        elif row["step"] % self.log_every == 0 or row["step"] == self.total:
            print(f"step {row['step']}/{self.total}  {info}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)
