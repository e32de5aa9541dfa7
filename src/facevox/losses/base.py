"""The shared interface of embedding losses and the pieces they all use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.losses.schedule import MarginSchedule, warmup_value


class EmbeddingLoss(MarginSchedule, nn.Module):
    """``Loss(embed_dim, num_classes, *, ...)``; ``forward(emb (B, D), labels (B,)) -> scalar``.

    The class weights live in ``self.weight`` (C, D). ``logits(emb)`` gives the scores the loss
    is computed from without margins (for accuracy). Losses compute in fp32 even under autocast:
    margins on bf16 cosines (3 significant digits) would be mostly rounding. Arguments are checked
    when the loss is built (:mod:`facevox.losses.settings`); ``step_hook`` gives the training
    schedule of the margin and anything else the loss anneals (:mod:`facevox.losses.schedule`).
    """

    margin: float

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        if embed_dim < 1 or num_classes < 2:
            raise ValueError(f"need embed_dim >= 1 and num_classes >= 2, got {embed_dim}, {num_classes}")
        self.embed_dim, self.num_classes = embed_dim, num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) between each embedding and each class weight: (B, C)."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight.to(emb.dtype), dim=1))

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.cosine(emb)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=emb.device.type, enabled=False):
            return self.loss(emb if emb.dtype == torch.float64 else emb.float(), labels)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def replace_target(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Copy of ``logits`` (B, C) with column ``labels[i]`` of row i set to ``target[i]``."""
    return logits.scatter(1, labels.view(-1, 1), target.view(-1, 1))


def margin_warmup(loss: nn.Module, target: float, warmup_steps: int):
    """A training step hook: the margin goes linearly from the loss's "no margin" value (0, or 1
    for a multiplicative margin: ``loss.neutral_margin``) to ``target`` over ``warmup_steps``.

    The margin alone; the tasks use ``loss.step_hook`` (:mod:`facevox.losses.schedule`), which also
    runs the loss's other schedules (SphereFace's lambda)."""
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    start = float(getattr(loss, "neutral_margin", 0.0))

    def hook(step: int) -> None:
        loss.margin = warmup_value(step, start, target, warmup_steps)

    return hook
