"""The MelGAN vocoder, its losses, Griffin-Lim and ``facevox voice train-vocoder|vocode`` on generated audio."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from facevox.audio.gan_losses import MultiResolutionSTFTLoss, feature_matching_loss, hinge_d_loss, hinge_g_loss
from facevox.audio.griffin_lim import griffin_lim, resynthesise
from facevox.audio.io import save_wav
from facevox.audio.mel import LogMel, MelSpec, stft
from facevox.audio.quality import mcd, stft_distance
from facevox.cli import main
from facevox.config import load_config
from facevox.errors import FacevoxError
from facevox.gan import GANPair, frozen_call
from facevox.registry import create_model
from facevox.tasks.voice.vocoder_config import VocoderConfig
from facevox.tasks.voice.vocoder_train import VocoderLoss

SR = 16000
pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--set", "model.channels=16", "--set", "model.disc_channels=4", "--set", "model.disc_max_channels=16",
        "--set", "model.disc_layers=2", "--set", "model.disc_scales=2", "--set", "train.batch_size=2",
        "--set", "data.segment_samples=2048", "--set", "train.progress=false"]


def tone(freq: float = 440.0, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float32) / SR
    return amp * torch.sin(2 * math.pi * freq * t)


def speechlike(seed: int, seconds: float = 1.5) -> np.ndarray:
    """A harmonic tone with a moving pitch and an amplitude envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 40 * seed + 20 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (0.2 * wave + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def corpus(tmp_path):
    for s in range(2):
        for u in range(2):
            save_wav(tmp_path / "corpus" / f"spk{s}" / f"u{u}.wav", speechlike(2 * s + u))
    return tmp_path / "corpus"


def tiny_pair() -> GANPair:
    g = create_model("melgan_generator", n_mels=80, channels=16, upsample_ratios=[8, 8, 2, 2], dilations=[1, 3])
    d = create_model("melgan_discriminator", n_scales=2, channels=4, max_channels=16, n_layers=2)
    return GANPair(g, d)


# ---------------------------------------------------------------------------------------------- shapes


def test_generator_and_discriminator_shapes():
    pair = tiny_pair()
    mel = torch.randn(2, 80, 10)
    wave = pair.generator(mel)
    assert wave.shape == (2, 1, 2560) and wave.abs().max() <= 1
    outs = pair.discriminator(wave)
    assert len(outs) == 2
    (feats0, score0), (feats1, score1) = outs
    assert len(feats0) == 4 and score0.shape[:2] == (2, 1) and score1.shape[-1] < score0.shape[-1]
    full = create_model("melgan_generator")
    assert full.hop_length == 256 and 4.0e6 < sum(p.numel() for p in full.parameters()) < 4.5e6  # the paper's 4.26 M


def test_generator_rejects_bad_inputs():
    g = tiny_pair().generator
    with pytest.raises(FacevoxError, match="log-mel frames"):
        g(torch.randn(2, 40, 10))
    with pytest.raises(FacevoxError, match="at least 4 mel frames"):
        g(torch.randn(1, 80, 2))
    with pytest.raises(FacevoxError, match="divisible"):
        create_model("melgan_generator", channels=20, upsample_ratios=[8, 8, 2, 2])


def test_log_mel_frames():
    mel = LogMel()(tone()[None])
    assert mel.shape == (1, 80, 16000 // 256 + 1) and torch.isfinite(mel).all()


# ---------------------------------------------------------------------------------------------- losses


def test_hinge_and_feature_matching():
    real = [([torch.ones(2, 3, 5)], torch.full((2, 1, 5), 2.0))]
    fake = [([torch.zeros(2, 3, 5)], torch.full((2, 1, 5), -2.0))]
    assert hinge_d_loss(real, fake).item() == 0.0  # both beyond the margin
    assert hinge_d_loss(fake, real).item() == pytest.approx(6.0)  # 3 + 3
    assert hinge_g_loss(fake).item() == pytest.approx(2.0)
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.0)
    assert feature_matching_loss(real, real).item() == 0.0


def test_multi_resolution_stft_loss():
    loss = MultiResolutionSTFTLoss()
    x = tone()[None]
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(tone(450.0)[None], x).item() > loss(0.9 * x, x).item() > 0
    with pytest.raises(ValueError, match="shape"):
        loss(x[:, :100], x)


def test_frozen_call_sends_no_gradient_to_the_module():
    pair = tiny_pair()
    wave = pair.generator(torch.randn(1, 80, 8))
    hinge_g_loss(frozen_call(pair.discriminator, wave)).backward()
    assert all(p.grad is None for p in pair.discriminator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pair.generator.parameters())


def test_one_training_step_has_finite_losses_and_gradients_for_both():
    torch.manual_seed(0)
    cfg = load_config(VocoderConfig, "voice/melgan_cpu", ["loss.adversarial_start=0"])
    pair = tiny_pair()
    logs = VocoderLoss(cfg)(pair, torch.from_numpy(np.stack([speechlike(0)[:4096], speechlike(1)[:4096]])))
    assert {"d_loss", "g_adv", "feature_matching", "stft", "mel_l1", "loss"} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())
    logs["loss"].backward()
    for net in (pair.generator, pair.discriminator):
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_warm_up_trains_the_generator_only():
    cfg = load_config(VocoderConfig, "voice/melgan_cpu")
    loss, pair = VocoderLoss(cfg), tiny_pair()
    loss.set_step(0)
    logs = loss(pair, torch.from_numpy(speechlike(0)[None, :4096]))
    assert "d_loss" not in logs and "stft" in logs
    logs["loss"].backward()
    assert all(p.grad is None for p in pair.discriminator.parameters())
    loss.set_step(cfg.loss.adversarial_start)
    assert "d_loss" in loss(pair, torch.from_numpy(speechlike(0)[None, :4096]))


