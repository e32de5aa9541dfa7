"""SphereFace-R (SphereFace Revived): the multiplicative margin made trainable without annealing.

Liu, Wen, Raj, Singh, Weller, "SphereFace Revived: Unifying Hyperspherical Face Recognition",
TPAMI 2022 (arXiv:2109.05565, the seed text). The paper writes hyperspherical losses as

    L = -log( e^{r psi(theta_y)} / (e^{r psi(theta_y)} + sum_{j != y} e^{r eta(theta_j)}) )

with a target function psi, a non-target function eta and a feature magnitude r; weights are
normalised. The multiplicative margin m >= 1 (``margin``; m = 1 is no margin) is implemented three
ways, named as in the authors' code (OpenSphere, ``magn_type``):

    "v0" (original SphereFace):  psi(theta) = (-1)^k cos(m theta) - 2k on [k pi / m, (k + 1) pi / m],
                                 eta(theta) = cos(theta)
    "v1" (SphereFace-R v1):      psi(theta) = cos(min(m theta, pi)),  eta(theta) = cos(theta)
    "v2" (SphereFace-R v2):      psi(theta) = cos(theta),             eta(theta) = cos(theta / m)

v1 stops the target function at its minimum instead of continuing it piecewise; v2 moves the margin
onto the non-targets (the decision boundary m theta_y = theta_j is the same), where theta / m stays in
[0, pi / m] and cos(theta / m) needs no extension.

Feature normalisation (``feature_norm``) sets r:

    "none": r = ||x|| (as SphereFace);
    "hard": r = s (``scale``), the feature normalised (as NormFace, CosFace, ArcFace);
    "soft": r = ||x||, plus t * mean_i | ||x_i|| - s | added to the loss (t: ``norm_weight``), which pulls
            the feature norms towards s without fixing them: the form of the authors' code
            (``SphereFaceR_S``), whose default t = 0.01 is kept. That code also multiplies the
            cross-entropy by lw / s = 50 / 30; this one does not, so relative to the cross-entropy the
            pull here is 5/3 as strong as theirs.

Characteristic gradient detachment (CGD, ``detach=True``): the margin changes the forward value but
not the backward path. With f(theta) the plain cos(theta) and f~ its margin version (psi or eta),

    logit = r (cos(theta) + stopgrad(f~(theta) - cos(theta))),

so the loss value is that of the margin but the gradient flows as through r cos(theta) (for r =
||x||, the gradient through ||x|| is scaled by the margin value, as in the authors' code).
``detach=False`` gives exact gradients.

Defaults: v2, hard normalisation, s = 60, m = 1.4 and CGD, the authors' SphereFace-R training recipe
(OpenSphere ``config/train/vggface2_sfnet20_spherefacer.yml``; they always detach). The seed text is
the abstract alone; the equations above follow the authors' code. Their "none" and "soft" heads raise
m step-wise from 1 during training; the shared margin warm-up (``loss.margin_warmup_epochs``,
:mod:`facevox.losses.schedule`) raises it linearly from 1 instead. No other value is scheduled.

Numerics: psi and eta take the angle from ``facevox.losses.sphereface.safe_acos``: its exact value, with
the slope of acos taken at the cosine clamped into [-1 + 1e-6, 1 - 1e-6] (0 beyond); v0 with an integer m
uses a Chebyshev polynomial instead. No value or gradient is NaN or infinite at theta = 0 or pi.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import choice, flag, number
from facevox.losses.sphereface import safe_acos, sphereface_psi
from facevox.registry import register_loss

MARGIN_TYPES = ("v0", "v1", "v2")
FEATURE_NORMS = ("none", "hard", "soft")


def margin_cosines(cos: torch.Tensor, labels: torch.Tensor, m: float, margin_type: str) -> torch.Tensor:
    """psi(theta_y) in the label column and eta(theta_j) elsewhere, from cos (B, C): (B, C)."""
    cos_y = cos.gather(1, labels.view(-1, 1)).squeeze(1)
    if margin_type == "v0":
        return replace_target(cos, labels, sphereface_psi(cos_y, m))
    if margin_type == "v1":
        return replace_target(cos, labels, torch.cos((m * safe_acos(cos_y)).clamp(max=math.pi)))
    if margin_type == "v2":
        return replace_target(torch.cos(safe_acos(cos) / m), labels, cos_y)
    raise ValueError(f"margin_type must be one of {', '.join(MARGIN_TYPES)}, got {margin_type!r}")


class SphereFaceR(EmbeddingLoss):
    """Multiplicative margin ``m`` (``margin``) of type ``margin_type`` (v0, v1, v2), feature normalisation
    ``feature_norm`` (none, hard, soft) with scale / target norm ``s`` (``scale``), soft-normalisation
    weight ``t`` (``norm_weight``), and CGD on or off (``detach``). See the module docstring."""

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        scale: float = 60.0,
        margin: float = 1.4,
        margin_type: str = "v2",
        feature_norm: str = "hard",
        detach: bool = True,
        norm_weight: float = 0.01,
    ) -> None:
        super().__init__(embed_dim, num_classes)
        self.margin_type = choice("margin_type", margin_type, MARGIN_TYPES)
        self.feature_norm = choice("feature_norm", feature_norm, FEATURE_NORMS)
        self.margin = number("margin", margin, ge=1)  # 1 is no margin
        self.scale = number("scale", scale, gt=0)
        self.norm_weight = number("norm_weight", norm_weight, ge=0)
        self.detach = flag("detach", detach)
        self.neutral_margin = 1.0  # m = 1 is no margin: where a warm-up starts

    def _magnitude(self, emb: torch.Tensor) -> torch.Tensor | float:
        """r: s for hard normalisation, else ||x|| (B, 1)."""
        if self.feature_norm == "hard":
            return self.scale
        return torch.linalg.vector_norm(emb, dim=1, keepdim=True)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """r cos(theta_j), no margin: (B, C)."""
        return self._magnitude(emb) * self.cosine(emb)

    def margin_logits(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """r psi(theta_y) and r eta(theta_j), the logits the cross-entropy sees (with CGD if on): (B, C)."""
        cos = self.cosine(emb)
        marg = margin_cosines(cos, labels, float(self.margin), self.margin_type)
        if self.detach:
            marg = cos + (marg - cos).detach()
        return self._magnitude(emb) * marg

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(self.margin_logits(emb, labels), labels)
        if self.feature_norm == "soft":
            norm = torch.linalg.vector_norm(emb, dim=1)
            loss = loss + self.norm_weight * (norm - self.scale).abs().mean()
        return loss


@register_loss("sphereface_r")
def sphereface_r(
    *,
    embed_dim: int,
    num_classes: int,
    scale: float = 60.0,
    margin: float = 1.4,
    margin_type: str = "v2",
    feature_norm: str = "hard",
    detach: bool = True,
    norm_weight: float = 0.01,
) -> SphereFaceR:
    """SphereFace-R: multiplicative margin v0/v1/v2, feature norm none/hard/soft, CGD; v2, hard, s=60, m=1.4."""
    return SphereFaceR(
        embed_dim,
        num_classes,
        scale=scale,
        margin=margin,
        margin_type=margin_type,
        feature_norm=feature_norm,
        detach=detach,
        norm_weight=norm_weight,
    )
