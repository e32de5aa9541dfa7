"""ArcFace / AAM-softmax: an additive angular margin.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019,
eq. 3: the target logit is s cos(theta_y + m). Past theta_y + m > pi, cos(theta + m) would turn
back up and reward a wrong angle, so (as in the authors' code) it continues linearly as
cos(theta_y) - m sin(m), which keeps the target logit monotone in theta_y.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import number
from facevox.registry import register_loss


class ArcFace(EmbeddingLoss):
    """Scale ``s`` (``scale``) and additive angular margin ``m`` in radians (``margin``)."""

    def __init__(self, embed_dim: int, num_classes: int, *, scale: float = 64.0, margin: float = 0.5) -> None:
        super().__init__(embed_dim, num_classes)
        self.scale = number("scale", scale, gt=0)
        self.margin = number("margin", margin, ge=0, lt=math.pi)  # radians

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb)
        cos_y = cos.gather(1, labels.view(-1, 1)).squeeze(1)
        m = float(self.margin)
        # cos(theta + m) = cos theta cos m - sin theta sin m, without acos (its gradient is
        # infinite at +-1); the clamp keeps sqrt's gradient finite when cos theta = +-1
        sin_y = torch.sqrt((1.0 - cos_y * cos_y).clamp_min(1e-9))
        cos_ym = cos_y * math.cos(m) - sin_y * math.sin(m)
        target = torch.where(cos_y > math.cos(math.pi - m), cos_ym, cos_y - m * math.sin(m))
        return F.cross_entropy(self.scale * replace_target(cos, labels, target), labels)


@register_loss("arcface")
def arcface(*, embed_dim: int, num_classes: int, scale: float = 64.0, margin: float = 0.5) -> ArcFace:
    """ArcFace (additive angular margin): s cos(theta_y + m)."""
    return ArcFace(embed_dim, num_classes, scale=scale, margin=margin)


@register_loss("aam_softmax")
def aam_softmax(*, embed_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.2) -> ArcFace:
    """AAM-softmax (the speaker-verification name of ArcFace), speaker defaults s=32, m=0.2."""
    return ArcFace(embed_dim, num_classes, scale=scale, margin=margin)
