"""The one training loop every task uses.

A task supplies a model, a dataset and ``compute_loss(model, batch) -> loss or dict``; the
:class:`Trainer` does the rest: device placement, bf16 autocast and channels_last where they
help, the optimiser and learning-rate schedule, gradient accumulation, progress, per-step metric
logs (``metrics.jsonl`` and ``metrics.csv``), atomic checkpoints and exact resumption.

Scaling past one process goes through PyTorch DDP: launch the same command under
``torchrun --nproc_per_node N`` and the trainer joins the process group (gloo on CPU, nccl on
GPU), splits every global batch across ranks and lets DDP average the gradients. Only rank 0
writes files.

A resumed run produces the same weights as an uninterrupted one with the same seed: the
checkpoint holds model, optimiser, schedule, RNG states and the position in the epoch, and the
data order and per-sample randomness depend only on (seed, epoch, position); see
:mod:`facevox.data`.

What costs time on a GPU is kept off the per-step path: the logged values stay on the device and
are fetched (and the loss checked for NaN/inf) in one transfer every ``log_every`` steps and
before every checkpoint, so a non-finite loss stops training at the next check (naming the step
where it happened) and never reaches a checkpoint. Map-style data go through one DataLoader for
the whole run (persistent workers, pinned memory on CUDA, ``prefetch_factor`` batches ahead).

Data come in two kinds. A map-style dataset (``__len__``/``__getitem__``, ideally a
:class:`~facevox.data.SeededDataset`) is batched by :class:`~facevox.data.EpochBatches`: resume is
exact. A *stream* is any object with ``batches_per_epoch(batch_size, world, num_workers,
drop_last)`` and ``iterable(*, seed, epoch, start, batch_size, rank, world, num_workers,
drop_last)`` returning an IterableDataset of ready collated batches (tar shards:
``facevox.datasets.stream.BatchStream``); ``batch_size`` there is the per-rank batch and ``start``
the global batches of the epoch already done. Its data order depends on ``num_workers`` too, so
resuming a stream with another ``num_workers`` warns that the order differs from there on.

Gradient accumulation (``accum_steps = k``): every optimiser step sums the gradients of ``k``
micro-batches of ``batch_size`` each (the global batch stays ``batch_size`` per micro-batch; the
effective batch of a step is ``batch_size * k``), each loss divided by the number of
micro-batches in its step. Steps do not cross epochs: the last step of an epoch may have fewer
micro-batches. ``max_steps``, ``warmup_steps``, ``log_every`` and ``ckpt_every`` count optimiser
steps; the position in the epoch counts micro-batches. Under DDP the gradients are all-reduced
only on the last micro-batch of a step (``no_sync``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
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
from torch.utils.data import DataLoader

from facevox.config import TrainConfig, to_dict
from facevox.data import EpochBatches, PlainDataset, SeededDataset
from facevox.errors import FacevoxError, worker_errors
from facevox.fileio import atomic_path
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



def is_stream(dataset: Any) -> bool:
    """Whether ``dataset`` is a stream of ready batches (``batches_per_epoch`` and ``iterable``), not map-style."""
    return callable(getattr(dataset, "iterable", None)) and callable(getattr(dataset, "batches_per_epoch", None))


_NORMS: tuple[type, ...] = tuple(
    t for t in (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None)) if t
)


def decay_groups(model: nn.Module, params: Iterable[Any]) -> list[dict[str, Any]]:
    """Split parameters (a list of tensors or of param-group dicts) into decay and no-decay groups.

    Biases, norm-layer weights and any other parameter with fewer than 2 dimensions get
    ``weight_decay=0`` (as in nanoGPT); the rest keep their group's settings. Empty groups are
    left out; the order is that of ``params``, so it is the same in every run.
    """
    in_norm = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    items = list(params)
    groups = [dict(g) for g in items] if items and isinstance(items[0], Mapping) else [{"params": items}]
    out: list[dict[str, Any]] = []
    for group in groups:
        ps = group["params"]
        ps = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        decay = [p for p in ps if p.ndim >= 2 and id(p) not in in_norm]
        keep = {id(p) for p in decay}
        rest = [p for p in ps if id(p) not in keep]
        if decay:
            out.append({**group, "params": decay})
        if rest:
            out.append({**group, "params": rest, "weight_decay": 0.0})
    return out


def _seed_worker(seed: int, rank: int, worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker's global RNGs depend on (seed, rank, worker) only."""
    s = int(np.random.SeedSequence([seed, rank, worker_id, 11]).generate_state(1)[0])
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s)


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
    batch_in_epoch: int = 0  # (micro-)batches of the current epoch already done


