"""A light CNN with max-feature-map activations on log-spectrograms (after Lavrentyeva et al. 2019).

The generated-speech detector of ``facevox voice train --recipe lcnn``: a log-magnitude
spectrogram (B, 1, F, T) -> the logit of P(generated) (B, 1). Any F and T (adaptive pooling at the
end), so training crops and scoring windows may differ in length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facevox.registry import register_model


class MaxFeatureMap(nn.Module):
    """Split the channels (dim 1) in two halves and keep the element-wise maximum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(x, 2, dim=1)
        return torch.maximum(a, b)


def _mfm_conv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 2 * cout, k, padding=k // 2), MaxFeatureMap())


class LCNN(nn.Module):
    """Log-spectrogram (B, 1, F, T) -> logit (B, 1): four MFM stages with max pooling, mean+max pooling
    over frequency and time, then an MFM hidden layer."""

    def __init__(self, channels: Sequence[int] = (16, 24, 32, 32), hidden: int = 32, dropout: float = 0.3,
                 n_freq: int = 257, frames: int = 300) -> None:
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.features = nn.Sequential(
            _mfm_conv(1, c1, 5), nn.MaxPool2d(2),
            _mfm_conv(c1, c1, 1), nn.BatchNorm2d(c1), _mfm_conv(c1, c2, 3), nn.MaxPool2d(2), nn.BatchNorm2d(c2),
            _mfm_conv(c2, c2, 1), nn.BatchNorm2d(c2), _mfm_conv(c2, c3, 3), nn.MaxPool2d(2),
            _mfm_conv(c3, c3, 1), nn.BatchNorm2d(c3), _mfm_conv(c3, c4, 3),
        )
        self.cam_layer = self.features[-1]  # Grad-CAM: the last MFM stage
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c4, 2 * hidden), MaxFeatureMap(),
                                  nn.BatchNorm1d(hidden), nn.Linear(hidden, 1))
        self.example_input_shape = (1, int(n_freq), int(frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


@register_model("lcnn")
def lcnn(*, channels: Sequence[int] = (16, 24, 32, 32), hidden: int = 32, dropout: float = 0.3, n_freq: int = 257,
         frames: int = 300) -> LCNN:
    """Light CNN with max-feature-map on log-spectrograms (generated-speech detector)."""
    if len(channels) != 4 or min(channels) < 1:
        raise ValueError(f"channels must be 4 positive widths, got {list(channels)}")
    return LCNN(channels, hidden, dropout, n_freq, frames)
