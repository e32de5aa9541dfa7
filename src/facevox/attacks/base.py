"""The interface every adversarial attack and every victim shares.

A **victim** wraps a facevox model as a differentiable function from inputs to class logits:
waveforms (B, T) at 16 kHz in [-1, 1] for audio (the model's own feature front end runs inside,
so a perturbation is audio a person can listen to), images (B, 3, H, W) in [0, 1] for images.
Verification victims have two classes (0: rejected, 1: accepted), the GAN-face detector two
(0: real, 1: fake), speaker identification one per enrolled speaker.

An **attack** (registered in :data:`facevox.registry.ATTACKS`, created with
:func:`create_attack`) takes a victim, a batch and its true labels and returns the adversarial
batch; untargeted it makes the victim's decision differ from ``labels``, targeted (``target``
given) it makes the decision equal ``target``. Budgets: ``eps`` in the input's own units for
images (pixel values in [0, 1], so 4/255 is 4 grey levels), or ``snr_db`` for audio (the
perturbation's energy at least this many dB below the signal's, per example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from facevox.registry import ATTACKS


class Victim(Protocol):
    """A model under attack: ``logits(x)`` (B, C), differentiable with respect to ``x``."""

    modality: str  # "audio" or "image"
    num_classes: int

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass
class AttackResult:
    """One attacked batch: the adversarial inputs, the decisions before and after, and whether
    each example's attack succeeded (untargeted: decision changed from the label; targeted:
    decision equals the target)."""

    x_adv: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    success: torch.Tensor  # (B,) bool
    extra: dict[str, Any]


class Attack:
    """Base of the registered attacks. Subclasses implement :meth:`perturb`."""

    name: str = "attack"
    targeted_ok: bool = True

    def perturb(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """The adversarial batch (same shape and range as ``x``)."""
        raise NotImplementedError

    def run(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
            target: torch.Tensor | None = None) -> AttackResult:
        """:meth:`perturb` plus the victim's decisions and each example's success."""
        with torch.no_grad():
            clean = victim.logits(x).argmax(1)
        x_adv = self.perturb(victim, x, labels, target).detach()
        with torch.no_grad():
            adv = victim.logits(x_adv).argmax(1)
        success = (adv == target) if target is not None else (adv != labels)
        return AttackResult(x_adv, clean, adv, success, {})


def create_attack(name: str, **kwargs: Any) -> Attack:
    """A registered attack by name (``facevox list attacks``)."""
    return ATTACKS.create(name, **kwargs)
