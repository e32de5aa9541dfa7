"""A small multi-layer perceptron embedder for vector inputs (tests, demos, probes)."""

from __future__ import annotations

import torch
from torch import nn

from facevox.registry import register_model


class MLP(nn.Module):
    """x (B, in_dim) -> embedding (B, out_dim) through ``depth`` hidden ReLU layers."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(depth):
            layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
            dim = hidden
        layers.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@register_model("mlp")
def mlp(*, in_dim: int, out_dim: int = 64, hidden: int = 128, depth: int = 2, dropout: float = 0.0) -> MLP:
    """MLP embedder for flat vector inputs."""
    return MLP(in_dim, out_dim, hidden, depth, dropout)
