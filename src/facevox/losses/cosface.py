"""CosFace / AM-softmax: an additive cosine margin.

Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018, eq. 4;
Wang et al., "Additive Margin Softmax for Face Verification", 2018:
L = -log( e^{s (cos theta_y - m)} / (e^{s (cos theta_y - m)} + sum_{j != y} e^{s cos theta_j}) ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import number
from facevox.registry import register_loss


class CosFace(EmbeddingLoss):
    """Scale ``s`` (``scale``) and additive cosine margin ``m`` (``margin``)."""

    def __init__(self, embed_dim: int, num_classes: int, *, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__(embed_dim, num_classes)
        self.scale = number("scale", scale, gt=0)
        self.margin = number("margin", margin, ge=0)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb)
        target = cos.gather(1, labels.view(-1, 1)).squeeze(1) - self.margin
        return F.cross_entropy(self.scale * replace_target(cos, labels, target), labels)


@register_loss("cosface")
def cosface(*, embed_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> CosFace:
    """CosFace (large margin cosine loss): s (cos theta_y - m)."""
    return CosFace(embed_dim, num_classes, scale=scale, margin=margin)


@register_loss("am_softmax")
def am_softmax(*, embed_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.2) -> CosFace:
    """AM-softmax (the speaker-verification name of CosFace), speaker defaults s=30, m=0.2."""
    return CosFace(embed_dim, num_classes, scale=scale, margin=margin)
