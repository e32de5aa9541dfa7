"""Settings of the waveform GAN (``facevox voice train-gan``; recipe ``src/facevox/recipes/voice/wavegan.yaml``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from facevox.config import TrainConfig, ranged


@dataclasses.dataclass
class WaveGANData:
    train: str = ""  # folder of audio files (searched recursively, e.g. LibriSpeech train-clean-100)
    crops_per_epoch: int = ranged(6400, ge=1)  # random 16384-sample crops (~1 s at 16 kHz) per epoch
    min_rms: float = ranged(0.005, ge=0)  # a crop quieter than this RMS (about -46 dBFS) is drawn again
    max_tries: int = ranged(8, ge=1)  # draws per item; the loudest is kept when none passes min_rms
    max_files: int = ranged(0, ge=0)  # 0: every file; > 0: this many, spread evenly over the sorted list


@dataclasses.dataclass
class WaveGANModel:
    nz: int = ranged(100, ge=1)  # latent size (the paper: 100, uniform; here z ~ N(0, I) as facevox invert draws)
    d: int = ranged(16, ge=1)  # width: the generator's last hidden layer has d channels (the paper: 64)
    d_width: int = ranged(0, ge=0)  # the discriminator's d; 0: the generator's
    shuffle: int = ranged(2, ge=0)  # phase shuffle of the discriminator (the paper: 2)


@dataclasses.dataclass
class WaveGANLoss:
    kind: Literal["wgan-gp", "hinge"] = "wgan-gp"  # the paper: WGAN-GP
    gp_weight: float = ranged(10.0, ge=0)  # lambda of the gradient penalty on interpolates (wgan-gp)
    drift: float = ranged(0.001, ge=0)  # epsilon * D(real)^2 keeps the critic's scores near 0 (wgan-gp)
    lr_g: float = ranged(1e-4, gt=0)  # the paper: Adam 1e-4, betas (0.5, 0.9)
    lr_d: float = ranged(3e-4, gt=0)  # one simultaneous step for both nets, so the critic learns faster (TTUR)
    betas: tuple[float, float] = ranged((0.5, 0.9), ge=0, lt=1)


@dataclasses.dataclass
class WaveGANConfig:
    data: WaveGANData = dataclasses.field(default_factory=WaveGANData)
    model: WaveGANModel = dataclasses.field(default_factory=WaveGANModel)
    loss: WaveGANLoss = dataclasses.field(default_factory=WaveGANLoss)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=1, batch_size=32, lr=1e-4, num_workers=1, log_every=10,
                                            ckpt_every=100))
    samples: int = ranged(8, ge=0)  # sample WAVs written next to the model (fixed z, seed 0)
    licence: str = "unknown"  # of the training audio, for the model card (LibriSpeech: CC BY 4.0)
