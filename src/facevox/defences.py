"""Training-time defences of the speaker and fakeface recipes (the ``defence`` config section).

* ``neighbourhood``: the training set extended with K fixed perturbations of each item, drawn once
  from a ball around it and kept for the whole run, label unchanged ("creating a neighborhood around
  each training example", arXiv:2103.10608). :class:`NeighbourhoodDataset` has (K+1)*N items: item
  ``k*N + j`` is item j perturbed by perturbation k (k = 0: the clean item). Perturbation (j, k) is
  drawn from a generator seeded by (run seed, j, k) in the DataLoader worker, so nothing is stored
  and every epoch and worker sees the same one. Items whose content is random per epoch (random
  crops, augmentation, the pair kinds' random pairs) keep that randomness; the perturbation added to
  them is the fixed one of their index.
* ``pgd``: a fraction ``mix`` of each batch replaced by projected-gradient-ascent examples against
  the current model and its training loss (model + margin head for speaker embeddings), Madry et al.
  2018. The attack runs with the model in eval mode (batch-norm statistics untouched).

The ball is L-inf of radius ``eps`` for images in [0, 1], and for audio the L2 ball whose radius puts
the perturbation's energy ``snr_db`` below the signal's (per crop: the last axis), waveforms in [-1, 1].
Perturbed inputs are clipped to the value range, which only shrinks the perturbation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facevox.data import SeededDataset
from facevox.errors import FacevoxError

LossFn = Callable[[torch.nn.Module, Any], Any]


@dataclasses.dataclass(frozen=True)
class Ball:
    """The set of allowed perturbations of an input and its value range [lo, hi].

    ``norm`` "linf": |delta_i| <= ``size`` (eps). "l2": ||delta|| <= ||x|| * 10^(-size/20) over the
    last axis (``size`` is the SNR in dB).
    """

    norm: str
    size: float
    lo: float
    hi: float

    def radius(self, x0: torch.Tensor) -> torch.Tensor:
        """The radius for each element (linf) or each last-axis row (l2, shape (..., 1)) of ``x0``."""
        if self.norm == "linf":
            return torch.full((1,) * x0.dim(), float(self.size), dtype=x0.dtype, device=x0.device)
        return _row_norm(x0) * float(10.0 ** (-self.size / 20.0))

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``x`` moved into the ball around ``x0`` and into the value range (never out of the ball)."""
        delta = x - x0
        r = self.radius(x0)
        if self.norm == "linf":
            delta = torch.maximum(torch.minimum(delta, r), -r)
        else:
            delta = delta * torch.clamp(r / _row_norm(delta).clamp_min(1e-30), max=1.0)
        # clipping towards an interval that holds x0 only shrinks each |delta_i|
        return torch.clamp(x0 + delta, x0.clamp(max=self.lo), x0.clamp(min=self.hi))

    def draw(self, x0: torch.Tensor, rng: np.random.Generator, how: str) -> torch.Tensor:
        """A perturbation of ``x0``'s shape drawn from ``rng``: uniform in the ball, or Gaussian
        (std eps/2, or an expected energy at the SNR) projected on it."""
        shape, n = tuple(x0.shape), max(1, x0.shape[-1] if x0.dim() else 1)
        if self.norm == "linf":
            if how == "uniform":
                noise = rng.uniform(-self.size, self.size, shape)
            else:
                noise = rng.normal(0.0, self.size / 2.0, shape)
            return torch.from_numpy(noise.astype(np.float32)).to(x0.dtype)
        r = self.radius(x0)
        g = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(x0.dtype)
        if how == "uniform":  # a uniform direction, a radius r * U^(1/n): uniform in the n-ball
            u = torch.from_numpy(rng.random(shape[:-1] + (1,)).astype(np.float32)).to(x0.dtype)
            return g / _row_norm(g).clamp_min(1e-30) * r * u ** (1.0 / n)
        return g * r / float(np.sqrt(n))

    def random_start(self, x0: torch.Tensor) -> torch.Tensor:
        """A random point of the ball around ``x0`` (PGD's start), from torch's generator."""
        if self.norm == "linf":
            return x0 + (torch.rand_like(x0) * 2 - 1) * self.size
        g = torch.randn_like(x0)
        return x0 + g / _row_norm(g).clamp_min(1e-30) * self.radius(x0) * torch.rand_like(x0[..., :1])

    def ascend(self, x: torch.Tensor, grad: torch.Tensor, fraction: float, x0: torch.Tensor) -> torch.Tensor:
        """One ascent step of length ``fraction`` x the radius: the gradient's sign (linf) or its
        direction (l2)."""
        r = self.radius(x0)
        if self.norm == "linf":
            return x + fraction * r * grad.sign()
        return x + fraction * r * grad / _row_norm(grad).clamp_min(1e-30)


def _row_norm(x: torch.Tensor) -> torch.Tensor:
    return x.float().pow(2).sum(-1, keepdim=True).sqrt().to(x.dtype)


def image_ball(eps: float) -> Ball:
    return Ball("linf", float(eps), 0.0, 1.0)


def audio_ball(snr_db: float) -> Ball:
    return Ball("l2", float(snr_db), -1.0, 1.0)


