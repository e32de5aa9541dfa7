"""The seed's inverse mapper: a ResNet-18 that predicts z from G(z), and the hybrid.

Training pairs are drawn on the fly: every sample is a z ~ N(0, I) from its own seed
(:class:`LatentSamples`, so a resumed run sees the same data) and the generator draws G(z) inside
the loss. The loss (seed, ch. 2: "pixel, perceptual and z-loss") is

    z_loss * MSE(E(x), z) + pixel_loss * MSE(G(E(x)), x) + perceptual_loss * P(G(E(x)), x),  x = G(z)

The model folder's ``extra.json`` names the generator (its :func:`load_generator` keywords) and
``nz``, so ``invert run --encoder MODEL`` rebuilds the same generator. For an audio generator the
encoder is an :class:`~.audio.AudioEncoder` (the ResNet-18 on log-mel frames; ``extra.json`` says
``modality: audio``), the pixel loss the MSE of the samples and the perceptual loss the audio one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.checkpoint import ModelCard, read_model_folder, save_model
from facevox.data import SeededDataset
from facevox.errors import FacevoxError, naming
from facevox.inference_spec import InvertSpec
from facevox.precision import autocast
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.invert.config import FeatureSettings, InvertConfig, OptimSettings
from facevox.tasks.invert.generators import Generator, load_generator, sample_latents
from facevox.tasks.invert.optimise import Inversion, _device_of, _sync, clamp_output, optimise_latents
from facevox.tasks.invert.perceptual import FeatureNet, load_feature_net, perceptual_distance
from facevox.train import Trainer, resolve_device, seed_everything


def perceptual_between(features: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) perceptual distance between batches a and b: images (FeatureNet) or waves (AudioPerceptual)."""
    if hasattr(features, "distance"):
        return features(a, b)
    return perceptual_distance(features, a, b)