def test_config_checks_hop_against_ratios():
    with pytest.raises(FacevoxError, match="mel.hop_length"):
        load_config(VocoderConfig, "voice/melgan", ["model.upsample_ratios=[8,8,2]"])
    with pytest.raises(FacevoxError, match="adversarial_start"):
        load_config(VocoderConfig, "voice/melgan", ["loss.adversarial_start=10"])


# ---------------------------------------------------------------------------------------------- Griffin-Lim


def _peak_hz(wave: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.argmax(spectrum)) * SR / len(wave)


def test_griffin_lim_reconstructs_a_pure_tone_from_its_magnitude():
    x, s = tone(440.0), MelSpec()
    mag = stft(x[None], s.n_fft, s.hop_length, s.win_length).abs()
    y = griffin_lim(mag, s, n_iter=60, length=len(x))[0]
    assert abs(_peak_hz(y) - 440.0) <= 2.0
    rebuilt = stft(y[None], s.n_fft, s.hop_length, s.win_length).abs()
    convergence = torch.linalg.norm(rebuilt - mag) / torch.linalg.norm(mag)
    assert convergence < 0.1  # a consistent spectrogram: phase found
    assert 0.8 < float(y.pow(2).mean().sqrt() / x.pow(2).mean().sqrt()) < 1.2


def test_griffin_lim_from_log_mel_keeps_the_tone():
    x = tone(1000.0)
    y = resynthesise(x)
    assert y.shape == x.shape
    assert abs(_peak_hz(y) - 1000.0) < 40.0  # within a mel band at 1 kHz
    assert stft_distance(x.numpy(), y.numpy()) < stft_distance(x.numpy(), tone(1300.0).numpy())


def test_mcd_is_zero_for_the_same_wave_and_ignores_gain():
    w = speechlike(0)
    assert mcd(w, w) == 0.0
    assert mcd(w, 0.5 * w) < 1e-3
    assert mcd(w, resynthesise(torch.from_numpy(w)).numpy()) > 1.0


# ---------------------------------------------------------------------------------------------- commands


def test_train_vocoder_then_vocode_end_to_end(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["voice", "train-vocoder", str(corpus), "--recipe", "melgan_cpu", "--out", str(out), *TINY,
                 "--set", "train.max_steps=3", "--set", "loss.adversarial_start=1", "--set", "samples=1"]) == 0
    assert "model:" in capsys.readouterr().out
    extra = json.loads((out / "model" / "extra.json").read_text())
    assert extra["task"] == "vocoder" and extra["mel"]["hop_length"] == 256 and extra["train_steps"] == 3
    assert (out / "samples" / "00_melgan.wav").is_file()
    rows = (out / "train" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and "d_loss" in rows[0]

    wav = corpus / "spk0" / "u0.wav"
    np.save(tmp_path / "frames.npy", LogMel()(torch.from_numpy(speechlike(3))[None])[0].numpy())
    dest = tmp_path / "vocoded"
    assert main(["voice", "vocode", str(wav), str(tmp_path / "frames.npy"), "--model", str(out / "model"),
                 "--out", str(dest), "--no-pesq"]) == 0
    summary = json.loads((dest / "summary.json").read_text())
    assert summary["files"] == 2 and summary["vocoder"] == "melgan" and summary["rtf"] > 0
    assert math.isfinite(summary["mcd_db"]) and math.isfinite(summary["stft_distance"])
    assert len(list(dest.glob("*.wav"))) == 2
    assert "vocode_seconds" in (dest / "vocode.csv").read_text()

    import facevox

    vocoder = facevox.load(out / "model", device="cpu")
    wave = speechlike(1)
    assert vocoder.name == "melgan" and vocoder.resynthesise(wave).shape == wave.shape
    assert facevox.load("griffinlim").vocode(vocoder.mel(wave), len(wave)).shape == wave.shape


def test_vocode_with_griffin_lim_scores_against_the_original(tmp_path, corpus, capsys):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    dest = tmp_path / "gl"
    assert main(["voice", "vocode", str(corpus), "--model", "griffinlim", "--out", str(dest), "--max-files", "2"]) == 0
    summary = json.loads((dest / "summary.json").read_text())
    assert summary["files"] == 2 and 1.0 <= summary["pesq_wb"] <= 4.65 and 0 < summary["stoi"] <= 1
    assert "x real time" in capsys.readouterr().out


def test_vocode_bad_inputs_are_one_line_errors(tmp_path, corpus, capsys):
    from conftest import one_line_error

    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((40, 10), np.float32))
    one_line_error(capsys, ["voice", "vocode", str(bad), "--model", "griffinlim", "--out", str(tmp_path / "o")],
                   "bad.npy", "(80, F)")
    one_line_error(capsys, ["voice", "vocode", str(tmp_path / "none.wav"), "--model", "griffinlim",
                            "--out", str(tmp_path / "o")], "none.wav", "not found")
    one_line_error(capsys, ["voice", "vocode", str(corpus), "--model", str(tmp_path), "--out",
                            str(tmp_path / "o")], "model.yaml")
    assert not (tmp_path / "o").exists()
