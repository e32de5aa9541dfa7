"""WaveGAN: shapes, phase shuffle, one WGAN-GP / hinge training step, the crops, and ``facevox voice train-gan``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facevox.audio.io import save_wav
from facevox.nets.wavegan import SAMPLES, phase_shuffle
from facevox.registry import create_model
from facevox.tasks.voice.wavegan_config import WaveGANConfig
from facevox.tasks.voice.wavegan_train import AudioCrops, build_pair, crop_files, gan_loss


def test_shapes_and_range():
    torch.manual_seed(0)
    g = create_model("wavegan_generator", nz=8, d=2)
    d = create_model("wavegan_discriminator", d=2)
    wave = g(torch.randn(3, 8))
    assert wave.shape == (3, 1, SAMPLES) and wave.abs().max() <= 1
    assert d(wave).shape == (3,) and d(wave[:, 0]).shape == (3,)
    assert sum(p.numel() for p in create_model("wavegan_generator").parameters()) > 1e6  # d=16 by default


def test_phase_shuffle_shifts_each_clip():
    x = torch.arange(20.0).repeat(4, 2, 1)  # (4, 2, 20)
    torch.manual_seed(1)
    y = phase_shuffle(x, 2)
    assert y.shape == x.shape and torch.equal(phase_shuffle(x, 0), x)
    for b in range(4):  # each row is the ramp shifted by k in [-2, 2] (reflected at the edges)
        k = int(y[b, 0, 10] - 10)
        assert -2 <= k <= 2 and torch.equal(y[b, 0, 2:-2], x[b, 0, 2 + k : 18 + k])
        assert torch.equal(y[b, 0], y[b, 1])  # one shift for all channels of a clip


@pytest.mark.parametrize("kind", ["wgan-gp", "hinge"])
def test_one_training_step_is_finite_and_separates_the_gradients(kind):
    torch.manual_seed(0)
    cfg = WaveGANConfig()
    cfg.model.nz, cfg.model.d, cfg.loss.kind = 8, 2, kind
    pair = build_pair(cfg).train()
    real = 0.3 * torch.sin(torch.linspace(0, 900, SAMPLES)).repeat(4, 1, 1)
    torch.manual_seed(0)
    out = gan_loss(pair, real, cfg)
    out["loss"].backward()
    assert all(torch.isfinite(v).all() for v in out.values())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pair.parameters())
    assert all(p.grad.abs().max() > 0 for p in pair.generator.parameters())  # no dead layer
    # each net gets its own loss's gradient: the discriminator's sees the fake detached, the generator's
    # goes through frozen_call (compare with g_loss alone, on the same z and phase shifts)
    g_full = [p.grad.clone() for p in pair.generator.parameters()]
    pair.zero_grad()
    torch.manual_seed(0)
    gen, disc = pair.generator, pair.discriminator
    z = torch.randn(real.shape[0], gen.nz)
    fake = gen(z)
    disc(real), disc(fake.detach())  # the same draws of the phase shuffle as in gan_loss
    (-disc(fake).mean()).backward()
    for a, b in zip(g_full, (p.grad for p in gen.parameters()), strict=True):
        torch.testing.assert_close(a, b)


def write_corpus(root, n=3, seconds=1.5, quiet_first=False):
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.01 * rng.standard_normal(t.size)
        if quiet_first:
            wave[: len(wave) // 2] *= 1e-3
        save_wav(root / f"spk{i}" / f"utt{i}.wav", wave.astype(np.float32))
    save_wav(root / "short" / "short.wav", np.full(8000, 0.1, np.float32))  # 0.5 s: left out
    return root


def test_crops_skip_near_silent_windows_and_short_files(tmp_path):
    files = crop_files(write_corpus(tmp_path / "c", n=2, seconds=2.1, quiet_first=True))
    assert [f.name for f in files] == ["utt0.wav", "utt1.wav"]
    data = AudioCrops(files, 6, min_rms=0.05, tries=20)
    for i in range(6):
        x = data[i]
        assert x.shape == (1, SAMPLES) and x.dtype == torch.float32
        assert float(x.pow(2).mean().sqrt()) > 0.05


def test_train_gan_cli_two_steps(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    sets = ["model.nz=8", "model.d=2", "train.max_steps=2", "train.batch_size=4", "data.crops_per_epoch=8",
            "train.num_workers=0", "samples=2", "train.precision=fp32"]
    from facevox.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU, small ops are many times faster than with two threads
    try:
        code = main(["voice", "train-gan", str(corpus), "--out", str(out), "--device", "cpu",
                     *[a for kv in sets for a in ("--set", kv)]])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    assert "model:" in printed.out and "2 steps" in printed.out
    extra = json.loads((out / "model" / "extra.json").read_text())
    assert extra["task"] == "audio-gan" and extra["nz"] == 8 and extra["samples"] == SAMPLES
    assert "task: audio-gan" in (out / "model" / "model.yaml").read_text()
    assert sorted(p.name for p in (out / "samples").glob("*.wav")) == ["sample_00.wav", "sample_01.wav"]
    from facevox.tasks.invert.generators import load_generator

    gen = load_generator(f"wavegan:{out}")  # the run folder works too
    assert gen.kind == "audio" and gen.output_shape == (1, SAMPLES) and gen.nz == 8
