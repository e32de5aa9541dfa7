"""Precision on CPUs with and without native bf16.

CI runs this file (with the other precision-sensitive tests) a second time with oneDNN and ATen
limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``), as on an AMD EPYC without
AVX-512 BF16, so both kinds of machine are covered whichever one CI gets.
"""

from __future__ import annotations

import os

import pytest
import torch

from conftest import NoisyBlobs
from facevox.config import TrainConfig
from facevox.precision import cpu_bf16_native, resolve_precision
from facevox.registry import create_model
from facevox.train import Trainer

EMULATED_AVX2 = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"


@pytest.mark.skipif(not EMULATED_AVX2, reason="only when oneDNN is limited to AVX2")
def test_limited_cpu_reports_no_native_bf16():
    assert not cpu_bf16_native()
    assert resolve_precision("auto", torch.device("cpu")) is None


def test_auto_precision_follows_the_hardware():
    want = torch.bfloat16 if cpu_bf16_native() else None
    assert resolve_precision("auto", torch.device("cpu")) is want


class _Mels(NoisyBlobs):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 40, 24, generator=gen)
        self.y = torch.arange(16) % 2

    def get(self, index, rng):
        return self.x[index], self.y[index]


def test_lstm_model_trains_under_bf16_on_any_cpu():
    torch.manual_seed(0)
    model = create_model("voice_encoder")
    head = torch.nn.Linear(256, 2)
    both = torch.nn.ModuleDict({"m": model, "h": head})

    def loss(m, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(m["h"](m["m"](x)).float(), y)

    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, precision="bf16", progress=False)
    Trainer(both, loss, _Mels(), cfg, None).fit()
    assert all(torch.isfinite(p).all() for p in both.parameters())
