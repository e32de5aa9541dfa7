"""Run by tests/test_ddp.py under torchrun: train a tiny model and save this rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from conftest import NoisyBlobs, classify_loss  # noqa: E402
from facevox.config import TrainConfig  # noqa: E402
from facevox.train import Trainer  # noqa: E402


class TinyMLP(nn.Module):
    """No batch norm and no dropout, so per-rank and single-process training agree exactly in maths."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train(out: Path, seed_for_init: int) -> torch.nn.Module:
    torch.manual_seed(seed_for_init)  # ranks start from different weights: DDP must sync them
    cfg = TrainConfig(max_steps=6, batch_size=16, lr=0.05, optimizer="sgd", precision="fp32", progress=False)
    return Trainer(TinyMLP(), classify_loss, NoisyBlobs(), cfg, out).fit()


if __name__ == "__main__":
    import os

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    model = train(out / "run", seed_for_init=rank)
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
