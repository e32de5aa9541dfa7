"""Griffin-Lim: waveforms from magnitude or log-mel spectrograms with no training (the vocoder baseline).

:func:`griffin_lim` is the fast Griffin-Lim of Perraudin et al. (2013): alternate projections
between consistent STFTs and the given magnitude, with momentum ``alpha`` (0.99; 0 gives the
original algorithm). :func:`mel_to_magnitude` inverts the mel filterbank by non-negative least
squares on its pseudo-inverse (clamped at zero), :func:`mel_griffin_lim` chains both for
log-mel frames of :class:`~facevox.audio.mel.LogMel`.
"""

from __future__ import annotations

import torch

from facevox.audio.mel import LogMel, MelSpec, stft


def _istft(spec: torch.Tensor, s: MelSpec, length: int | None) -> torch.Tensor:
    window = torch.hann_window(s.win_length, device=spec.device, dtype=torch.float32)
    return torch.istft(spec, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.win_length, window=window,
                       center=True, length=length)


def griffin_lim(magnitude: torch.Tensor, spec: MelSpec, n_iter: int = 60, alpha: float = 0.99,
                length: int | None = None, seed: int = 0) -> torch.Tensor:
    """(B, n_fft // 2 + 1, F) STFT magnitudes -> (B, length or hop * (F - 1)) waves."""
    if n_iter < 1 or not 0 <= alpha < 1:
        raise ValueError(f"need n_iter >= 1 and 0 <= alpha < 1, got {n_iter}, {alpha}")
    magnitude = magnitude.float()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=gen).to(magnitude.device) * 2 * torch.pi
    angles = torch.polar(torch.ones_like(magnitude), phase)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = _istft(magnitude * angles, spec, length)
        rebuilt = stft(wave, spec.n_fft, spec.hop_length, spec.win_length)[..., : magnitude.shape[-1]]
        accelerated = rebuilt - (alpha / (1 + alpha)) * previous if alpha else rebuilt
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
    return _istft(magnitude * angles, spec, length)


def mel_to_magnitude(log_mel: torch.Tensor, spec: MelSpec) -> torch.Tensor:
    """(B, n_mels, F) log-mel -> (B, n_fft // 2 + 1, F) magnitudes (pseudo-inverse, clamped at 0)."""
    fb = spec.filterbank().to(log_mel.device)
    return torch.clamp(torch.linalg.pinv(fb) @ torch.exp(log_mel.float()), min=0.0)


def mel_griffin_lim(log_mel: torch.Tensor, spec: MelSpec, n_iter: int = 60, alpha: float = 0.99,
                    length: int | None = None) -> torch.Tensor:
    """(B, n_mels, F) log-mel of :class:`LogMel` -> (B, T) waves by Griffin-Lim."""
    return griffin_lim(mel_to_magnitude(log_mel, spec), spec, n_iter=n_iter, alpha=alpha, length=length)


def resynthesise(wave: torch.Tensor, spec: MelSpec | None = None, n_iter: int = 60) -> torch.Tensor:
    """A (T,) or (B, T) wave through its log-mel and back by Griffin-Lim (same length)."""
    spec = spec or MelSpec()
    batch = wave.reshape(-1, wave.shape[-1])
    out = mel_griffin_lim(LogMel(spec).to(wave.device)(batch), spec, n_iter=n_iter, length=batch.shape[-1])
    return out.reshape(wave.shape)
