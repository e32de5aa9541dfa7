"""Spectral statistics of a log-spectrogram and a linear classifier on them: the cheap baseline of the
generated-speech detector (``facevox voice train --recipe spectral``), fitted by logistic regression.

Features of a log-magnitude spectrogram (B, 1, F, T), with the F bins averaged into ``bands`` bands:
mean and standard deviation of the log magnitude per band, mean absolute frame-to-frame change per
band, mean and standard deviation of the spectral flatness, and the share of the power above half
and above seven eighths of the band (the high-band energy ratios). An ``nn.Module`` like the LCNN,
so saving, loading, scoring and gradient saliency work the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.registry import register_model


def n_features(bands: int) -> int:
    return 3 * bands + 4


class SpeechSpectralLogReg(nn.Module):
    """Log-spectrogram (B, 1, F, T) -> logit (B, 1) of standardised spectral statistics."""

    def __init__(self, bands: int = 32, n_freq: int = 257, frames: int = 300) -> None:
        super().__init__()
        self.bands = int(bands)
        n = n_features(self.bands)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.fc = nn.Linear(n, 1)
        self.example_input_shape = (1, int(n_freq), int(frames))

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> raw (unstandardised) features (B, 3 * bands + 4)."""
        x = x.float()[:, 0]
        banded = F.adaptive_avg_pool1d(x.transpose(1, 2), self.bands).transpose(1, 2)  # (B, bands, T)
        mean, std = banded.mean(-1), banded.std(-1, unbiased=False)
        delta = (banded[..., 1:] - banded[..., :-1]).abs().mean(-1) if x.shape[-1] > 1 else torch.zeros_like(mean)
        power = torch.exp(2.0 * (x - x.amax(dim=(1, 2), keepdim=True)))  # scaled: no overflow
        flat = torch.exp(torch.log(power + 1e-12).mean(1)) / (power.mean(1) + 1e-12)  # (B, T)
        total = power.sum(1) + 1e-12
        n = x.shape[1]
        high = power[:, n // 2 :].sum(1) / total
        top = power[:, (7 * n) // 8 :].sum(1) / total
        extra = torch.stack([flat.mean(-1), flat.std(-1, unbiased=False), high.mean(-1), top.mean(-1)], dim=1)
        return torch.cat([mean, std, delta, extra], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((self.statistics(x) - self.mean) / self.std)


@register_model("speech_spectral_logreg")
def speech_spectral_logreg(*, bands: int = 32, n_freq: int = 257, frames: int = 300) -> SpeechSpectralLogReg:
    """Logistic regression on spectral statistics of a log-spectrogram (generated-speech baseline)."""
    if bands < 1:
        raise ValueError(f"bands must be >= 1, got {bands}")
    return SpeechSpectralLogReg(bands, n_freq, frames)