class LatentSamples(SeededDataset):
    """``samples_per_epoch`` latents z (nz,) ~ N(0, I), each drawn from its sample's seed."""

    def __init__(self, samples_per_epoch: int, nz: int) -> None:
        self.n, self.nz = int(samples_per_epoch), int(nz)

    def __len__(self) -> int:
        return self.n

    def get(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(self.nz).astype(np.float32))


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images (B, 3, H, W) -> (B, 3, *size), bilinear (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


class Encoder(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> z (B, nz): a ResNet-18 on the images resized to ``input_size``."""

    def __init__(self, net: nn.Module, input_size: tuple[int, int], nz: int, extra: dict[str, Any] | None = None):
        super().__init__()
        self.net, self.input_size, self.nz, self.extra = net, tuple(input_size), int(nz), dict(extra or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(resize_to(x, self.input_size)).float()


def encoder_input_size(cfg: InvertConfig, gen: Generator) -> tuple[int, int]:
    if gen.kind == "audio":
        from facevox.tasks.invert.audio import mel_frames

        return mel_frames(gen.samples)  # (n_mels, frames) of the log-mel the encoder sees
    s = cfg.encoder.input_size
    return (s, s) if s else gen.image_size


def encoder_loss(encoder: nn.Module, gen: Generator, z: torch.Tensor, cfg: InvertConfig,
                 features: FeatureNet | None, input_size: tuple[int, int] | None) -> dict[str, torch.Tensor]:
    """The training loss on a batch of latents z (B, nz), with its parts for the logs
    (``input_size`` None: the encoder takes G(z) as it is, e.g. waves)."""
    e = cfg.encoder
    with torch.no_grad():
        x = gen(z)
    z_hat = encoder(x if input_size is None else resize_to(x, input_size)).float()
    parts = {"z_loss": F.mse_loss(z_hat, z.float())}
    if e.pixel_loss or e.perceptual_loss:
        x_hat = gen(z_hat)
        parts["pixel_loss"] = F.mse_loss(x_hat, x)
        if e.perceptual_loss:
            parts["perceptual_loss"] = perceptual_between(features, x_hat, x).mean()
    loss = e.z_loss * parts["z_loss"] + e.pixel_loss * parts.get("pixel_loss", 0.0)
    loss = loss + e.perceptual_loss * parts.get("perceptual_loss", 0.0)
    return {"loss": loss, **parts}


def _check(cfg: InvertConfig) -> None:
    e = cfg.encoder
    if min(e.z_loss, e.pixel_loss, e.perceptual_loss) < 0 or not (e.z_loss or e.pixel_loss or e.perceptual_loss):
        raise FacevoxError("the loss weights must be >= 0 and not all 0", "encoder")
    if e.samples_per_epoch < cfg.train.batch_size:
        raise FacevoxError(f"samples_per_epoch ({e.samples_per_epoch}) is smaller than one batch", "encoder")


def train_encoder(cfg: InvertConfig, out: Path, *, resume: bool = True) -> dict[str, Any]:
    """Train the encoder through the shared :class:`~facevox.train.Trainer`; save OUT/model.

    Returns the model folder, the training time and held-out metrics (256 fresh z, seed 10**6).
    """
    _check(cfg)
    resuming = check_resume(out, cfg, resume=resume)  # before anything is read or written
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    g = cfg.generator
    gen = load_generator(g.source, weights=g.weights, nz=g.nz, output_range=g.output_range, device=device)
    audio = gen.kind == "audio"
    features = None
    if cfg.encoder.perceptual_loss:
        features = load_features(cfg, gen, device)
        if features is None:
            raise FacevoxError("a perceptual loss needs a feature network, not 'none'", "features.network")
    with naming("encoder.width"):  # e.g. a width whose weights would not fit in memory
        net = create_model("resnet18", num_classes=gen.nz, width=cfg.encoder.width)
    size = encoder_input_size(cfg, gen)
    if audio:
        from facevox.tasks.invert.audio import AudioEncoder

        model: nn.Module = AudioEncoder(net, gen.nz)  # the log-mel front end has no weights: net is what is saved
    else:
        model = net

    def compute_loss(model: nn.Module, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return encoder_loss(model, gen, z, cfg, features, None if audio else size)

    start_run(out, cfg, resuming=resuming)
    print(f"invert: training a ResNet-18 encoder for {gen.describe()}; perceptual network: "
          f"{features.description if features else 'none'}")
    trainer = Trainer(model, compute_loss, LatentSamples(cfg.encoder.samples_per_epoch, gen.nz), cfg.train,
                      out / "train")
    trainer.fit(resume=resume)
    train_seconds = trainer.seconds  # summed over resumed runs
    model.to(memory_format=torch.contiguous_format).eval()

    metrics = held_out_metrics(model if audio else Encoder(net, size, gen.nz), gen)
    e = cfg.encoder
    spec = InvertSpec(nz=gen.nz, input_size=tuple(size), generator=gen.spec,
                      features={"network": cfg.features.network, "stages": list(cfg.features.stages),
                                "input_size": cfg.features.input_size, "name": features.name if features else "none"})
    shape = {"modality": "audio", "samples": gen.samples, "sample_rate": gen.sample_rate} if audio else {
        "image_size": list(gen.image_size)}
    extra = {**spec.to_extra(), "generator_name": gen.describe(), **shape,
             "loss_weights": {"z": e.z_loss, "pixel": e.pixel_loss, "perceptual": e.perceptual_loss},
             "train_seconds": train_seconds}
    card = ModelCard(task=f"GAN inversion: {'audio clip' if audio else 'image'} -> latent z of the generator",
                     data=f"z ~ N(0, I) and G(z) of {gen.describe()}, {cfg.encoder.samples_per_epoch} per epoch",
                     licence=cfg.encoder.licence,
                     description="A ResNet-18 that predicts the latent vector z from which the generator draws "
                                 "an image (the seed's inverse mapper).",
                     intended_use="facevox invert run --method encoder|hybrid --encoder THIS_FOLDER",
                     limitations="only for the generator it was trained with; real photos lie off the "
                                 "generator's image manifold")
    folder = save_model(out / "model", net, card=card, config=cfg, metrics=metrics, extra=extra)
    return {"model": folder, "train_seconds": train_seconds, **metrics}


@torch.no_grad()
def held_out_metrics(encoder: Encoder, gen: Generator, n: int = 256, seed: int = 10**6) -> dict[str, float]:
    """Latent error and pixel MSE of the encoder on ``n`` fresh generated images."""
    device = _device_of(gen)
    z = sample_latents(n, gen.nz, seed).to(device)
    was = encoder.training
    encoder.eval()
    zs, mses = [], []
    for i in range(0, n, 64):
        x = gen(z[i : i + 64])
        z_hat = encoder(x)
        zs.append((z_hat - z[i : i + 64]).norm(dim=1))
        mses.append((gen(z_hat) - x).pow(2).flatten(1).mean(1))
    encoder.train(was)
    err = torch.cat(zs)
    return {"heldout_latent_error": float(err.mean()), "heldout_pixel_mse": float(torch.cat(mses).mean()),
            "heldout_latent_error_rel": float((err / z.norm(dim=1)).mean())}


def load_features(cfg: InvertConfig, gen: Generator, device: str | torch.device,
                  f: FeatureSettings | None = None) -> Any:
    """The perceptual network of ``f`` (default ``cfg.features``) for this generator: a FeatureNet
    (images) or an AudioPerceptual weighted by ``cfg.audio`` (audio); None for 'none'."""
    f = f or cfg.features
    if gen.kind == "audio":
        from facevox.tasks.invert.audio import load_audio_perceptual

        a = cfg.audio
        return load_audio_perceptual(f.network, stft_weight=a.stft, logmel_weight=a.logmel,
                                     speaker_weight=a.speaker, device=device)
    return load_feature_net(f.network, stages=f.stages, input_size=f.input_size, device=device)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Encoder:
    """An encoder model folder from :func:`train_encoder`, in eval mode."""
    try:
        folder = read_model_folder(path, device, task="invert", use="invert --encoder")
    except FacevoxError as err:
        if err.problem.startswith("this is a "):  # a model folder of another task
            raise FacevoxError(f"not an inversion encoder: {err.problem}", err.where) from None
        raise
    extra = folder.extra
    if extra.get("task") != "invert" or "nz" not in extra or "input_size" not in extra:
        raise FacevoxError("not an inversion encoder (extra.json names no generator and nz)", path)
    spec = folder.inference
    if extra.get("modality") == "audio":
        from facevox.tasks.invert.audio import AudioEncoder

        return AudioEncoder(folder.model, spec.nz, extra).to(device).eval()
    return Encoder(folder.model, spec.input_size, spec.nz, extra).eval()


def check_pair(encoder: Encoder, gen: Generator, where: str | Path) -> None:
    """The encoder must predict the generator's z, from outputs of the generator's kind."""
    kind = "audio" if getattr(encoder, "modality", "image") == "audio" else "image"
    if kind != gen.kind:
        raise FacevoxError(f"this encoder inverts an {kind} generator, the generator draws {gen.kind}s", where)
    if encoder.nz != gen.nz:
        raise FacevoxError(f"the encoder predicts z of size {encoder.nz}, the generator takes {gen.nz}", where)


@torch.no_grad()
def encode(encoder: Encoder, gen: Generator, targets: torch.Tensor, batch_size: int = 64,
           amp: torch.dtype | None = None) -> Inversion:
    """The encoder's inversion of ``targets`` (N, 3, H, W) in [0, 1]: one forward pass per batch
    (under ``amp`` autocast where given; the latents come back fp32)."""
    device = _device_of(gen)
    encoder.to(device).eval()
    targets = targets.to(device).float()
    _sync(device)
    t0 = time.perf_counter()
    with autocast(device, amp):
        z = torch.cat([encoder(targets[i : i + batch_size]).float() for i in range(0, targets.shape[0], batch_size)])
    _sync(device)
    seconds = time.perf_counter() - t0
    with autocast(device, amp):
        images = torch.cat([gen(z[i : i + batch_size]).float() for i in range(0, z.shape[0], batch_size)])
    return Inversion("encoder", z.cpu(), clamp_output(gen, images).cpu(), seconds)


def hybrid(encoder: Encoder, gen: Generator, targets: torch.Tensor, settings: OptimSettings,
           features: FeatureNet | None = None, progress: Any = None, amp: torch.dtype | None = None) -> Inversion:
    """The encoder's z refined by ``settings.hybrid_steps`` Adam steps; time = both parts."""
    first = encode(encoder, gen, targets, settings.batch_size, amp)
    refined = optimise_latents(gen, targets, settings, features, steps=settings.hybrid_steps, z_init=first.latents,
                               method="hybrid", progress=progress, amp=amp)
    refined.seconds += first.seconds
    return refined
