"""Plain softmax cross-entropy over a linear classifier (the baseline of every margin paper)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss
from facevox.registry import register_loss


class Softmax(EmbeddingLoss):
    """L = CE(W x + b, y): unnormalised weights and features, with a bias."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__(embed_dim, num_classes)
        self.bias = torch.nn.Parameter(torch.zeros(num_classes))
        self.margin = 0.0

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(emb, self.weight.to(emb.dtype), self.bias.to(emb.dtype))

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb), labels)


@register_loss("softmax")
def softmax(*, embed_dim: int, num_classes: int) -> Softmax:
    """Softmax cross-entropy on a linear layer with bias."""
    return Softmax(embed_dim, num_classes)
