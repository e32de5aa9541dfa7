"""Settings of the generated-speech detector (recipes ``voice/lcnn`` and ``voice/speech_spectral``); the spec its
model folders carry is :class:`facevox.inference_spec.VoiceDetectorSpec`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from facevox.config import SEED, TrainConfig, ranged
from facevox.inference_spec import VoiceDetectorSpec

TASK = VoiceDetectorSpec.task
SAMPLE_RATE = 16000
GENERATORS = ("griffinlim", "synth", "melgan")  # what facevox voice make-fakes writes
KINDS = ("real", *GENERATORS)  # the generator column of an index: real clips say "real"
RECIPES = {"lcnn": "voice/lcnn", "spectral": "voice/speech_spectral"}


@dataclasses.dataclass
class DetectorData:
    source: str = ""  # index.csv of facevox voice make-fakes (a split file), or its folder
    # the generators whose fakes train the detector (empty: all); the others stay for evaluation
    train_generators: list[str] = dataclasses.field(default_factory=list)
    crop_seconds: float = ranged(3.0, gt=0.1, le=30)  # random training crops
    window_seconds: float = ranged(3.0, gt=0.1, le=30)  # scoring: fixed windows (half overlapping), logits averaged
    balance: Literal["weighted_loss", "none"] = "weighted_loss"


@dataclasses.dataclass
class DetectorFeatures:
    """The log-magnitude spectrogram (:class:`facevox.audio.features.Spectrogram`) both models read."""

    n_fft: int = ranged(512, ge=16, le=8192)
    win_length: int = ranged(400, ge=16, le=8192)
    hop_length: int = ranged(160, ge=1, le=8192)


@dataclasses.dataclass
class DetectorModel:
    name: Literal["lcnn", "speech_spectral_logreg"] = "lcnn"
    channels: tuple[int, int, int, int] = ranged((16, 24, 32, 32), ge=1, le=4096)  # lcnn
    hidden: int = ranged(32, ge=1, le=4096)  # lcnn
    dropout: float = ranged(0.3, ge=0, lt=1)  # lcnn
    bands: int = ranged(32, ge=1, le=1024)  # spectral baseline
    c: float = ranged(1.0, gt=0)  # spectral baseline: inverse L2 strength of the logistic regression


@dataclasses.dataclass
class DetectorConfig:
    data: DetectorData = dataclasses.field(default_factory=DetectorData)
    features: DetectorFeatures = dataclasses.field(default_factory=DetectorFeatures)
    model: DetectorModel = dataclasses.field(default_factory=DetectorModel)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=10, batch_size=16, lr=1e-3))
    seed: int = ranged(0, **SEED)

    def cross_check(self) -> Iterator[tuple[str, str]]:
        f = self.features
        if not f.hop_length <= f.win_length <= f.n_fft:
            yield "features.win_length", (f"need hop_length <= win_length <= n_fft, got {f.hop_length}, "
                                          f"{f.win_length}, {f.n_fft}")
        bad = [g for g in self.data.train_generators if g not in GENERATORS]
        if bad:
            yield "data.train_generators", f"unknown generator '{bad[0]}'; valid: {', '.join(GENERATORS)}"


def detector_spec(cfg: DetectorConfig, threshold: float = 0.5) -> VoiceDetectorSpec:
    """The inference spec a model trained with ``cfg`` carries."""
    f = cfg.features
    return VoiceDetectorSpec(f.n_fft, f.win_length, f.hop_length, cfg.data.window_seconds, threshold)
