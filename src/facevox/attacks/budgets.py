"""Attack budgets: checking them, turning them into per-example radii, and projecting onto them.

A budget is ``eps`` in the input's own units (images: pixel values in [0, 1]) or ``snr_db`` for
audio, a per-example radius that scales with the signal:

- L2: ``radius = ||x||_2 * 10**(-snr_db / 20)``, so the perturbation's energy is at least
  ``snr_db`` below the signal's (SNR >= snr_db, exactly).
- L-inf: ``radius = max|x| * 10**(-snr_db / 20)``, a *peak* ratio: every sample moves by at most
  this much, but the energy SNR of a full-scale L-inf perturbation can be lower than ``snr_db``
  (up to ``10 * log10(peak**2 / mean square)`` dB lower).

Adversarial inputs are kept in the valid range (:data:`VALID_RANGES`: [0, 1] images, [-1, 1]
audio) after the projection; since the clean input lies in the range, the clamp only shrinks the
perturbation, so the budget still holds.
"""

from __future__ import annotations

import math

import torch

from facevox.errors import FacevoxError

NORMS = ("linf", "l2")
MODALITIES = ("image", "audio")
VALID_RANGES = {"image": (0.0, 1.0), "audio": (-1.0, 1.0)}
_TINY = 1e-12


def check_norm(norm: str, where: str = "norm") -> str:
    """``norm`` if it is one of :data:`NORMS`, else a one-line error naming ``where``."""
    if norm not in NORMS:
        raise FacevoxError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}", where)
    return norm


def check_positive(value: float, where: str) -> float:
    """``value`` as a float if it is a finite number > 0, else a one-line error naming ``where``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise FacevoxError(f"must be a number > 0, got {value!r}", where) from None
    if isinstance(value, bool) or not math.isfinite(out) or out <= 0:
        raise FacevoxError(f"must be a finite number > 0, got {value!r}", where)
    return out


def check_modality(modality: str, where: str = "victim.modality") -> str:
    if modality not in MODALITIES:
        raise FacevoxError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}", where)
    return modality


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _per_example(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) broadcastable against ``x``."""
    return r.reshape(-1, *([1] * (x.dim() - 1)))


def snr_radius(x: torch.Tensor, snr_db: float, norm: str) -> torch.Tensor:
    """Per-example radius (B,) of an SNR budget: ``||x||_2`` (L2) or ``max|x|`` (L-inf) times
    ``10**(-snr_db / 20)``."""
    check_norm(norm)
    scale = 10.0 ** (-float(snr_db) / 20.0)
    flat = _flat(x.detach()).to(torch.float64)
    size = flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)
    return (size * scale).to(x.dtype)


def radius(x: torch.Tensor, norm: str, *, eps: float | None = None, snr_db: float | None = None) -> torch.Tensor:
    """Per-example radius (B,) of the budget ``eps`` (the same for all) or ``snr_db`` (one of them)."""
    if (eps is None) == (snr_db is None):
        raise FacevoxError("give exactly one budget: eps (images) or snr_db (audio)", "budget")
    if eps is not None:
        return torch.full((x.shape[0],), check_positive(eps, "eps"), dtype=x.dtype, device=x.device)
    return snr_radius(x, check_positive(snr_db, "snr_db"), norm)


def project(delta: torch.Tensor, norm: str, r: torch.Tensor) -> torch.Tensor:
    """The exact Euclidean projection of each example's ``delta`` onto its L-inf box or L2 ball of radius ``r`` (B,)."""
    check_norm(norm)
    rr = _per_example(r.to(delta.dtype), delta)
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, rr), -rr)
    n = _per_example(_flat(delta).norm(dim=1), delta)
    factor = torch.clamp(rr / n.clamp_min(_TINY), max=1.0)
    return delta * factor


def clamp_valid(x: torch.Tensor, modality: str) -> torch.Tensor:
    """``x`` clamped to the valid range of ``modality`` (:data:`VALID_RANGES`)."""
    lo, hi = VALID_RANGES[check_modality(modality)]
    return x.clamp(lo, hi)


def project_input(x: torch.Tensor, x_adv: torch.Tensor, norm: str, r: torch.Tensor, modality: str) -> torch.Tensor:
    """``x_adv`` brought back within the budget around ``x`` (:func:`project`) and into the valid range."""
    return clamp_valid(x + project(x_adv - x, norm, r), modality)


def random_start(x: torch.Tensor, norm: str, r: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random perturbation within the budget: uniform in the L-inf box, or uniform in the L2 ball."""
    check_norm(norm)
    rr = _per_example(r, x)
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * rr
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    g = g / _per_example(_flat(g).norm(dim=1).clamp_min(_TINY), g)
    d = _flat(x).shape[1]
    u = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return g * rr * _per_example(u, x)
