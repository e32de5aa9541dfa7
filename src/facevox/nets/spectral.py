"""A linear classifier on the azimuthally averaged Fourier spectrum (after Durall et al. 2020).

The fast CPU baseline of GAN-face detection: no deep network, fitted in seconds by logistic
regression (:func:`facevox.tasks.fakeface.spectral.fit_spectral`). It is an ``nn.Module`` like
the CNNs, so saving, loading, prediction and gradient saliency work the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.image.spectrum import azimuthal_spectrum
from facevox.registry import register_model


class SpectralLogReg(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> logit (B, 1).

    The image is resized to ``size`` x ``size`` (so every profile has ``size // 2`` bins), its
    spectral profile standardised with the training set's ``mean``/``std`` and fed to ``fc``.
    """

    def __init__(self, size: int = 256, num_classes: int = 1) -> None:
        super().__init__()
        self.size = size
        n = size // 2
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.fc = nn.Linear(n, num_classes)
        self.num_classes = num_classes
        self.example_input_shape = (3, size, size)

    def profile(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> standardised spectral profile (B, size // 2)."""
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)
        return (azimuthal_spectrum(x) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.profile(x))


@register_model("spectral_logreg")
def spectral_logreg(*, size: int = 256, num_classes: int = 1) -> SpectralLogReg:
    """Logistic regression on the azimuthal Fourier spectrum (Durall et al. 2020); CPU baseline."""
    return SpectralLogReg(size, num_classes)
