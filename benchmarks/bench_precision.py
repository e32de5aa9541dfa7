"""Training and inference speed of fp32 vs bf16 autocast + channels_last, through the facevox Trainer.

    python benchmarks/bench_precision.py [--steps 20] [--batch 32] [--size 64]

A small ResNet-style conv net on random images; reports samples/s for each setting and the
speed-up. The default ``precision: auto`` of TrainConfig picks bf16 when the hardware has it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from facevox.config import TrainConfig
from facevox.train import Trainer, autocast, bf16_supported


def block(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        block(3, 32, 1),
        block(32, 64, 2),
        block(64, 128, 2),
        block(128, 256, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, 2),
    )


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x).float(), y)


def train_speed(precision: str, channels_last: bool, steps: int, batch: int, size: int) -> float:
    n = batch * (steps + 3)
    data = TensorDataset(torch.randn(n, 3, size, size), torch.randint(0, 2, (n,)))
    cfg = TrainConfig(
        max_steps=3, batch_size=batch, precision=precision, channels_last=channels_last, progress=False, drop_last=True
    )
    model = make_net()
    Trainer(model, loss_fn, data, cfg).fit()  # warm-up: first steps pay for kernel selection
    cfg.max_steps = steps
    t0 = time.perf_counter()
    Trainer(model, loss_fn, data, cfg).fit()
    return steps * batch / (time.perf_counter() - t0)


@torch.no_grad()
def infer_speed(precision: str, channels_last: bool, steps: int, batch: int, size: int) -> float:
    model = make_net().eval()
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else None
    with autocast(torch.device("cpu"), dtype):
        model(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 native: "
        f"{bf16_supported(torch.device('cpu'))}"
    )
    print(f"ResNet-style net, {args.size}x{args.size} RGB, batch {args.batch}, {args.steps} steps\n")
    print("| setting | train samples/s | inference samples/s |")
    print("|---|---|---|")
    results = {}
    for name, precision, cl in (("fp32", "fp32", False), ("bf16 + channels_last", "bf16", True)):
        results[name] = (
            train_speed(precision, cl, args.steps, args.batch, args.size),
            infer_speed(precision, cl, args.steps, args.batch, args.size),
        )
        print(f"| {name} | {results[name][0]:.1f} | {results[name][1]:.1f} |")
    fp, bf = results["fp32"], results["bf16 + channels_last"]
    print(f"| speed-up | {bf[0] / fp[0]:.2f}x | {bf[1] / fp[1]:.2f}x |")


if __name__ == "__main__":
    main()
