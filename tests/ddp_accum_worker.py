"""Run by tests/test_train_scale.py under torchrun: gradient accumulation under DDP (no_sync), 2 ranks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import NoisyBlobs, classify_loss  # noqa: E402
from ddp_worker import TinyMLP  # noqa: E402
from facevox.config import TrainConfig  # noqa: E402
from facevox.train import Trainer  # noqa: E402


def config(batch_size: int, accum_steps: int) -> TrainConfig:
    return TrainConfig(max_steps=4, batch_size=batch_size, accum_steps=accum_steps, lr=0.05, optimizer="sgd",
                       momentum=0.0, precision="fp32", progress=False)


if __name__ == "__main__":
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    torch.manual_seed(rank)  # different starting weights: DDP syncs them
    trainer = Trainer(TinyMLP(), classify_loss, NoisyBlobs(), config(8, 2), out / "run")
    calls = {"n": 0}

    def counting(state, bucket):
        calls["n"] += 1
        return allreduce_hook(state, bucket)

    trainer.loss_module.register_comm_hook(None, counting)
    model = trainer.fit()
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({"allreduce_calls": calls["n"]}))
