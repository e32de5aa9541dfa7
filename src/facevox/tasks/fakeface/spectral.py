"""Fitting the spectral baseline: logistic regression on azimuthal Fourier profiles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facevox.image.transforms import to_tensor
from facevox.nets.spectral import SpectralLogReg


def spectral_profiles(model: SpectralLogReg, arrays: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Raw (unstandardised) profiles (N, size // 2) of uint8 images of one size."""
    from facevox.image.spectrum import azimuthal_spectrum

    out = []
    with torch.no_grad():
        for i in range(0, len(arrays), batch_size):
            x = to_tensor(list(arrays[i : i + batch_size]))
            if x.shape[-2:] != (model.size, model.size):
                x = torch.nn.functional.interpolate(x, size=(model.size, model.size), mode="bilinear",
                                                    align_corners=False, antialias=True)
            out.append(azimuthal_spectrum(x).numpy())
    return np.concatenate(out)


def fit_spectral(model: SpectralLogReg, arrays: Sequence[np.ndarray], labels: Sequence[int], c: float = 1.0,
                 balanced: bool = True) -> None:
    """Fit standardisation and an L2 logistic regression (inverse strength ``c``) into ``model``."""
    from sklearn.linear_model import LogisticRegression

    feats = spectral_profiles(model, arrays)
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced" if balanced else None)
    clf.fit((feats - mean) / std, np.asarray(labels))
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(mean).float())
        model.std.copy_(torch.from_numpy(std).float())
        model.fc.weight.copy_(torch.from_numpy(clf.coef_).float())
        model.fc.bias.copy_(torch.from_numpy(clf.intercept_).float())
