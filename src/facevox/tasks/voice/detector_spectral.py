"""Fitting the spectral baseline (:mod:`facevox.nets.speech_spectral`): logistic regression on the
spectral statistics of every scoring window of the training clips, stored in the model's weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facevox.audio.io import load_audio
from facevox.nets.speech_spectral import SpeechSpectralLogReg
from facevox.tasks.voice.detector_data import Clip, VoiceDetector


def clip_statistics(det: VoiceDetector, clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of every window of every clip, decoded one at a time."""
    model: SpeechSpectralLogReg = det.model
    feats, labels = [], []
    with torch.no_grad():
        for c in clips:
            x = det.features(load_audio(c.path, det.spec.sample_rate, det.spec.min_seconds))
            feats.append(model.statistics(x).cpu().numpy())
            labels += [c.label] * len(x)
    return np.concatenate(feats), np.asarray(labels)


def fit_spectral(det: VoiceDetector, clips: Sequence[Clip], c: float = 1.0, balanced: bool = True) -> int:
    """Fit standardisation and an L2 logistic regression (inverse strength ``c``) into ``det.model``;
    returns the number of training windows."""
    from sklearn.linear_model import LogisticRegression

    feats, labels = clip_statistics(det, clips)
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced" if balanced else None)
    clf.fit((feats - mean) / std, labels)
    model = det.model
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(mean).float())
        model.std.copy_(torch.from_numpy(std).float())
        model.fc.weight.copy_(torch.from_numpy(clf.coef_).float())
        model.fc.bias.copy_(torch.from_numpy(clf.intercept_).float())
    return len(labels)
