"""Training the WaveGAN through the shared :class:`~facevox.train.Trainer` (one optimiser, both nets).

Data: random 16384-sample crops (~1 s at 16 kHz) of the audio files of a folder, decoded in the
DataLoader workers (:class:`AudioCrops`); a near-silent crop is drawn again. Loss (per batch of
real waves x and z ~ N(0, I)), with the generated batch G(z) detached for the discriminator and the
generator's term through :func:`facevox.gan.frozen_call`:

- ``wgan-gp`` (the paper's): D(G(z)) - D(x) + lambda * (||grad D(x_hat)|| - 1)^2 + eps * D(x)^2 for
  the critic (x_hat random interpolates), -D(G(z)) for the generator;
- ``hinge``: relu(1 - D(x)) + relu(1 + D(G(z))) and -D(G(z)).

OUT/model is the generator's model folder (task ``audio-gan``, read by ``facevox invert
--generator wavegan:OUT/model``); OUT/samples holds a few WAVs drawn from fixed latents.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.audio.io import list_audio_files, load_audio, save_wav
from facevox.checkpoint import ModelCard, save_model
from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.gan import GANPair, frozen_call, gan_param_groups
from facevox.inference_spec import AudioGANSpec
from facevox.nets.wavegan import SAMPLES
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.speaker.datasets import header_seconds
from facevox.tasks.voice.wavegan_config import WaveGANConfig
from facevox.train import Trainer, seed_everything

SAMPLE_RATE = 16000
TASK = AudioGANSpec.task


class AudioCrops(SeededDataset):
    """``n`` random ``length``-sample crops of ``files`` (float32 (1, length)), one file drawn per item.

    Files shorter than one crop were left out when the list was made (:func:`crop_files`). A crop
    whose RMS is under ``min_rms`` is drawn again (another file, another place), at most ``tries``
    times; the loudest draw is kept.
    """

    def __init__(self, files: list[Path], n: int, length: int = SAMPLES, min_rms: float = 0.005,
                 tries: int = 8) -> None:
        self.files = [str(f) for f in files]
        self.n, self.length, self.min_rms, self.tries = int(n), int(length), float(min_rms), int(tries)

    def __len__(self) -> int:
        return self.n

    def get(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        best, best_rms = None, -1.0
        for _ in range(self.tries):
            wave = load_audio(self.files[int(rng.integers(len(self.files)))], SAMPLE_RATE)
            if len(wave) < self.length:  # the header promised more (resampling rounds down a hair)
                wave = np.pad(wave, (0, self.length - len(wave)))
            start = int(rng.integers(len(wave) - self.length + 1))
            crop = wave[start : start + self.length]
            rms = float(np.sqrt(np.mean(crop.astype(np.float64) ** 2)))
            if rms > best_rms:
                best, best_rms = crop, rms
            if rms >= self.min_rms:
                break
        return torch.from_numpy(np.ascontiguousarray(best, dtype=np.float32))[None]


def crop_files(root: str | Path, length: int = SAMPLES, max_files: int = 0) -> list[Path]:
    """The audio files under ``root`` that hold at least one crop (durations from the headers)."""
    root = Path(root)
    if not root.is_dir():
        raise FacevoxError("corpus folder not found (give a folder of audio files)", root)
    files = list_audio_files(root)
    if max_files and len(files) > max_files:
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_files).round().astype(int)]
    need = length / SAMPLE_RATE
    kept = [f for f in files if header_seconds(f) >= need]
    if not kept:
        raise FacevoxError(f"no audio file of at least {need:.2f} s ({length} samples at 16 kHz)", root)
    return kept


def build_pair(cfg: WaveGANConfig) -> GANPair:
    m = cfg.model
    gen = create_model("wavegan_generator", nz=m.nz, d=m.d)
    disc = create_model("wavegan_discriminator", d=m.d_width or m.d, shuffle=m.shuffle)
    return GANPair(gen, disc)


def gradient_penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (||grad_x D(x_hat)|| - 1)^2 at random interpolates x_hat of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = disc(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def gan_loss(pair: GANPair, real: torch.Tensor, cfg: WaveGANConfig) -> dict[str, torch.Tensor]:
    """d_loss + g_loss of one batch of real waves (B, 1, T), with the parts for the logs."""
    loss_cfg = cfg.loss
    gen, disc = pair.generator, pair.discriminator
    z = torch.randn(real.shape[0], gen.nz, device=real.device)
    fake = gen(z)
    d_real, d_fake = disc(real), disc(fake.detach())
    g_score = frozen_call(disc, fake)  # the generator's gradient only
    if loss_cfg.kind == "hinge":
        d_loss = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
        parts = {}
    else:
        wd = d_real.mean() - d_fake.mean()
        gp = gradient_penalty(disc, real, fake.detach()) if loss_cfg.gp_weight else torch.zeros((), device=real.device)
        d_loss = -wd + loss_cfg.gp_weight * gp + loss_cfg.drift * d_real.pow(2).mean()
        parts = {"wasserstein": wd.detach(), "gp": gp.detach()}
    g_loss = -g_score.mean()
    return {"loss": d_loss + g_loss, "d_loss": d_loss.detach(), "g_loss": g_loss.detach(), **parts}


def train_gan(cfg: WaveGANConfig, corpus: str | Path, out: Path, *, resume: bool = True) -> dict[str, Any]:
    """Train on the audio under ``corpus``; save OUT/model (the generator) and OUT/samples/*.wav."""
    files = crop_files(corpus, SAMPLES, cfg.data.max_files)
    cfg.data.train = str(corpus)
    resuming = check_resume(out, cfg, resume=resume)
    seed_everything(cfg.train.seed)
    pair = build_pair(cfg)
    data = AudioCrops(files, cfg.data.crops_per_epoch, SAMPLES, cfg.data.min_rms, cfg.data.max_tries)
    if len(data) < cfg.train.batch_size:
        raise FacevoxError(f"crops_per_epoch ({len(data)}) is smaller than one batch ({cfg.train.batch_size})",
                           "data.crops_per_epoch")
    groups = gan_param_groups(pair, cfg.loss.lr_g, cfg.loss.lr_d, tuple(cfg.loss.betas))
    start_run(out, cfg, resuming=resuming)
    n_params = [sum(p.numel() for p in net.parameters()) for net in (pair.generator, pair.discriminator)]
    print(f"voice train-gan: WaveGAN d={cfg.model.d} ({n_params[0] / 1e6:.2f}M + {n_params[1] / 1e6:.2f}M "
          f"parameters), {cfg.loss.kind}, on {len(files)} files under {corpus}")
    trainer = Trainer(pair, lambda model, batch: gan_loss(model, batch, cfg), data, cfg.train, out / "train",
                      params=groups)
    trainer.fit(resume=resume)
    seconds = trainer.seconds  # summed over resumed runs
    gen = pair.generator.cpu().eval()
    samples = draw_samples(gen, cfg.samples)
    stats = {"steps": trainer.state.step, "train_seconds": seconds, "files": len(files),
             "sample_rms": float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else math.nan}
    extra = {**AudioGANSpec(nz=gen.nz, samples=SAMPLES, sample_rate=SAMPLE_RATE).to_extra(), "loss": cfg.loss.kind,
             **stats}
    card = ModelCard(task=TASK, data=f"random 1 s crops of {len(files)} audio files under {corpus}",
                     licence=cfg.licence,
                     description="A WaveGAN generator (Donahue et al. 2019): z ~ N(0, I) -> 16384 samples at 16 kHz.",
                     intended_use="facevox invert train-encoder|run|eval --generator wavegan:THIS_FOLDER",
                     limitations="small and briefly trained: noisy, speech-like sound, not intelligible speech")
    folder = save_model(out / "model", gen, card=card, config=cfg, metrics=stats, extra=extra)
    for i, wave in enumerate(samples):
        save_wav(out / "samples" / f"sample_{i:02d}.wav", wave, SAMPLE_RATE)
    return {"model": folder, "samples": out / "samples", **stats}


@torch.no_grad()
def draw_samples(gen: nn.Module, n: int, seed: int = 0) -> np.ndarray:
    """(n, 16384) waves from the latents of ``seed`` (the same z on every machine)."""
    if n <= 0:
        return np.zeros((0, SAMPLES), np.float32)
    z = torch.randn(n, gen.nz, generator=torch.Generator().manual_seed(seed))
    return gen(z)[:, 0].float().numpy()
