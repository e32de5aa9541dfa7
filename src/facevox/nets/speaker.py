"""Speaker models that take waveforms: features computed on the model's device, then a backbone.

Three kinds, all registered by name so that a model folder rebuilds them from its config:

- ``speaker_embedder``: wave (B, T) -> embedding (B, D); trained with a classification
  margin loss (AAM, SphereFace2, MMP, ...) and scored by cosine.
- ``speaker_pair``: the seed paper's pair classifier: two waves -> two spectrograms stacked
  as channels -> one same/different logit (B,).
- ``speaker_siamese``: one shared embedding branch applied to both waves of a pair, trained
  with a contrastive loss; scored by cosine like an embedder.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facevox.audio.features import Fbank, SpecAugment, Spectrogram, mel_filterbank
from facevox.registry import create_model, register_model

FEATURES = ("fbank", "spectrogram", "resemblyzer_mel")


class ResemblyzerMel(nn.Module):
    """The features Resemblyzer's encoder was trained on: waves (B, T) -> (B, 40, frames).

    librosa.feature.melspectrogram defaults at 16 kHz with 25 ms (400-sample) Hann windows every
    10 ms, 40 Slaney mel bands, power spectrum, zero ("constant") centre padding, no log.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out_dim = 40
        self.register_buffer("window", torch.hann_window(400, periodic=True), persistent=False)
        self.register_buffer("fbank", mel_filterbank(400, 40, 16000), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.unsqueeze(0) if wave.dim() == 1 else wave
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = torch.stft(wave.float(), n_fft=400, hop_length=160, window=self.window.float(), center=True,
                              pad_mode="constant", return_complex=True).abs().pow(2)
            return torch.matmul(self.fbank.float(), spec)


def make_features(kind: str, n_mels: int) -> nn.Module:
    if kind == "fbank":
        return Fbank(n_mels=n_mels)
    if kind == "spectrogram":
        return Spectrogram()
    if kind == "resemblyzer_mel":
        return ResemblyzerMel()
    raise ValueError(f"unknown features '{kind}'; valid: {', '.join(FEATURES)}")


class _WaveModel(nn.Module):
    """Features of the waveform (and SpecAugment in training), computed inside the model."""

    def __init__(self, features: str, n_mels: int, specaugment: bool) -> None:
        super().__init__()
        self.features = make_features(features, n_mels)
        self.specaugment = SpecAugment() if specaugment else nn.Identity()


class SpeakerEmbedder(_WaveModel):
    """wave (B, T) float in [-1, 1] at 16 kHz -> embedding (B, D)."""

    def __init__(self, backbone: str, backbone_kwargs: dict[str, Any], features: str, n_mels: int,
                 specaugment: bool) -> None:
        super().__init__(features, n_mels, specaugment)
        self.backbone = create_model(backbone, in_dim=self.features.out_dim, **backbone_kwargs)
        self.embed_dim = self.backbone.embed_dim
        self.example_input_shape = (8000,)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        feats = self.specaugment(self.features(wave))
        return self.backbone(feats)


class SpeakerPair(_WaveModel):
    """Pairs (B, 2, T), or wave_a (B, T) and wave_b (B, T) as two arguments -> same-speaker logit (B,)."""

    def __init__(self, backbone: str, backbone_kwargs: dict[str, Any], features: str, n_mels: int,
                 specaugment: bool) -> None:
        super().__init__(features, n_mels, specaugment)
        self.backbone = create_model(backbone, in_channels=2, **backbone_kwargs)
        self.example_input_shape = (2, 8000)

    def forward(self, pair: torch.Tensor, wave_b: torch.Tensor | None = None) -> torch.Tensor:
        a, b = (pair[:, 0], pair[:, 1]) if wave_b is None else (pair, wave_b)
        fa, fb = self.specaugment(self.features(a)), self.specaugment(self.features(b))
        return self.backbone(torch.stack([fa, fb], dim=1)).reshape(-1)


def _check_features(features: str) -> None:
    if features not in FEATURES:
        from facevox.errors import FacevoxError

        raise FacevoxError(f"unknown features '{features}'; valid: {', '.join(FEATURES)}", "model.features")


@register_model("speaker_embedder")
def speaker_embedder(*, backbone: str = "ecapa_tdnn", backbone_kwargs: dict[str, Any] | None = None,
                     features: str = "fbank", n_mels: int = 80, specaugment: bool = False) -> SpeakerEmbedder:
    """Waveform speaker embedder: log-mel (or spectrogram) features + a registered backbone."""
    _check_features(features)
    return SpeakerEmbedder(backbone, dict(backbone_kwargs or {}), features, n_mels, specaugment)


@register_model("speaker_pair")
def speaker_pair(*, backbone: str = "pair_alexnet", backbone_kwargs: dict[str, Any] | None = None,
                 features: str = "spectrogram", n_mels: int = 80, specaugment: bool = False) -> SpeakerPair:
    """The seed's pair classifier: two spectrograms stacked as channels -> same/different logit."""
    _check_features(features)
    return SpeakerPair(backbone, dict(backbone_kwargs or {}), features, n_mels, specaugment)


@register_model("speaker_siamese")
def speaker_siamese(*, backbone: str = "siamese_cnn", backbone_kwargs: dict[str, Any] | None = None,
                    features: str = "spectrogram", n_mels: int = 80, specaugment: bool = False) -> SpeakerEmbedder:
    """The seed's Siamese branch as a waveform embedder (trained on pairs with a contrastive loss)."""
    _check_features(features)
    return SpeakerEmbedder(backbone, dict(backbone_kwargs or {}), features, n_mels, specaugment)
