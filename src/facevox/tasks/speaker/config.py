"""Settings of the speaker task (recipes in ``src/facevox/recipes/speaker/``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from facevox.config import PROB, TrainConfig, ranged


@dataclasses.dataclass
class SpeakerData:
    # corpus folder (one sub-folder per speaker), CSV manifest (path,speaker[,duration]), or a shard list
    # (facevox data shard: a folder with shard.list, or the .list file)
    train: str = ""
    # decode the corpus into RAM before training (true), per item in the DataLoader workers (false), or
    # auto: in RAM up to 2,000 files (facevox.datasets.index.IN_MEMORY_LIMIT), lazily above; shards always stream
    in_memory: Literal["auto", True, False] = "auto"
    crop_seconds: float = ranged(2.0, gt=0)  # random training crops (the pair classifier uses pair.crop_samples)
    crops_per_epoch: int = ranged(0, ge=0)  # 0: one crop per utterance and epoch (items per epoch with per_speaker > 1)
    per_speaker: int = ranged(1, ge=1)  # > 1: each item is this many crops of one speaker (class-balanced, for MP/MMP)
    min_seconds: float = ranged(0.5, ge=0)  # shorter files are an error (or skipped with skip_bad)
    skip_bad: bool = False  # skip undecodable/empty/silent/short files and list them, instead of stopping
    calib_speakers: int = ranged(0, ge=0)  # speakers held out of training to calibrate scores and pick a threshold
    noise_prob: float = ranged(0.0, **PROB)  # additive noise (coloured noise or other training utterances)
    snr_db: tuple[float, float] = ranged((5.0, 20.0), order="<=")  # (low, high) of the noise's SNR
    speed_prob: float = ranged(0.0, **PROB)  # speed perturbation 0.9 / 1.1
    max_utterance_seconds: float = ranged(30.0, gt=0)  # longer files are cut (bounds RAM in memory, decoding lazily)


@dataclasses.dataclass
class SpeakerModel:
    kind: Literal["embedding", "pair", "siamese"] = "embedding"
    backbone: str = "ecapa_tdnn"
    backbone_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    features: Literal["fbank", "spectrogram", "resemblyzer_mel"] = "fbank"
    n_mels: int = ranged(80, ge=1, le=512)
    specaugment: bool = False
    pretrained: Literal["none", "resemblyzer"] = "none"  # initialise the backbone from shipped weights


@dataclasses.dataclass
class SpeakerLoss:
    name: str = "aam_softmax"  # any registered loss (facevox list losses); pair kinds use pair losses
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    margin_warmup_epochs: float = ranged(0.0, ge=0)  # margin ramps linearly from 0 over this many epochs
    l2sp: float = ranged(0.0, ge=0)  # L2-SP: alpha/2 * ||w - w_pretrained||^2 on the backbone (Li et al. 2018)
    imprint: bool = True  # pretrained models: class weights start at each speaker's mean embedding


@dataclasses.dataclass
class PairSettings:
    crop_samples: int = ranged(25000, ge=1)  # the seed: 25,000 samples from a random position
    pairs_per_epoch: int = ranged(4000, ge=1)
    target_fraction: float = ranged(0.38, gt=0, lt=1)  # the seed trained on 62/38 different/same pairs


@dataclasses.dataclass
class ScoringSettings:
    window_seconds: float = ranged(0.0, ge=0)  # 0: embed whole utterances; > 0: average embeddings of windows
    max_seconds: float = ranged(20.0, gt=0)  # whole utterances longer than this are embedded in windows of this length
    target_far: float = ranged(0.01, gt=0, lt=1)  # the decision threshold is chosen for this false-accept rate
    asnorm_top_k: int = ranged(0, ge=0)  # adaptive s-norm with this many cohort scores; 0: off


@dataclasses.dataclass
class SpeakerDefence:
    """Training-time defence (facevox.defences): none, the neighbourhood of fixed perturbations, or PGD training."""

    kind: Literal["none", "neighbourhood", "pgd"] = "none"
    copies: int = ranged(4, ge=1)  # neighbourhood: K fixed perturbed copies per training item
    snr_db: float = ranged(30.0)  # perturbation energy at most this many dB below the crop's (an L2 ball)
    draw: Literal["uniform", "gaussian"] = "uniform"  # neighbourhood: uniform in the ball, or Gaussian projected on it
    pgd_steps: int = ranged(5, ge=1)  # pgd: projected gradient-ascent steps per batch
    pgd_step_size: float = ranged(0.25, gt=0, le=2)  # pgd: each step's length, as a fraction of the ball's radius
    mix: float = ranged(0.5, gt=0, le=1)  # pgd: fraction of each batch replaced by its adversarial examples


@dataclasses.dataclass
class SpeakerConfig:
    data: SpeakerData = dataclasses.field(default_factory=SpeakerData)
    model: SpeakerModel = dataclasses.field(default_factory=SpeakerModel)
    loss: SpeakerLoss = dataclasses.field(default_factory=SpeakerLoss)
    pair: PairSettings = dataclasses.field(default_factory=PairSettings)
    scoring: ScoringSettings = dataclasses.field(default_factory=ScoringSettings)
    defence: SpeakerDefence = dataclasses.field(default_factory=SpeakerDefence)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32, lr=1e-3))