class Trainer:
    """Train ``model`` on ``dataset`` by minimising ``compute_loss(model, batch)``.

    ``dataset`` is map-style or a stream of batches (see the module docstring). ``compute_loss``
    returns the loss tensor, or a dict with key ``"loss"`` plus other scalars to log. ``params``
    (default: all of ``model``'s) may be tensors or a list of param-group dicts; unless
    ``decay_norms_and_biases`` is set, biases and norm weights are moved into groups without
    weight decay. ``step_hooks`` are called with the step number before every step (margin
    warm-up: they must depend on the step alone so that resumption is exact). ``epoch_end(trainer,
    epoch)`` may return validation metrics, which are logged to ``epochs.jsonl``.
    ``run_dir=None`` trains without writing anything. ``batches_per_epoch`` counts (micro-)batches,
    ``steps_per_epoch`` optimiser steps.
    """

    def __init__(
        self,
        model: nn.Module,
        compute_loss: LossFn,
        dataset: Any,
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
        self.pin_memory = self.device.type == "cuda" if cfg.pin_memory is None else cfg.pin_memory
        if cfg.batch_size % self.world:
            raise FacevoxError(f"the batch size {cfg.batch_size} is not divisible by the {self.world} processes",
                               "train.batch_size")

        self.stream = is_stream(dataset)
        self.collate_fn = collate_fn
        self.sample_weights = sample_weights
        self._loader_cache: DataLoader | None = None
        self._sampler: EpochBatches | None = None
        if self.stream:
            if sample_weights is not None:
                raise FacevoxError("balanced sampling (sample weights) cannot be used with a stream of batches "
                                   "(shards); balance the classes in the loss instead")
            self.dataset = dataset
            self.batches_per_epoch = int(dataset.batches_per_epoch(
                batch_size=cfg.batch_size // self.world, world=self.world, num_workers=cfg.num_workers,
                drop_last=cfg.drop_last))
            if self.batches_per_epoch <= 0:
                raise FacevoxError(f"the training stream holds fewer than one batch of {cfg.batch_size}")
        else:
            self.dataset = dataset if isinstance(dataset, SeededDataset) else PlainDataset(dataset)
            if len(self.dataset) == 0:
                raise FacevoxError("the training set is empty")
            self.batches_per_epoch = len(self._batches(epoch=0, start=0))
            if self.batches_per_epoch == 0:
                raise FacevoxError(
                    f"the training set has {len(self.dataset)} items, fewer than one batch of {cfg.batch_size}"
                )
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.accum_steps)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)

        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.loss_module: nn.Module = _LossModule(model, compute_loss)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.loss_module = DistributedDataParallel(self.loss_module, device_ids=ids)
        params = model.parameters() if params is None else params
        self.optimizer = self._make_optimizer(params)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step_hooks = list(step_hooks)
        self.epoch_end = epoch_end
        self.state = TrainState()
        self.seconds = 0.0  # time spent in fit(), summed over the runs that resumed this one
        self._clock_from: float | None = None
        self._stop_requested = False

    # ---- building blocks

    def _make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        cfg = self.cfg
        items = list(params)
        groups = items if items and isinstance(items[0], Mapping) else None
        wants_decay = cfg.weight_decay > 0 or any(g.get("weight_decay", 0) > 0 for g in groups or ())
        if wants_decay and not cfg.decay_norms_and_biases:
            items = decay_groups(self.model, items)  # one group when there is no decay: checkpoints as before
        if cfg.optimizer == "adam":
            return torch.optim.Adam(items, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(items, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(items, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

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

    def _loader_options(self) -> dict[str, Any]:
        # an explicit generator keeps DataLoader from drawing on the global RNG, which would
        # shift dropout randomness depending on where a run was resumed
        cfg = self.cfg
        options: dict[str, Any] = {
            "num_workers": cfg.num_workers,
            "pin_memory": self.pin_memory,
            "generator": torch.Generator().manual_seed(cfg.seed),
        }
        if cfg.num_workers > 0:
            options["prefetch_factor"] = cfg.prefetch_factor
            options["worker_init_fn"] = functools.partial(_seed_worker, cfg.seed, self.rank)
        return options

    def _loader(self, epoch: int, start: int) -> DataLoader:
        """The batches of ``epoch`` from batch ``start`` on.

        Map-style data: one DataLoader for the whole run (its workers persist across epochs); the
        batch sampler is moved to (epoch, start) before each pass. Streams: a DataLoader per epoch
        over the stream's IterableDataset for that (epoch, start).
        """
        cfg = self.cfg
        if self.stream:
            iterable = self.dataset.iterable(
                seed=cfg.seed, epoch=epoch, start=start, batch_size=cfg.batch_size // self.world, rank=self.rank,
                world=self.world, num_workers=cfg.num_workers, drop_last=cfg.drop_last)
            return DataLoader(iterable, batch_size=None, **self._loader_options())
        if self._loader_cache is None:
            self._sampler = self._batches(epoch, start)
            self._loader_cache = DataLoader(self.dataset, batch_sampler=self._sampler, collate_fn=self.collate_fn,
                                            persistent_workers=cfg.num_workers > 0, **self._loader_options())
        self._sampler.epoch, self._sampler.start = epoch, start  # read by EpochBatches' __len__ and __iter__
        return self._loader_cache

    def _close_loader(self) -> None:
        """Let the persistent workers go (they end when the DataLoader's iterator is collected)."""
        self._loader_cache = None
        self._sampler = None

    # ---- checkpoints

    def save_checkpoint(self) -> None:
        """Write ``checkpoints/last.pt`` atomically (rank 0 only).

        Everything in it is a tensor or plain data (numbers, strings, lists, dicts), so it loads
        with ``torch.load(weights_only=True)``: resuming never unpickles arbitrary objects.
        """
        self._tick()
        if not (self.is_main and self.ckpt_path):
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": vars(self.state).copy(),
            "seconds": self.seconds,
            "rng": rng_state(),
            "config": to_dict(self.cfg),
            "data": {"stream": self.stream, "num_workers": self.cfg.num_workers, "world": self.world},
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
            self.seconds = float(payload.get("seconds", 0.0))  # checkpoints from before it was kept: 0
            set_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            text = " ".join(str(err).split())[:200]
            raise FacevoxError(f"cannot resume from this checkpoint: it does not fit this model or optimiser ({text});"
                               " use --restart to start over", path) from None
        data = payload.get("data")
        old_workers = data.get("num_workers") if isinstance(data, Mapping) else None
        if self.stream and self.is_main and old_workers is not None and old_workers != self.cfg.num_workers:
            print(f"warning: resuming a stream of shards with num_workers={self.cfg.num_workers} (the checkpoint was "
                  f"written with {old_workers}): the data order differs from an uninterrupted run from here on",
                  file=sys.stderr)
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
        self._clock_from = time.perf_counter()
        try:
            with progress, worker_errors():
                self._run(log, progress)
        finally:
            self._tick()
            self._clock_from = None
            _restore_sigint(old_handler)
            self._close_loader()
            log.close()
        if self._stop_requested:
            self.save_checkpoint()
            raise KeyboardInterrupt("training interrupted; run the same command again to resume")
        if self.is_main and self.run_dir is not None:
            self._plot_curves()
        return self.model

    def _tick(self) -> None:
        """Add the time since the last tick of this fit() to :attr:`seconds`."""
        if self._clock_from is not None:
            now = time.perf_counter()
            self.seconds += now - self._clock_from
            self._clock_from = now

    def _sync_context(self, final_micro_batch: bool) -> contextlib.AbstractContextManager:
        if self.world > 1 and not final_micro_batch:
            return self.loss_module.no_sync()  # type: ignore[operator] - DDP
        return contextlib.nullcontext()

    def _run(self, log: _MetricLog, progress: _Progress) -> None:
        st, cfg = self.state, self.cfg
        while st.step < self.total_steps:
            t0, n_seen, done, window = time.perf_counter(), 0, 0, 0
            acc: dict[str, Any] = {}
            drawn = 0
            for batch in self._loader(st.epoch, st.batch_in_epoch):
                drawn += 1
                if done == 0:  # the first micro-batch of an optimiser step
                    window = max(1, min(cfg.accum_steps, self.batches_per_epoch - st.batch_in_epoch))
                    for hook in self.step_hooks:
                        hook(st.step)
                    self.optimizer.zero_grad(set_to_none=True)
                    acc = {}
                done += 1
                batch = to_device(batch, self.device, self.channels_last)
                with self._sync_context(done >= window):
                    with autocast(self.device, self.amp_dtype):
                        out = self.loss_module(batch)
                    logs = dict(out) if isinstance(out, Mapping) else {"loss": out}
                    (logs["loss"] / window if window > 1 else logs["loss"]).backward()
                _accumulate(acc, logs, window)
                st.batch_in_epoch += 1
                n_seen += _batch_len(batch) * self.world
                if done < window:
                    continue
                done = 0
                self._optimizer_step(acc, log, n_seen / max(1e-9, time.perf_counter() - t0))
                if st.step >= self.total_steps or self._stop_requested:
                    break
                if st.batch_in_epoch >= self.batches_per_epoch:
                    break  # the epoch is done (a stream that yields more batches than it announced stops here)
                if st.step % cfg.ckpt_every == 0:
                    self._flush(log, progress)
                    self.save_checkpoint()
                elif st.step % cfg.log_every == 0:
                    self._flush(log, progress)
            else:
                if done:  # a stream that ended inside an optimiser step: step on what it gave
                    self._optimizer_step(acc, log, n_seen / max(1e-9, time.perf_counter() - t0))
                if drawn == 0 and st.batch_in_epoch < self.batches_per_epoch:
                    raise FacevoxError(f"the training stream yielded no batches in epoch {st.epoch} "
                                       f"(from batch {st.batch_in_epoch} of {self.batches_per_epoch})")
                if st.batch_in_epoch < self.batches_per_epoch:
                    progress.note(f"note: epoch {st.epoch} ended after {st.batch_in_epoch} of the "
                                  f"{self.batches_per_epoch} batches announced")
                    st.batch_in_epoch = self.batches_per_epoch
            self._flush(log, progress)
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

    def _optimizer_step(self, acc: dict[str, Any], log: _MetricLog, samples_per_s: float) -> None:
        st, cfg = self.state, self.cfg
        if cfg.grad_clip:
            acc["grad_norm"] = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip).detach()
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        st.step += 1
        log.add({"step": st.step, "epoch": st.epoch, "lr": lr, **acc, "samples_per_s": samples_per_s})

    def _flush(self, log: _MetricLog, progress: _Progress) -> None:
        """Fetch the logged values of the steps since the last flush (one transfer), check the loss, write them."""
        rows = log.flush()
        if rows:
            progress.update(rows[-1])

    def _plot_curves(self) -> None:
        from facevox.report import plot_training_curves

        csv_path = self.run_dir / "metrics.csv"
        if csv_path.is_file():
            plot_training_curves(csv_path, self.run_dir / "train_curves.png")


def _accumulate(acc: dict[str, Any], logs: Mapping[str, Any], window: int) -> None:
    """Add one micro-batch's logged values to ``acc`` (mean over the step's micro-batches), on the device."""
    for key, value in logs.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
            value = value.mean() if value.ndim else value
        elif not isinstance(value, (int, float)):
            acc[key] = value
            continue
        if window > 1:
            value = value / window
        acc[key] = value if key not in acc else acc[key] + value


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_len(batch[0])
    return 1


def _materialise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turn the 0-d tensors in ``rows`` into floats with one device-to-host transfer per device."""
    by_device: dict[torch.device, list[tuple[int, str, torch.Tensor]]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if isinstance(value, torch.Tensor):
                by_device.setdefault(value.device, []).append((i, key, value))
    out = [dict(r) for r in rows]
    for entries in by_device.values():
        values = torch.stack([v.reshape(()).float() for _, _, v in entries]).tolist()
        for (i, key, _), value in zip(entries, values, strict=True):
            out[i][key] = value
    return out


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


def _row_step(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _trim_jsonl(path: Path, keep_until: int) -> None:
    """Keep the rows of ``path`` up to step ``keep_until`` (resume) and drop the rest, streaming."""
    if not path.is_file():
        return
    with atomic_path(path) as tmp, open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in src:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and (_row_step(row.get("step", 0)) or 0) <= keep_until:
                dst.write(json.dumps(row) + "\n")


def _trim_csv(path: Path, keep_until: int) -> list[str] | None:
    """Like :func:`_trim_jsonl` for ``metrics.csv``; returns its columns (None: no rows left, file removed)."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "step" not in header:
            rows, dropped = [], True
        else:
            at = header.index("step")
            rows, dropped = [], False
            for row in reader:
                step = _row_step(row[at]) if len(row) == len(header) else None
                if step is not None and step <= keep_until:
                    rows.append(row)
                else:
                    dropped = True
    if not rows:
        path.unlink()
        return None
    if dropped:
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(rows)
    return header


class _MetricLog:
    """Per-step metrics as JSON lines and CSV, both appended; on resume, rows past the checkpoint are dropped.

    Rows wait in :meth:`add` with their values still on the device; :meth:`flush` fetches them in
    one transfer, stops at a non-finite loss (``FloatingPointError`` naming the step) and appends
    them. The CSV's columns are those of its first row; a row with a new key rewrites the file
    once with the wider header (earlier rows get empty cells).
    """

    def __init__(self, run_dir: Path | None, keep_until: int) -> None:
        self.run_dir = run_dir
        self.pending: list[dict[str, Any]] = []
        self._json = None
        self._csv = None
        self._columns: list[str] | None = None
        if run_dir is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        _trim_jsonl(run_dir / "metrics.jsonl", keep_until)
        self._columns = _trim_csv(run_dir / "metrics.csv", keep_until)
        self._json = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._csv = open(run_dir / "metrics.csv", "a", newline="", encoding="utf-8")  # noqa: SIM115

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(row)

    def flush(self) -> list[dict[str, Any]]:
        """Write the pending rows (one device sync); returns them with plain numbers."""
        if not self.pending:
            return []
        rows, self.pending = _materialise(self.pending), []
        for n, row in enumerate(rows):
            loss = row.get("loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                self._write(rows[: n + 1])
                raise FloatingPointError(f"loss became {loss} at step {row['step']}")
        self._write(rows)
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._json is None or self._csv is None:
            return
        self._json.write("".join(json.dumps(r) + "\n" for r in rows))
        self._json.flush()
        for row in rows:
            if self._columns is None:
                self._columns = list(row)
                csv.writer(self._csv).writerow(self._columns)
            elif any(k not in self._columns for k in row):
                self._widen([k for k in row if k not in self._columns])
            csv.DictWriter(self._csv, fieldnames=self._columns, restval="").writerow(row)
        self._csv.flush()

    def _widen(self, new: list[str]) -> None:
        """Rewrite metrics.csv with ``new`` columns added (rare: a key that first appears mid-run)."""
        assert self.run_dir is not None and self._csv is not None and self._columns is not None
        self._csv.close()
        path = self.run_dir / "metrics.csv"
        with open(path, newline="", encoding="utf-8") as fh:
            old = list(csv.reader(fh))[1:]
        self._columns = self._columns + new
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(self._columns)
            writer.writerows(r + [""] * len(new) for r in old)
        self._csv = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115

    def write_epoch(self, row: dict[str, Any]) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "epochs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def close(self) -> None:
        """Close the files; rows not flushed (training failed since the last flush) are dropped."""
        self.pending = []
        for fh in (self._json, self._csv):
            if fh is not None:
                fh.close()
        self._json = self._csv = None


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
