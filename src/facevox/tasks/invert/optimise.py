"""Inversion by optimisation: Adam on z so that G(z) matches the target image (or clip).

Per image the loss is ``pixel * MSE(G(z), x) + perceptual * P(G(z), x) + prior * ||z||^2 / nz``
(``P`` the perceptual distance of :mod:`.perceptual`; the prior is the negative log-likelihood
of N(0, I) up to a constant and a factor 2/nz). For an audio generator ``MSE`` is that of the
samples and ``P`` the audio perceptual distance (:class:`.audio.AudioPerceptual`). Images are
optimised in batches, each with its own z and its own loss (the generator is in eval mode, so
images do not interact). Every restart starts from a fresh z ~ N(0, I) (or from ``z_init``, the
hybrid's encoder prediction); for every image the z with the lowest loss seen (any step, any
restart) is kept.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facevox.errors import FacevoxError
from facevox.precision import autocast
from facevox.tasks.invert.config import OptimSettings
from facevox.tasks.invert.generators import Generator
from facevox.tasks.invert.perceptual import FeatureNet, feature_distance, unit_normalise


@dataclass
class Inversion:
    """What every method returns: latents (N, nz), reconstructions G(z) (N, 3, H, W) in [0, 1]
    (clamped; audio: waves (N, 1, T) in [-1, 1]), the final loss per image (N,) where the method
    has one, and the wall time taken to find the latents (drawing the reconstructions afterwards is not counted)."""

    method: str
    latents: torch.Tensor
    images: torch.Tensor
    seconds: float
    losses: torch.Tensor | None = None


def prepare_targets(features: Any, target: torch.Tensor) -> Any:
    """What the perceptual term needs of the targets, computed once: unit-normalised feature maps
    (images) or the :meth:`~.audio.AudioPerceptual.prepare` dict (audio)."""
    if hasattr(features, "prepare"):
        return features.prepare(target)
    return unit_normalise(features(target))


def perceptual_term(features: Any, x: torch.Tensor, prepared: Any) -> torch.Tensor:
    """(B,) perceptual distance of x to the prepared targets."""
    if hasattr(features, "distance"):
        return features.distance(x, prepared)
    return feature_distance(unit_normalise(features(x)), prepared)


def inversion_loss(gen: Generator, z: torch.Tensor, target: torch.Tensor, settings: OptimSettings,
                   features: FeatureNet | None = None, target_maps: Any = None) -> torch.Tensor:
    """(B,) loss of latents z (B, nz) against targets (B, 3, H, W) in [0, 1] or waves (B, 1, T)."""
    x = gen(z)
    loss = settings.pixel * (x - target).pow(2).flatten(1).mean(1)
    if settings.perceptual:
        if features is None:
            raise FacevoxError("a perceptual weight needs a feature network (features.network)", "optim.perceptual")
        maps = target_maps if target_maps is not None else prepare_targets(features, target)
        loss = loss + settings.perceptual * perceptual_term(features, x, maps)
    if settings.prior:
        loss = loss + settings.prior * z.pow(2).mean(1)
    return loss


def optimise_latents(gen: Generator, targets: torch.Tensor, settings: OptimSettings,
                     features: FeatureNet | None = None, *, steps: int | None = None,
                     z_init: torch.Tensor | None = None, method: str = "optim",
                     progress: Callable[[str], None] | None = None, amp: torch.dtype | None = None) -> Inversion:
    """Invert ``targets`` (N, 3, H, W) in [0, 1] by ``steps`` Adam steps on z (default ``settings.steps``).

    With ``z_init`` (N, nz) there is one start, from it; else ``settings.restarts`` random ones.
    ``progress`` gets a line every ``settings.log_every`` steps (default: stderr). ``amp``: the
    autocast dtype of the generator's and the feature network's forward passes (None: fp32); z,
    Adam's state and the losses stay fp32.
    """
    steps = settings.steps if steps is None else steps
    restarts = 1 if z_init is not None else settings.restarts
    if steps < 0 or restarts < 1 or settings.batch_size < 1:
        raise FacevoxError(f"need steps >= 0, restarts >= 1, batch_size >= 1; got {steps}, {restarts}, "
                           f"{settings.batch_size}", "optim")
    device = _device_of(gen)
    targets = targets.to(device).float()
    n = targets.shape[0]
    gen.check_targets(targets)
    if z_init is not None and tuple(z_init.shape) != (n, gen.nz):
        raise FacevoxError(f"z_init must be ({n}, {gen.nz}), got {tuple(z_init.shape)}")
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    # a stream of its own: the starts must not repeat latents drawn with the same seed elsewhere
    # (sample_latents(n, nz, seed) draws eval's targets)
    rng = torch.Generator().manual_seed(int(np.random.SeedSequence([settings.seed, 1]).generate_state(1)[0]))
    starts = [z_init.detach().float().cpu()] if z_init is not None else [
        torch.randn(n, gen.nz, generator=rng) for _ in range(restarts)]

    _sync(device)
    t0 = time.perf_counter()
    best_z = torch.zeros(n, gen.nz, device=device)
    best_loss = torch.full((n,), float("inf"), device=device)
    for lo in range(0, n, settings.batch_size):
        hi = min(n, lo + settings.batch_size)
        target = targets[lo:hi]
        with torch.no_grad(), autocast(device, amp):
            maps = prepare_targets(features, target) if features is not None and settings.perceptual else None
        for r, start in enumerate(starts):
            z = start[lo:hi].to(device).clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=settings.lr)
            for step in range(steps + 1):  # the last pass only scores the final z
                with autocast(device, amp):
                    loss = inversion_loss(gen, z, target, settings, features, maps)
                loss = loss.float()
                with torch.no_grad():
                    better = loss < best_loss[lo:hi]
                    best_loss[lo:hi] = torch.where(better, loss, best_loss[lo:hi])
                    best_z[lo:hi] = torch.where(better[:, None], z, best_z[lo:hi])
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # a sum: every image's z gets its own loss's gradient
                opt.step()
                if settings.log_every and (step + 1) % settings.log_every == 0:
                    say(f"invert {method}: images {lo + 1}-{hi}/{n}  start {r + 1}/{len(starts)}  "
                        f"step {step + 1}/{steps}  loss {loss.mean().item():.5f}")
    _sync(device)
    seconds = time.perf_counter() - t0  # the time to find the latents (the seed's measure)
    with torch.no_grad(), autocast(device, amp):
        images = torch.cat([gen(best_z[i : i + settings.batch_size]).float() for i in range(0, n, settings.batch_size)])
    return Inversion(method, best_z.cpu(), clamp_output(gen, images).cpu(), seconds, best_loss.cpu())


def clamp_output(gen: Generator, x: torch.Tensor) -> torch.Tensor:
    """Outputs clamped for display and metrics: images to [0, 1], waves to [-1, 1]."""
    return x.clamp(-1, 1) if gen.kind == "audio" else x.clamp(0, 1)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # wall times must include the queued GPU work
        torch.cuda.synchronize(device)
