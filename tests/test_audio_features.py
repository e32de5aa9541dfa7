"""Tests for facevox.audio.features and facevox.audio.augment on generated signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid

from facevox.audio import augment as aug
from facevox.audio import features as feat

SR = 16000


def _sine(freq: float, n: int, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


# ---------------------------------------------------------------------------------------------
# mel filterbank


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(16000, 512, 80), (22050, 2048, 128), (8000, 256, 40)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels):
    librosa = pytest.importorskip("librosa")
    ours = feat.mel_filterbank(n_fft, n_mels, sr).numpy()
    np.testing.assert_allclose(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), atol=1e-6, rtol=0)
    ours = feat.mel_filterbank(n_fft, n_mels, sr, f_min=20.0, f_max=sr / 2 - 400, norm=None, htk=True).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=20.0, fmax=sr / 2 - 400, norm=None, htk=True)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("htk", [False, True])
def test_mel_filterbank_properties(htk):
    # hand-checkable facts that hold with or without librosa: triangles centred on mel-spaced points
    sr, n_fft, n_mels, f_min, f_max = 16000, 4096, 20, 50.0, 7000.0
    peaked = feat.mel_filterbank(n_fft, n_mels, sr, f_min, f_max, norm=None, htk=htk).numpy().astype(np.float64)
    slaney = feat.mel_filterbank(n_fft, n_mels, sr, f_min, f_max, htk=htk).numpy().astype(np.float64)
    assert peaked.shape == (n_mels, n_fft // 2 + 1) and np.all(peaked >= 0)
    points = feat.mel_to_hz(np.linspace(feat.hz_to_mel(f_min, htk), feat.hz_to_mel(f_max, htk), n_mels + 2), htk)
    np.testing.assert_allclose(np.diff(feat.hz_to_mel(points, htk)), np.diff(feat.hz_to_mel(points, htk))[0])
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    bin_hz = freqs[1]
    for i, row in enumerate(peaked):
        lo, centre, hi = points[i : i + 3]
        assert abs(freqs[np.argmax(row)] - centre) <= bin_hz  # peaks at its centre frequency
        assert row.max() > 1 - bin_hz / (centre - lo)  # ... with height ~1
        assert np.all(row[(freqs <= lo) | (freqs >= hi)] == 0)  # zero outside its band
        rising = (freqs > lo) & (freqs < centre)
        np.testing.assert_allclose(row[rising], (freqs[rising] - lo) / (centre - lo), atol=1e-6)  # straight edges
        # slaney norm scales the peak-1 triangle by 2 / (hi - lo), so its area is 2 / (hi - lo) * (hi - lo) / 2 = 1
        np.testing.assert_allclose(slaney[i], row * 2 / (hi - lo), rtol=1e-5, atol=1e-9)
        assert trapezoid(slaney[i], freqs) == pytest.approx(1.0, rel=0.02)
    assert feat.hz_to_mel(1000.0) == pytest.approx(15.0)  # Slaney scale: linear to 1 kHz, 3 mels per 200 Hz
    assert feat.mel_to_hz(feat.hz_to_mel(np.array([0.0, 440.0, 4000.0]))) == pytest.approx([0.0, 440.0, 4000.0])


def test_mel_filterbank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        feat.mel_filterbank(512, 40, SR, norm="l2")
    with pytest.raises(ValueError, match="f_max"):
        feat.mel_filterbank(512, 40, SR, f_max=9000.0)


# ---------------------------------------------------------------------------------------------
# front ends


@pytest.mark.parametrize("num_samples", [16000, 16159, 24000, 400, 100])
def test_fbank_shape_and_frames(num_samples):
    fbank = feat.Fbank()
    wave = torch.from_numpy(np.random.default_rng(0).normal(scale=0.1, size=(2, num_samples)).astype(np.float32))
    out = fbank(wave)
    assert out.shape == (2, 80, feat.frames_for(num_samples, 160)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert fbank(wave[0]).shape == (1, 80, feat.frames_for(num_samples, 160))
    assert fbank.out_dim == 80
    assert torch.allclose(out.mean(dim=-1), torch.zeros(2, 80), atol=1e-4)  # cmn: zero mean over time


def test_fbank_batch_equals_items_and_state_dict_is_empty():
    fbank = feat.Fbank(n_mels=64)
    waves = torch.from_numpy(np.random.default_rng(1).normal(scale=0.2, size=(3, 8000)).astype(np.float32))
    batch = fbank(waves)
    for i in range(3):
        torch.testing.assert_close(batch[i], fbank(waves[i])[0], atol=1e-4, rtol=1e-4)
    assert dict(fbank.state_dict()) == {}  # filterbank and window are rebuilt, not stored
    assert {name for name, _ in fbank.named_buffers()} == {"window", "fbank"}


def test_fbank_sine_energy_in_the_right_band():
    fbank = feat.Fbank(cmn=False, preemphasis=0.0)
    out = fbank(torch.from_numpy(_sine(1000.0, SR)))[0]
    centres = feat.mel_filterbank(512, 80, SR, 20.0, 7600.0).argmax(dim=1).float() * SR / 512
    assert abs(centres[out.mean(dim=1).argmax()].item() - 1000.0) < 100.0


def test_fbank_under_bf16_autocast_returns_fp32():
    fbank = feat.Fbank()
    wave = torch.from_numpy(np.random.default_rng(2).normal(scale=0.1, size=(2, 4000)).astype(np.float32))
    ref = fbank(wave)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = fbank(wave.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, feat.Fbank()(wave.bfloat16().float()))
    assert (out - ref).abs().max() < 0.5  # only the bf16 rounding of the input differs


def test_fbank_no_nan_on_near_silence():
    wave = torch.zeros(2, 8000)
    wave[1] += 1e-7 * torch.randn(8000, generator=torch.Generator().manual_seed(0))
    for module in (feat.Fbank(), feat.Fbank(cmn=False), feat.Spectrogram()):
        assert torch.isfinite(module(wave)).all()
    assert torch.allclose(feat.Fbank(cmn=False)(torch.zeros(1, 1600)), torch.tensor(np.log(1e-6), dtype=torch.float32))


def test_spectrogram_shape():
    spec = feat.Spectrogram()
    out = spec(torch.randn(2, 25000))
    assert out.shape == (2, 257, feat.frames_for(25000, 160)) and spec.out_dim == 257
    out = feat.Spectrogram(n_fft=256, win_length=256, hop_length=128, log=False, cmn=False)(torch.randn(5000))
    assert out.shape == (1, 129, feat.frames_for(5000, 128)) and (out >= 0).all()
    assert dict(spec.state_dict()) == {}


def test_specaugment_train_and_eval():
    x = torch.randn(8, 80, 200)
    sa = feat.SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=20)
    sa.eval()
    assert sa(x) is x
    sa.train()
    out = sa(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    changed = out != x
    assert changed.any(dim=(1, 2)).sum() >= 6  # nearly every example is masked somewhere
    assert torch.equal(x, x.clone())  # the input is not modified in place
    fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    assert torch.equal(out[changed], fill[changed])  # masked cells hold the example's mean
    # a masked frequency row is masked at every time step; a masked column at every frequency
    rows = changed.all(dim=2)
    cols = changed.all(dim=1)
    assert torch.equal(changed, rows[:, :, None] | cols[:, None, :])
    again = sa(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # same generator seed, same masks


# ---------------------------------------------------------------------------------------------
# crops


def test_random_crop_length_and_determinism():
    wave = np.arange(1000, dtype=np.float32)
    a = feat.random_crop(wave, 300, np.random.default_rng(5))
    b = feat.random_crop(wave, 300, np.random.default_rng(5))
    assert a.shape == (300,) and np.array_equal(a, b)
    assert np.array_equal(a, np.arange(a[0], a[0] + 300))  # a contiguous piece
    starts = {feat.random_crop(wave, 300, np.random.default_rng(s))[0] for s in range(20)}
    assert len(starts) > 10
    assert np.array_equal(feat.random_crop(wave, 1000, np.random.default_rng(0)), wave)


def test_random_crop_tiles_short_waves():
    wave = np.arange(7, dtype=np.float32)
    out = feat.random_crop(wave, 30, np.random.default_rng(3))
    assert out.shape == (30,)
    assert np.array_equal(out, (out[0] + np.arange(30)) % 7)  # wrap padding from some offset
    with pytest.raises(ValueError, match="empty"):
        feat.random_crop(np.zeros(0), 10, np.random.default_rng(0))


def test_fixed_windows_cover_the_utterance():
    wave = np.arange(1000, dtype=np.float32)
    win = feat.fixed_windows(wave, 300, 200)
    assert win.shape == (5, 300)  # starts 0, 200, 400, 600 and 700 (aligned to the end)
    assert [int(w[0]) for w in win] == [0, 200, 400, 600, 700]
    assert win[-1, -1] == 999
    assert feat.fixed_windows(wave, 250, 250).shape == (4, 250)  # exact fit: no extra window
    assert np.array_equal(feat.fixed_windows(wave, 1000, 100), wave[None])
    short = feat.fixed_windows(np.arange(4, dtype=np.float32), 10, 5)
    assert np.array_equal(short, [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]])


# ---------------------------------------------------------------------------------------------
# augmentation


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_add_noise_hits_snr(snr_db):
    rng = np.random.default_rng(0)
    wave = _sine(300.0, 16000)
    noise = rng.normal(size=5000).astype(np.float32)  # shorter than the wave: repeated
    mixed = aug.add_noise(wave, noise, snr_db)
    assert mixed.shape == wave.shape and mixed.dtype == np.float32
    added = mixed.astype(np.float64) - wave
    measured = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=0.1)
    assert np.array_equal(aug.add_noise(wave, np.zeros(10), 10.0), wave)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_coloured_noise_unit_rms_and_slope(exponent):
    noise = aug.coloured_noise(1 << 16, np.random.default_rng(0), exponent)
    assert noise.shape == (1 << 16,) and noise.dtype == np.float32
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    keep = freqs > 0
    slope = np.polyfit(np.log(freqs[keep]), np.log(power[keep]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_perturb_length_and_pitch(factor):
    wave = _sine(500.0, 16000)
    out = aug.speed_perturb(wave, factor)
    assert len(out) == pytest.approx(len(wave) / factor, abs=2)
    assert _peak_hz(out) == pytest.approx(500.0 * factor, abs=3.0)
    assert np.array_equal(aug.speed_perturb(wave, 1.0), wave)


def test_wave_augment_deterministic_and_keeps_length():
    wave = _sine(200.0, 8000)
    bank = [np.random.default_rng(9).normal(size=3000).astype(np.float32)]
    for noise_bank in ((), bank):
        augment = aug.WaveAugment(noise_prob=1.0, noise_bank=noise_bank, speed_prob=1.0, gain_db=(-6.0, 6.0))
        a = augment(wave, np.random.default_rng(11))
        b = augment(wave, np.random.default_rng(11))
        c = augment(wave, np.random.default_rng(12))
        assert a.shape == wave.shape and a.dtype == np.float32
        assert np.array_equal(a, b) and not np.array_equal(a, c)
    plain = aug.WaveAugment()
    assert np.array_equal(plain(wave, np.random.default_rng(0)), wave)
    with pytest.raises(ValueError, match="noise_prob"):
        aug.WaveAugment(noise_prob=1.5)


def test_wave_augment_speed_crop_has_no_wrap_seam():
    from facevox.audio.augment import WaveAugment, speed_perturb

    aug = WaveAugment(speed_prob=1.0, speeds=(1.1,))
    wave = np.random.default_rng(1).standard_normal(aug.input_length(4000)).astype(np.float32)
    fast = speed_perturb(wave, 1.1)
    assert len(fast) >= 4000
    for seed in range(5):
        out = aug(wave, np.random.default_rng(seed), 4000)
        assert out.shape == (4000,)
        # the output is one contiguous window of the sped-up wave: no end-to-start wrap
        starts = np.flatnonzero(np.isclose(fast[: len(fast) - 3999], out[0]))
        assert any(np.allclose(fast[s : s + 4000], out) for s in starts)


def test_wave_augment_noise_keeps_length_and_snr():
    from facevox.audio.augment import WaveAugment

    wave = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    aug = WaveAugment(noise_prob=1.0, snr_db=(10.0, 10.0))
    out = aug(wave, np.random.default_rng(0))
    noise = out - wave
    assert out.shape == wave.shape
    assert 10 * np.log10(np.mean(wave**2) / np.mean(noise**2)) == pytest.approx(10.0, abs=0.5)
