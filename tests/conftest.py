"""Shared test fixtures: tiny generated data only, no network, no real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facevox.data import SeededDataset


class NoisyBlobs(SeededDataset):
    """Tiny 2-class image set with per-sample random noise (exercises per-sample seeds)."""

    def __init__(self, n: int = 64, size: int = 8) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, size, size, generator=gen)
        self.y = torch.arange(n) % 2
        self.x[self.y == 1] += 0.5

    def __len__(self) -> int:
        return len(self.y)

    def get(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.from_numpy(rng.normal(scale=0.1, size=self.x[index].shape).astype(np.float32))
        return self.x[index] + noise, self.y[index]


class TinyConvNet(nn.Module):
    """Conv + dropout + linear: small but uses the global RNG (dropout) and 2-D convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.relu(self.conv(x))).flatten(1))


def classify_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch
    logits = model(x)
    return {"loss": nn.functional.cross_entropy(logits.float(), y), "acc": (logits.argmax(1) == y).float().mean()}


@pytest.fixture
def blobs() -> NoisyBlobs:
    return NoisyBlobs()


@pytest.fixture
def make_net():
    def make(seed: int = 0) -> TinyConvNet:
        torch.manual_seed(seed)
        return TinyConvNet()

    return make


@pytest.fixture
def one_thread():
    """One intra-op thread: for tests of tiny tensors, where extra threads only spin (10x slower on a busy
    machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_line_error(capsys, args: list, *words: str, out: Path | None = None) -> str:
    """Run ``facevox ARGS`` in-process: status 2, exactly one stderr line containing ``words``, no traceback."""
    from facevox.cli import main

    code = main([str(a) for a in args])
    stdout, stderr = capsys.readouterr()
    lines = stderr.strip().splitlines()
    assert code == 2, (stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("facevox: error: ") and "Traceback" not in stderr, stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    if out is not None:
        assert not Path(out).exists(), "something was written into --out"
    return lines[0]


def tiny_speaker_folder(path, embed_dim: int = 4):
    """A saved x-vector speaker model folder (random weights, 8 channels) with the speaker task's typed spec."""
    import facevox
    from facevox.checkpoint import ModelCard, save_model
    from facevox.inference_spec import SpeakerSpec

    torch.manual_seed(0)
    net = facevox.create_model("speaker_embedder", backbone="xvector",
                               backbone_kwargs={"channels": 8, "embed_dim": embed_dim})
    return save_model(path, net, extra=SpeakerSpec().to_extra(),
                      card=ModelCard(task="speaker verification (embedding model)", data="noise", licence="MIT"))


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on a shared 2-core CPU small audio ops run many times faster than with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
