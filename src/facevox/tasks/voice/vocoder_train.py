"""Training the MelGAN vocoder through the shared :class:`~facevox.train.Trainer`.

Each step takes a batch of random ``data.segment_samples`` crops, computes their log-mel frames
(:class:`~facevox.audio.mel.LogMel`), generates waves from them and updates both networks with
one optimiser (:mod:`facevox.gan`): the multi-scale discriminator by the hinge loss on real and
detached generated crops, the generator by the hinge loss through the frozen discriminator plus
``loss.feature_matching`` x the feature-matching loss, and optionally ``loss.stft`` x the
multi-resolution STFT loss and ``loss.mel_l1`` x the log-mel L1. For the first
``loss.adversarial_start`` steps only the reconstruction losses train the generator (the
warm-up of Parallel WaveGAN and Multi-band MelGAN: intelligible speech in far fewer steps).

The model folder (OUT/model) holds the generator only, with the mel settings in its
``extra.json``; the discriminator lives in the training checkpoint (OUT/train).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.audio.gan_losses import (
    MultiResolutionSTFTLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
)
from facevox.audio.io import AUDIO_EXTENSIONS, save_wav
from facevox.audio.mel import LogMel
from facevox.checkpoint import ModelCard, save_model
from facevox.data import SeededDataset
from facevox.datasets.index import read_labelled, use_memory
from facevox.errors import FacevoxError
from facevox.gan import GANPair, frozen_call, gan_param_groups
from facevox.inference_spec import VocoderSpec
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.speaker.datasets import LazyWaves, Waves
from facevox.tasks.voice.vocoder_config import VocoderConfig
from facevox.train import Trainer, seed_everything


class SegmentDataset(SeededDataset):
    """Item -> a random crop (segment_samples,) float32 of file ``index % n`` (files visited round-robin)."""

    def __init__(self, waves: Waves | LazyWaves, segment_samples: int, length: int) -> None:
        self.waves, self.segment, self.length = waves, segment_samples, length

    def __len__(self) -> int:
        return self.length

    def get(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(self.waves.crop(index % len(self.waves), self.segment, rng))


def build_generator(cfg: VocoderConfig) -> torch.nn.Module:
    m = cfg.model
    return create_model("melgan_generator", n_mels=cfg.mel.n_mels, channels=m.channels,
                        upsample_ratios=list(m.upsample_ratios), dilations=list(m.dilations))


def build_discriminator(cfg: VocoderConfig) -> torch.nn.Module:
    m = cfg.model
    return create_model("melgan_discriminator", n_scales=m.disc_scales, channels=m.disc_channels,
                        max_channels=m.disc_max_channels, n_layers=m.disc_layers)


class VocoderLoss:
    """``compute_loss(pair, batch)`` of the Trainer; ``set_step`` (a step hook) switches the GAN losses on."""

    def __init__(self, cfg: VocoderConfig) -> None:
        self.cfg = cfg.loss
        self.mel = LogMel(cfg.mel.spec())
        self.stft = MultiResolutionSTFTLoss()
        self.adversarial = self.cfg.adversarial_start == 0
        self.touch_discriminator = False  # under DDP every parameter needs a gradient every step

    def set_step(self, step: int) -> None:
        self.adversarial = step >= self.cfg.adversarial_start

    def __call__(self, pair: torch.nn.Module, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.cfg
        self.mel.to(wave.device)
        real = wave.unsqueeze(1)
        with torch.no_grad():
            mel = self.mel(wave)
        fake = pair.generator(mel)[..., : wave.shape[-1]].float()
        logs: dict[str, torch.Tensor] = {}
        g_loss = torch.zeros((), device=wave.device)
        if c.stft:
            logs["stft"] = self.stft(fake, real)
            g_loss = g_loss + c.stft * logs["stft"]
        if c.mel_l1:
            logs["mel_l1"] = torch.mean(torch.abs(self.mel(fake) - mel))
            g_loss = g_loss + c.mel_l1 * logs["mel_l1"]
        loss = g_loss
        if self.adversarial:
            disc = pair.discriminator
            d_real = disc(real)
            d_fake = disc(fake.detach())
            logs["d_loss"] = hinge_d_loss(d_real, d_fake)
            g_out = frozen_call(disc, fake)
            logs["g_adv"] = hinge_g_loss(g_out)
            logs["feature_matching"] = feature_matching_loss(d_real, g_out)
            loss = loss + logs["d_loss"] + logs["g_adv"] + c.feature_matching * logs["feature_matching"]
        elif self.touch_discriminator:  # zero gradients (Adam moves nothing on them), so DDP's reducer is complete
            loss = loss + 0.0 * sum(p.sum() for p in pair.discriminator.parameters())
        logs["loss"] = loss
        return logs


def _waves(cfg: VocoderConfig) -> Waves | LazyWaves:
    d = cfg.data
    if not d.train:
        raise FacevoxError("no training corpus given (set data.train to a folder or manifest)", "data.train")
    index = read_labelled(d.train, AUDIO_EXTENSIONS, "audio", "speaker", "speaker")
    store = Waves.from_index if use_memory(d.in_memory, len(index)) else LazyWaves
    return store(index, d.min_seconds, d.skip_bad, d.max_seconds)


def train_vocoder(cfg: VocoderConfig, out: Path, *, resume: bool = True, licence: str = "unknown") -> dict[str, Any]:
    """Train MelGAN on ``cfg.data.train``; save the generator as OUT/model and a few resynthesised samples."""
    if cfg.mel.sample_rate != 16000:
        raise FacevoxError("the corpus readers decode at 16 kHz: mel.sample_rate must be 16000", "mel.sample_rate")
    resuming = check_resume(out, cfg, resume=resume)
    seed_everything(cfg.train.seed)
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    waves = _waves(cfg)
    seconds = waves.seconds()
    per_epoch = max(cfg.train.batch_size, int(seconds * cfg.mel.sample_rate // cfg.data.segment_samples))
    dataset = SegmentDataset(waves, cfg.data.segment_samples, per_epoch)
    pair = GANPair(generator, discriminator)
    loss = VocoderLoss(cfg)
    start_run(out, cfg, resuming=resuming)
    trainer = Trainer(pair, loss, dataset, cfg.train, out / "train",
                      params=gan_param_groups(pair, cfg.loss.lr_g, cfg.loss.lr_d, tuple(cfg.loss.betas)),
                      step_hooks=[loss.set_step])
    loss.touch_discriminator = trainer.world > 1
    n_g = sum(p.numel() for p in generator.parameters()) / 1e6
    print(f"voice: training MelGAN ({n_g:.2f} M generator parameters) on {len(waves)} files "
          f"({seconds / 60:.1f} min of audio), {trainer.total_steps} steps of {cfg.train.batch_size} x "
          f"{cfg.data.segment_samples} samples")
    trainer.fit(resume=resume)
    train_seconds = trainer.seconds  # summed over resumed runs
    spec = VocoderSpec(mel=cfg.mel.spec().to_dict())
    extra = {**spec.to_extra(), "train_seconds": train_seconds, "train_steps": trainer.state.step,
             "train_files": len(waves), "train_minutes": seconds / 60,
             "skipped_files": [f"{p}: {why}" for p, why in waves.skipped]}
    folder = save_model(out / "model", generator.cpu(), config=cfg, extra=extra,
                        card=ModelCard(task="vocoder (MelGAN: log-mel frames -> 16 kHz wave)",
                                       data=f"{cfg.data.train}: {len(waves)} files, {seconds / 60:.1f} min",
                                       licence=licence))
    _write_samples(folder, waves, cfg.samples, out / "samples")
    return {"model": folder, "train_seconds": train_seconds, "steps": trainer.state.step}


def _write_samples(folder: Path, waves: Waves | LazyWaves, n: int, out: Path) -> None:
    """The first seconds of ``n`` training files, original and resynthesised, as WAVs to listen to."""
    if n <= 0:
        return
    from facevox.tasks.voice.vocode import load_vocoder

    vocoder = load_vocoder(folder)
    for i in range(min(n, len(waves))):
        wave = waves.wave(i)[: 4 * 16000]
        save_wav(out / f"{i:02d}_original.wav", wave)
        save_wav(out / f"{i:02d}_melgan.wav", vocoder.resynthesise(wave))
