"""NormFace: softmax cross-entropy on scaled cosines (normalised features and weights).

Wang, Xiang, Cheng, Yuille, "NormFace: L2 Hypersphere Embedding for Face Verification", ACM MM 2017.
Features f and class weights W_j are L2-normalised (f~, W~_j), so the logit of class j is the cosine
W~_j^T f~ = cos(theta_j), multiplied by a scale s:

    L = -log( e^{s cos theta_y} / sum_j e^{s cos theta_j} ).

No margin. The scale is needed because cosines lie in [-1, 1]: the paper shows that with features and
weights normalised to norm l (s = l^2 here), the loss cannot go below log(1 + (C - 1) e^{-C s / (C - 1)})
for C classes. The paper learns s; here it is a fixed ``scale``, default s = 30: for C = 10,575
(CASIA-WebFace) the bound is 0.39 at s = 10, 2e-5 at s = 20 and 1e-9 at s = 30 (1e-8 for C = 100,000),
so 30 no longer limits the loss at any training-set size in use, while staying well below the 64 of
CosFace / ArcFace, where the softmax is close to a hard max from the first step. ``margin`` is 0 and
unused: it is there so that code that reads or warms up ``loss.margin`` treats every loss alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss
from facevox.losses.settings import number
from facevox.registry import register_loss


class NormFace(EmbeddingLoss):
    """Scale ``s`` (``scale``); logits s cos(theta_j) for every class, no margin."""

    def __init__(self, embed_dim: int, num_classes: int, *, scale: float = 30.0) -> None:
        super().__init__(embed_dim, num_classes)
        self.scale = number("scale", scale, gt=0)
        self.margin = 0.0

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """s cos(theta_j): (B, C)."""
        return self.scale * self.cosine(emb)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb), labels)


@register_loss("normface")
def normface(*, embed_dim: int, num_classes: int, scale: float = 30.0) -> NormFace:
    """NormFace (normalised softmax): cross-entropy of s cos(theta_j), s = 30."""
    return NormFace(embed_dim, num_classes, scale=scale)
