"""Trainer overhead and data-loader throughput, measured side by side in one run.

    python benchmarks/bench_trainer.py                                  # ResNet-18 on this CPU
    python benchmarks/bench_trainer.py --model ecapa --steps 40
    python benchmarks/bench_trainer.py --model resnet50 --device cuda --precision bf16 --batch 128 --size 224

(a) Data loader alone: items/s of a DataLoader over files this script writes (PNG images for the
    image models, 16 kHz WAV clips for ECAPA), decoded in the workers by facevox's own loaders
    (``load_image`` / ``load_audio``), with 0, 1 and 2 workers (``--workers``); the first pass
    starts the workers and fills the page cache, the second is timed.
(b) Trainer against a raw PyTorch loop: optimiser steps/s of :class:`facevox.train.Trainer` (metric
    logs and checkpoints written as in a real run) and of a plain loop (zero_grad, forward,
    backward, Adam step, ``loss.item()`` every ``log_every`` steps), with the same initial
    weights, the same optimiser, the same batches (the same EpochBatches order over the same
    in-memory samples), the same precision and memory format. ``--rounds`` segments of
    ``--steps`` timed steps each (after ``--warmup`` untimed ones), alternating which loop goes
    first to cancel drift; the ratio is raw time / Trainer time over all rounds (target >= 0.8).

Prints a markdown table (``--json PATH`` also writes the figures).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facevox.config import TrainConfig
from facevox.data import EpochBatches, SeededDataset
from facevox.precision import autocast, resolve_device
from facevox.registry import create_model
from facevox.train import Trainer, has_conv2d, to_device

SR = 16000
MODELS = ("resnet18", "resnet50", "ecapa")


# --------------------------------------------------------------------------------------------- models


class EcapaClassifier(nn.Module):
    """ECAPA-TDNN on waveforms (fbank features inside) + a linear speaker classifier."""

    def __init__(self, classes: int, channels: int = 512) -> None:
        super().__init__()
        kwargs = {"channels": channels, "mfa_channels": 3 * channels}
        self.embed = create_model("speaker_embedder", backbone="ecapa_tdnn", backbone_kwargs=kwargs)
        self.head = nn.Linear(192, classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(wave))


def make_model(name: str, classes: int, width: int | None = None) -> nn.Module:
    """A registry model for the benchmark: ``resnet18`` / ``resnet50`` (images) or ``ecapa`` (waveforms)."""
    if name == "ecapa":
        return EcapaClassifier(classes, width or 512)
    return create_model(name, num_classes=classes, width=width or 64)


def classify_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    logits = model(x).float()
    if logits.shape[1] == 1:  # one logit: real/fake
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    return F.cross_entropy(logits, y)


class InMemory(SeededDataset):
    """``n`` items cycling over ``k`` pre-made samples: no decoding, so (b) times the loops alone."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
        self.x, self.y, self.n = x, y, n

    def __len__(self) -> int:
        return self.n

    def get(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index % len(self.x)], self.y[index % len(self.y)]


