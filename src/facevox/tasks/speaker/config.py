"""Settings of the speaker task (recipes in ``recipes/speaker/``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from facevox.config import TrainConfig


@dataclasses.dataclass
class SpeakerData:
    train: str = ""  # corpus folder (one sub-folder per speaker) or CSV manifest (path,speaker)
    crop_seconds: float = 2.0  # random training crops (the pair classifier uses pair.crop_samples)
    crops_per_epoch: int = 0  # 0: one crop per utterance and epoch (items per epoch with per_speaker > 1)
    per_speaker: int = 1  # > 1: each item is this many crops of one speaker (class-balanced, for MP/MMP)
    min_seconds: float = 0.5  # shorter files are an error (or skipped with skip_bad)
    skip_bad: bool = False  # skip undecodable/empty/silent/short files and list them, instead of stopping
    calib_speakers: int = 0  # speakers held out of training to calibrate scores and pick a threshold
    noise_prob: float = 0.0  # additive noise (coloured noise or other training utterances)
    snr_db: tuple[float, float] = (5.0, 20.0)
    speed_prob: float = 0.0  # speed perturbation 0.9 / 1.1
    max_utterance_seconds: float = 30.0  # longer files are cut (memory: the corpus is held in RAM)


@dataclasses.dataclass
class SpeakerModel:
    kind: Literal["embedding", "pair", "siamese"] = "embedding"
    backbone: str = "ecapa_tdnn"
    backbone_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    features: Literal["fbank", "spectrogram", "resemblyzer_mel"] = "fbank"
    n_mels: int = 80
    specaugment: bool = False
    pretrained: Literal["none", "resemblyzer"] = "none"  # initialise the backbone from shipped weights


@dataclasses.dataclass
class SpeakerLoss:
    name: str = "aam_softmax"  # any registered loss (facevox list losses); pair kinds use pair losses
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    margin_warmup_epochs: float = 0.0  # margin ramps linearly from 0 over this many epochs
    l2sp: float = 0.0  # L2-SP: alpha/2 * ||w - w_pretrained||^2 on the backbone (Li et al. 2018)
    imprint: bool = True  # pretrained models: class weights start at each speaker's mean embedding


@dataclasses.dataclass
class PairSettings:
    crop_samples: int = 25000  # the seed: 25,000 samples from a random position
    pairs_per_epoch: int = 4000
    target_fraction: float = 0.38  # the seed trained on 62/38 different/same pairs


@dataclasses.dataclass
class ScoringSettings:
    window_seconds: float = 0.0  # 0: embed whole utterances; > 0: average embeddings of windows
    max_seconds: float = 20.0  # whole utterances longer than this are embedded in windows of this length
    target_far: float = 0.01  # the decision threshold is chosen for this false-accept rate
    asnorm_top_k: int = 0  # adaptive s-norm with this many cohort scores; 0: off


@dataclasses.dataclass
class SpeakerConfig:
    data: SpeakerData = dataclasses.field(default_factory=SpeakerData)
    model: SpeakerModel = dataclasses.field(default_factory=SpeakerModel)
    loss: SpeakerLoss = dataclasses.field(default_factory=SpeakerLoss)
    pair: PairSettings = dataclasses.field(default_factory=PairSettings)
    scoring: ScoringSettings = dataclasses.field(default_factory=ScoringSettings)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32, lr=1e-3))