class NeighbourhoodDataset(SeededDataset):
    """(K+1)*N items over a dataset of N (input, label, ...) items: item ``k*N + j`` is item j with its
    fixed perturbation k added (k = 0: unchanged), labels kept. See the module docstring."""

    def __init__(self, base: Dataset, copies: int, ball: Ball, draw: str = "uniform", seed: int = 0) -> None:
        if copies < 1:
            raise FacevoxError(f"the neighbourhood needs at least 1 copy per item, got {copies}", "defence.copies")
        self.base, self.copies, self.ball, self.how, self.seed = base, int(copies), ball, draw, int(seed)
        self.n = len(base)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return (self.copies + 1) * self.n

    def get(self, index: int, rng: np.random.Generator) -> Any:
        k, j = divmod(int(index), self.n)
        item = self.base.get(j, rng) if isinstance(self.base, SeededDataset) else self.base[j]
        if k == 0:
            return item
        x, *rest = item
        return (self.perturbed(x, j, k), *rest)

    def perturbed(self, x: torch.Tensor, j: int, k: int) -> torch.Tensor:
        """``x`` + perturbation k of item j, inside the ball and the value range."""
        x = torch.as_tensor(x)
        delta = self.ball.draw(x, np.random.default_rng([self.seed, j, k]), self.how)
        return self.ball.project(x + delta, x)


def pgd(model: torch.nn.Module, compute_loss: LossFn, x: torch.Tensor, y: Any, ball: Ball, steps: int,
        fraction: float) -> torch.Tensor:
    """Inputs in the ball around ``x`` that maximise ``compute_loss(model, (x, y))`` (projected gradient
    ascent from a random start; ``model`` in eval mode meanwhile)."""
    was_training = model.training
    model.eval()
    x0 = x.detach()
    xa = ball.project(ball.random_start(x0), x0)
    try:
        for _ in range(steps):
            xa = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                out = compute_loss(model, (xa, y))
                loss = out["loss"] if isinstance(out, Mapping) else out
                (grad,) = torch.autograd.grad(loss.float(), xa)
            xa = ball.project(ball.ascend(xa.detach(), grad, fraction, x0), x0)
    finally:
        model.train(was_training)
    return xa.detach()


def pgd_loss(compute_loss: LossFn, ball: Ball, steps: int, fraction: float, mix: float) -> LossFn:
    """``compute_loss`` on batches whose first round(mix * B) items (at least 1) are replaced by their
    PGD examples against the model being trained."""

    def loss(model: torch.nn.Module, batch: Any) -> Any:
        x, y, *rest = batch
        n = min(len(x), max(1, round(mix * len(x))))
        xa = pgd(model, compute_loss, x[:n], y[:n], ball, steps, fraction)
        x = torch.cat([xa.to(x.dtype), x[n:]]) if n < len(x) else xa.to(x.dtype)
        return compute_loss(model, (x, y, *rest))

    return loss


class Defence:
    """A ``defence`` config section (speaker: ``snr_db``; fakeface: ``eps``) as the training hooks use it."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.kind = settings.kind
        if self.kind not in ("none", "neighbourhood", "pgd"):
            raise FacevoxError(f"unknown defence '{self.kind}' (none, neighbourhood, pgd)", "defence.kind")
        if hasattr(settings, "snr_db"):
            self.ball, self.budget = audio_ball(settings.snr_db), {"snr_db": float(settings.snr_db)}
        else:
            if not settings.eps > 0:
                raise FacevoxError(f"must be a number > 0, got {settings.eps}", "defence.eps")
            self.ball, self.budget = image_ball(settings.eps), {"eps": float(settings.eps)}
        if self.kind == "neighbourhood" and settings.copies < 1:
            raise FacevoxError(f"the neighbourhood needs at least 1 copy per item, got {settings.copies}",
                               "defence.copies")

    @property
    def repeats(self) -> int:
        """How many times each training item appears per epoch."""
        return self.settings.copies + 1 if self.kind == "neighbourhood" else 1

    def dataset(self, dataset: Any, seed: int) -> Any:
        """The training dataset, extended with its neighbourhood when asked."""
        if self.kind != "neighbourhood":
            return dataset
        return NeighbourhoodDataset(dataset, self.settings.copies, self.ball, self.settings.draw, seed)

    def loss(self, compute_loss: LossFn) -> LossFn:
        """The training loss, on batches with PGD examples when asked."""
        if self.kind != "pgd":
            return compute_loss
        s = self.settings
        return pgd_loss(compute_loss, self.ball, s.pgd_steps, s.pgd_step_size, s.mix)

    def record(self) -> dict[str, Any]:
        """The settings that shaped training (extra.json's ``defence``)."""
        s = self.settings
        if self.kind == "neighbourhood":
            return {"kind": self.kind, "copies": s.copies, **self.budget, "draw": s.draw}
        if self.kind == "pgd":
            return {"kind": self.kind, **self.budget, "pgd_steps": s.pgd_steps, "pgd_step_size": s.pgd_step_size,
                    "mix": s.mix}
        return {"kind": "none"}

    def describe(self) -> str:
        """A suffix for the printed training line ("" without a defence)."""
        if self.kind == "none":
            return ""
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.record().items() if k != "kind")
        return f", defence {self.kind} ({shown})"