def samples(model: str, k: int, size: int, seconds: float, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if model == "ecapa":
        x = 0.1 * torch.randn(k, int(seconds * SR), generator=gen)
    else:
        x = torch.rand(k, 3, size, size, generator=gen)
    return x, torch.randint(0, classes, (k,), generator=gen)


# --------------------------------------------------------------------------------------------- (a) loader


def write_corpus(root: Path, kind: str, n: int, size: int, seconds: float) -> list[Path]:
    """``n`` PNG images (``size`` px, smooth noise so they compress like photos) or WAV clips."""
    from PIL import Image

    from facevox.audio.io import save_wav

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        if kind == "audio":
            t = np.arange(int(seconds * SR)) / SR
            wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(t.shape)
            paths.append(save_wav(root / f"{i:06d}.wav", wave.astype(np.float32), SR))
        else:
            small = rng.integers(0, 256, (size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
            path = root / f"{i:06d}.png"
            img.save(path)
            paths.append(path)
    return paths


class DecodedFiles(Dataset):
    """Decodes one written file per item, in the worker: what a lazy training reader does."""

    def __init__(self, paths: list[Path], kind: str, length: int) -> None:
        self.paths = np.array([str(p) for p in paths])  # one array, not a list of objects (no copy-on-write)
        self.kind, self.length = kind, length

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.kind == "audio":
            from facevox.audio.io import load_audio

            wave = load_audio(self.paths[i])
            return torch.from_numpy(np.resize(wave, self.length)), 0
        from facevox.image.io import load_image

        img = np.array(load_image(self.paths[i]))  # a writable copy
        return torch.from_numpy(img).permute(2, 0, 1).float().div_(255), 0


def loader_items_per_s(dataset: Dataset, workers: int, batch: int, prefetch: int = 2) -> float:
    kw: dict[str, Any] = {"prefetch_factor": prefetch, "persistent_workers": True} if workers else {}
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, **kw)
    for _ in loader:  # starts the workers, fills the page cache
        pass
    t0 = time.perf_counter()
    n = sum(len(b[1]) for b in loader)
    return n / (time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------- (b) loops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_trainer(model: nn.Module, loss: Callable, data: Any, cfg: TrainConfig, warmup: int, steps: int,
                 run_dir: Path) -> float:
    """Seconds for ``steps`` Trainer steps after ``warmup`` (hooks run before a step: the last one is not timed)."""
    marks: dict[str, float] = {}
    device = resolve_device(cfg.device)

    def hook(step: int) -> None:
        if step in (warmup, warmup + steps):
            _sync(device)
            marks["t0" if step == warmup else "t1"] = time.perf_counter()

    cfg = dataclasses.replace(cfg, max_steps=warmup + steps + 1)
    Trainer(model, loss, data, cfg, run_dir, step_hooks=[hook]).fit(resume=False)
    return marks["t1"] - marks["t0"]


def time_raw(model: nn.Module, loss: Callable, batches: Iterable[Any], cfg: TrainConfig, warmup: int,
             steps: int) -> float:
    """Seconds for ``steps`` steps of a plain PyTorch loop over ``batches`` after ``warmup`` untimed ones."""
    device = resolve_device(cfg.device)
    amp = torch.bfloat16 if cfg.precision == "bf16" else None
    channels_last = has_conv2d(model) if cfg.channels_last is None else cfg.channels_last
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    t0 = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        if i == warmup + steps:
            break
        batch = to_device(batch, device, channels_last)
        with autocast(device, amp):
            value = loss(model, batch)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if (i + 1) % cfg.log_every == 0:
            value.item()  # what a plain loop logs
    else:
        raise RuntimeError("the raw loop ran out of batches")
    _sync(device)
    return time.perf_counter() - t0


def trainer_vs_raw(model: nn.Module, loss: Callable, data: Any, raw_batches: Callable[[], Iterable[Any]],
                   cfg: TrainConfig, *, warmup: int, steps: int, rounds: int, batch_items: int) -> dict[str, Any]:
    """Alternating rounds of both loops from the same initial weights; items/s and the ratio."""
    init = copy.deepcopy(model).cpu()
    device = resolve_device(cfg.device)
    times: dict[str, list[float]] = {"trainer": [], "raw": []}
    peak = {"trainer": 0, "raw": 0}  # bytes of GPU memory, torch.cuda.max_memory_allocated
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        for r in range(rounds):
            for which in (("trainer", "raw") if r % 2 == 0 else ("raw", "trainer")):
                net = copy.deepcopy(init)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                if which == "trainer":
                    times[which].append(time_trainer(net, loss, data, cfg, warmup, steps, Path(tmp) / f"r{r}"))
                else:
                    times[which].append(time_raw(net, loss, raw_batches(), cfg, warmup, steps))
                if device.type == "cuda":
                    peak[which] = max(peak[which], torch.cuda.max_memory_allocated(device))
                del net
    out: dict[str, Any] = {"rounds": rounds, "steps": steps, "batch": batch_items}
    for which, ts in times.items():
        out[which] = {"steps_per_s": steps * len(ts) / sum(ts), "items_per_s": steps * len(ts) * batch_items / sum(ts),
                      "round_steps_per_s": [steps / t for t in ts], "peak_gpu_bytes": peak[which]}
    out["ratio"] = sum(times["raw"]) / sum(times["trainer"])
    return out


# --------------------------------------------------------------------------------------------- report


def loop_table(title: str, res: dict[str, Any], unit: str) -> str:
    gpu = any(res[w]["peak_gpu_bytes"] for w in ("raw", "trainer"))
    cols = f"| loop | steps/s | {unit}/s | per round (steps/s) |" + (" peak GPU memory |" if gpu else "")
    rows = [f"### {title}", "", cols, "|---|---|---|---|" + ("---|" if gpu else "")]
    for which, label in (("raw", "raw PyTorch loop"), ("trainer", "facevox Trainer")):
        r = res[which]
        rounds = ", ".join(f"{v:.2f}" for v in r["round_steps_per_s"])
        mem = f" {r['peak_gpu_bytes'] / 2**30:.2f} GiB |" if gpu else ""
        rows.append(f"| {label} | {r['steps_per_s']:.2f} | {r['items_per_s']:.1f} | {rounds} |{mem}")
    verdict = "meets" if res["ratio"] >= 0.8 else "misses"
    rows.append(f"| Trainer / raw | {res['ratio']:.3f} | | {verdict} the 0.8 target |" + (" |" if gpu else ""))
    return "\n".join(rows)


def loader_table(title: str, figures: dict[int, float]) -> str:
    rows = [f"### {title}", "", "| workers | items/s |", "|---|---|"]
    rows += [f"| {w} | {v:.1f} |" for w, v in figures.items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="resnet18")
    parser.add_argument("--width", type=int, default=None, help="ResNet width (64) or ECAPA channels (512)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length for ECAPA")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round and loop")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--ckpt-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--files", type=int, default=512, help="files written for the loader benchmark")
    parser.add_argument("--workers", default="0,1,2", help="worker counts for the loader benchmark ('' to skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    from common import machine_header

    header = machine_header()
    report: dict[str, Any] = {"machine": header, "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"<!-- {header['machine']}; {header['torch']}; {header['date']}; device {device} -->\n")

    kind = "audio" if args.model == "ecapa" else "image"
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if workers:
        with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
            paths = write_corpus(Path(tmp), kind, args.files, args.size, args.seconds)
            ds = DecodedFiles(paths, kind, int(args.seconds * SR))
            report["loader"] = {w: loader_items_per_s(ds, w, args.batch) for w in workers}
        what = f"{args.seconds:g} s WAV clips" if kind == "audio" else f"{args.size} px PNG images"
        print(loader_table(f"Data loader alone: {args.files} {what}, batch {args.batch}", report["loader"]) + "\n")

    total = args.warmup + args.steps + 1
    x, y = samples(args.model, min(64, args.batch * total), args.size, args.seconds, args.classes)
    data = InMemory(x, y, args.batch * total)
    cfg = TrainConfig(batch_size=args.batch, lr=1e-4, precision=args.precision, device=str(device), progress=False,
                      log_every=args.log_every, ckpt_every=args.ckpt_every, seed=0, num_workers=0)

    def raw_batches() -> Iterable[Any]:  # the Trainer's own order: epoch 0 of EpochBatches with its seed
        sampler = EpochBatches(len(data), args.batch, seed=cfg.seed, epoch=0, drop_last=True)
        return DataLoader(data, batch_sampler=sampler, pin_memory=device.type == "cuda")

    torch.manual_seed(0)
    model = make_model(args.model, args.classes, args.width)
    res = trainer_vs_raw(model, classify_loss, data, raw_batches, cfg, warmup=args.warmup, steps=args.steps,
                         rounds=args.rounds, batch_items=args.batch)
    report["loops"] = res
    shape = f"{args.seconds:g} s clips" if kind == "audio" else f"{args.size} px"
    unit = "utterances" if kind == "audio" else "images"
    print(loop_table(f"Trainer vs raw loop: {args.model}, batch {args.batch} x {shape}, {args.precision}, {device}",
                     res, unit))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
