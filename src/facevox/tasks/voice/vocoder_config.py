"""Settings of the MelGAN vocoder (recipes ``voice/melgan`` and ``voice/melgan_cpu``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from facevox.audio.mel import MelSpec
from facevox.config import TrainConfig, ranged
from facevox.errors import FacevoxError


@dataclasses.dataclass
class VocoderData:
    train: str = ""  # folder of <speaker>/**/audio files (LibriSpeech layout) or a CSV manifest path,speaker
    segment_samples: int = ranged(8192, ge=1024, le=160000)  # training crops (MelGAN: 8192 samples)
    min_seconds: float = ranged(1.0, ge=0.1)  # shorter files are refused (or skipped with skip_bad)
    max_seconds: float = ranged(30.0, gt=0)  # longer files are cut
    in_memory: Literal["auto", True, False] = "auto"  # decode the corpus into RAM, or per crop in the workers
    skip_bad: bool = False


@dataclasses.dataclass
class VocoderMel:
    """The log-mel front end (:class:`facevox.audio.mel.MelSpec`); hop_length must equal the generator's hop."""

    sample_rate: int = ranged(16000, ge=8000, le=48000)
    n_fft: int = ranged(1024, ge=64, le=8192)
    hop_length: int = ranged(256, ge=16, le=4096)
    win_length: int = ranged(1024, ge=16, le=8192)
    n_mels: int = ranged(80, ge=8, le=256)
    f_min: float = ranged(0.0, ge=0)
    f_max: float = ranged(8000.0, gt=0)

    def spec(self) -> MelSpec:
        return MelSpec(**dataclasses.asdict(self))


@dataclasses.dataclass
class VocoderModel:
    channels: int = ranged(512, ge=8, le=4096)  # generator width after the input convolution
    upsample_ratios: tuple[int, ...] = ranged((8, 8, 2, 2), ge=1, le=32)  # their product is the hop length
    dilations: tuple[int, ...] = ranged((1, 3, 9), ge=1, le=243)
    disc_scales: int = ranged(3, ge=1, le=6)
    disc_channels: int = ranged(16, ge=1, le=256)
    disc_max_channels: int = ranged(1024, ge=1, le=4096)
    disc_layers: int = ranged(4, ge=1, le=8)


@dataclasses.dataclass
class VocoderLoss:
    feature_matching: float = ranged(10.0, ge=0)  # MelGAN's lambda
    stft: float = ranged(0.0, ge=0)  # multi-resolution STFT loss weight (0 in the paper; Parallel WaveGAN uses it)
    mel_l1: float = ranged(0.0, ge=0)  # L1 of log-mel frames (HiFi-GAN weights it 45)
    adversarial_start: int = ranged(0, ge=0)  # steps of generator-only training (needs stft or mel_l1 > 0)
    lr_g: float = ranged(1e-4, gt=0)
    lr_d: float = ranged(1e-4, gt=0)
    betas: tuple[float, float] = ranged((0.5, 0.9), ge=0, lt=1)


@dataclasses.dataclass
class VocoderConfig:
    data: VocoderData = dataclasses.field(default_factory=VocoderData)
    mel: VocoderMel = dataclasses.field(default_factory=VocoderMel)
    model: VocoderModel = dataclasses.field(default_factory=VocoderModel)
    loss: VocoderLoss = dataclasses.field(default_factory=VocoderLoss)
    # the paper: Adam (lr 1e-4, betas 0.5/0.9), batch 16 crops of 8192 samples
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(batch_size=16, lr=1e-4,
                                                                               max_steps=100000, ckpt_every=500))
    samples: int = ranged(3, ge=0, le=100)  # training clips resynthesised into OUT/samples after training

    def cross_check(self) -> Iterator[tuple[str, str]]:
        """The generator's hop must be the mel hop; the warm-up needs a reconstruction loss."""
        hop = 1
        for r in self.model.upsample_ratios:
            hop *= r
        if hop != self.mel.hop_length:
            yield "model.upsample_ratios", (f"their product ({hop}) must equal mel.hop_length "
                                            f"({self.mel.hop_length})")
        if self.loss.adversarial_start and not (self.loss.stft or self.loss.mel_l1):
            yield "loss.adversarial_start", "generator-only steps need loss.stft or loss.mel_l1 above 0"
        if self.data.segment_samples < 4 * self.mel.hop_length:
            yield "data.segment_samples", f"need at least 4 mel frames (4 x {self.mel.hop_length} samples)"
        if self.data.min_seconds * self.mel.sample_rate < self.data.segment_samples:
            yield "data.min_seconds", (f"files must hold one crop of {self.data.segment_samples} samples "
                                       f"({self.data.segment_samples / self.mel.sample_rate:.2f} s)")
        try:
            self.mel.spec()
        except FacevoxError as err:
            yield "mel", err.problem
