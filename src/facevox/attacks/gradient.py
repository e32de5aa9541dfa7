"""The baseline gradient attacks: FGSM and PGD, L-inf or L2, untargeted or targeted.

The loss is the cross-entropy of the victim's logits: untargeted attacks climb it for the true
labels, targeted ones descend it for the target. Budgets (:mod:`facevox.attacks.budgets`): ``eps``
(in the input's units; images: pixel values in [0, 1]) or ``snr_db`` (audio, per example).

Library or in-tree: torchattacks 3.5.1 imports and runs with this torch (2.13 CPU) and without
torchvision, and its FGSM / PGD / PGDL2 give the same images as the in-tree code here (the
tests compare them on a linear model), so image attacks with an ``eps`` budget use it when it
is installed (``backend="auto"``, or ``"torchattacks"`` to insist). Its package metadata,
though, asks for torchvision (forbidden in facevox's environment) and pins ``requests~=2.25.1``,
so it is installed with ``pip install --no-deps torchattacks`` and is not part of an extra.
It clamps every input to [0, 1] and takes one scalar ``eps``, so waveforms (range [-1, 1]) and
per-example SNR budgets are the in-tree code's, which also serves images when torchattacks is
absent (``backend="facevox"``). adversarial-robustness-toolbox installs too, but works on NumPy
arrays through its own estimator wrappers (a host round trip per step); it is not used.

``step_size`` is in the input's units for an ``eps`` budget and a fraction of each example's
radius for an ``snr_db`` budget; by default it is ``2.5 * radius / steps``. Random starts are
uniform in the L-inf box or the L2 ball (torchattacks draws its own with the global generator).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facevox.attacks import budgets
from facevox.attacks.base import Attack, AttackResult, Victim
from facevox.errors import FacevoxError
from facevox.registry import register_attack

BACKENDS = ("auto", "facevox", "torchattacks")
INSTALL_TORCHATTACKS = "pip install --no-deps torchattacks (it declares torchvision, which facevox does not use)"


def torchattacks_available() -> bool:
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        return False
    return True


def _check_int(value: Any, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FacevoxError(f"must be an integer >= {low}, got {value!r}", where)
    return value


def _check_labels(labels: torch.Tensor | None, n: int, num_classes: int, where: str) -> torch.Tensor | None:
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.shape != (n,) or labels.dtype in (torch.float16, torch.float32, torch.float64, torch.bool):
        raise FacevoxError(f"must be {n} integer class indices, got shape {tuple(labels.shape)} {labels.dtype}", where)
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise FacevoxError(f"class indices must lie in [0, {num_classes - 1}]", where)
    return labels.long()


class _VictimModule(nn.Module):
    """A victim as the ``nn.Module`` torchattacks expects (the empty parameter tells it the device)."""

    def __init__(self, victim: Victim, device: torch.device) -> None:
        super().__init__()
        object.__setattr__(self, "victim", victim)  # not a submodule: torchattacks' eval() stays here
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.victim.logits(x)


class GradientAttack(Attack):
    """Shared by :class:`FGSM` and :class:`PGD`: budget, loss gradient, step, projection."""

    def __init__(self, *, norm: str = "linf", eps: float | None = None, snr_db: float | None = None,
                 steps: int = 1, step_size: float | None = None, random_start: bool = False,
                 seed: int | None = None, backend: str = "auto") -> None:
        self.norm = budgets.check_norm(norm)
        if (eps is None) == (snr_db is None):
            raise FacevoxError("give exactly one budget: eps (images, or audio amplitude) or snr_db (audio)",
                               "budget")
        self.eps = None if eps is None else budgets.check_positive(eps, "eps")
        self.snr_db = None if snr_db is None else budgets.check_positive(snr_db, "snr_db")
        self.steps = _check_int(steps, "steps")
        self.step_size = None if step_size is None else budgets.check_positive(step_size, "step_size")
        self.random_start = bool(random_start)
        self.seed = seed
        if backend not in BACKENDS:
            raise FacevoxError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}", "backend")
        if backend == "torchattacks" and not torchattacks_available():
            raise FacevoxError(f"torchattacks is not installed; {INSTALL_TORCHATTACKS}", "backend")
        self.backend = backend

    # -- what runs
    def backend_for(self, victim: Victim) -> str:
        """``"torchattacks"`` or ``"facevox"``: the code that attacks ``victim`` with this budget."""
        fits = victim.modality == "image" and self.eps is not None
        if self.backend == "torchattacks":
            if not fits:
                raise FacevoxError("torchattacks handles only images with an eps budget", "backend")
            return "torchattacks"
        return "torchattacks" if self.backend == "auto" and fits and torchattacks_available() else "facevox"

    def radius(self, victim: Victim, x: torch.Tensor) -> torch.Tensor:
        """Per-example radius (B,) of the budget on ``x``."""
        if self.snr_db is not None and victim.modality != "audio":
            raise FacevoxError("an snr_db budget is for audio; give images an eps budget", "snr_db")
        return budgets.radius(x, self.norm, eps=self.eps, snr_db=self.snr_db)

    def _alpha(self, r: torch.Tensor) -> torch.Tensor:
        if self.step_size is None:
            return 2.5 * r / self.steps if self.steps > 1 else r
        return r * self.step_size if self.snr_db is not None else torch.full_like(r, self.step_size)

    def _check(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
               target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        budgets.check_modality(victim.modality)
        if not torch.is_floating_point(x) or x.dim() < 2:
            raise FacevoxError(f"inputs must be a float batch (B, ...), got {tuple(x.shape)} {x.dtype}", "inputs")
        lo, hi = budgets.VALID_RANGES[victim.modality]
        if x.numel() and (not torch.isfinite(x).all() or x.min() < lo or x.max() > hi):
            raise FacevoxError(f"{victim.modality} inputs must be finite and lie in [{lo:g}, {hi:g}]", "inputs")
        n = x.shape[0]
        labels = _check_labels(labels, n, victim.num_classes, "labels")
        if labels is None:
            raise FacevoxError("labels are needed (the true class of each input)", "labels")
        return labels.to(x.device), None if target is None else _check_labels(target, n, victim.num_classes,
                                                                               "target").to(x.device)

    def _grad(self, victim: Victim, x_adv: torch.Tensor, labels: torch.Tensor,
              target: torch.Tensor | None) -> torch.Tensor:
        x_adv = x_adv.detach().requires_grad_(True)
        logits = victim.logits(x_adv)
        loss = F.cross_entropy(logits, labels) if target is None else -F.cross_entropy(logits, target)
        (g,) = torch.autograd.grad(loss, x_adv)
        return g

    def _step(self, x_adv: torch.Tensor, g: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        a = alpha.reshape(-1, *([1] * (g.dim() - 1)))
        if self.norm == "linf":
            return x_adv + a * g.sign()
        n = g.reshape(g.shape[0], -1).norm(dim=1).reshape(a.shape)
        return x_adv + a * g / (n + 1e-10)

    def perturb(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        labels, target = self._check(victim, x, labels, target)
        if x.shape[0] == 0:
            return x.clone()
        r = self.radius(victim, x)
        if self.backend_for(victim) == "torchattacks":
            return self._torchattacks(victim, x, labels, target)
        alpha = self._alpha(r)
        x = x.detach()
        x_adv = x.clone()
        if self.random_start:
            gen = None
            if self.seed is not None:
                gen = torch.Generator(device=x.device).manual_seed(int(self.seed))
            x_adv = budgets.clamp_valid(x + budgets.random_start(x, self.norm, r, gen), victim.modality)
        for _ in range(self.steps):
            g = self._grad(victim, x_adv, labels, target)
            x_adv = budgets.project_input(x, self._step(x_adv, g, alpha), self.norm, r, victim.modality).detach()
        return x_adv

    def _torchattacks(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
                      target: torch.Tensor | None) -> torch.Tensor:
        import torchattacks

        model = _VictimModule(victim, x.device)
        eps = float(self.eps)
        alpha = float(self._alpha(torch.tensor([eps]))[0])
        if self.name == "fgsm" and self.norm == "linf":
            atk = torchattacks.FGSM(model, eps=eps)
        elif self.norm == "linf":
            atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=self.steps, random_start=self.random_start)
        else:
            atk = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=self.steps, random_start=self.random_start)
        if target is not None:
            atk.set_mode_targeted_by_label(quiet=True)
        ctx = contextlib.nullcontext()
        if self.random_start and self.seed is not None:
            ctx = torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])
        with ctx:
            if self.random_start and self.seed is not None:
                torch.manual_seed(int(self.seed))
            return atk(x.detach(), labels if target is None else target).detach()

    def run(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
            target: torch.Tensor | None = None) -> AttackResult:
        """:meth:`Attack.run`, with ``extra``: ``radius`` (B,) and ``backend``."""
        result = super().run(victim, x, labels, target)
        if x.shape[0]:
            result.extra.update(radius=self.radius(victim, x), backend=self.backend_for(victim))
        return result


@register_attack("fgsm")
class FGSM(GradientAttack):
    """One gradient step to the edge of the budget: ``x + r * sign(g)`` (L-inf) or ``x + r * g / ||g||`` (L2)."""

    name = "fgsm"

    def __init__(self, *, norm: str = "linf", eps: float | None = None, snr_db: float | None = None,
                 backend: str = "auto") -> None:
        super().__init__(norm=norm, eps=eps, snr_db=snr_db, steps=1, backend=backend)


@register_attack("pgd")
class PGD(GradientAttack):
    """Projected gradient descent (Madry et al. 2018): ``steps`` signed (L-inf) or normalised (L2)
    gradient steps of ``step_size``, each projected back onto the budget and the valid range."""

    name = "pgd"

    def __init__(self, *, norm: str = "linf", eps: float | None = None, snr_db: float | None = None,
                 steps: int = 10, step_size: float | None = None, random_start: bool = True,
                 seed: int | None = None, backend: str = "auto") -> None:
        super().__init__(norm=norm, eps=eps, snr_db=snr_db, steps=steps, step_size=step_size,
                         random_start=random_start, seed=seed, backend=backend)
