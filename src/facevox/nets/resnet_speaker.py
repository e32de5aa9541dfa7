"""Thin ResNets for speaker verification, as in the VoxCeleb / WeSpeaker baselines.

He et al., "Deep residual learning for image recognition", CVPR 2016, with the "thin" widths of
Chung et al., "In defence of metric learning for speaker recognition", Interspeech 2020, and the
layout of WeSpeaker's ``ResNet34`` (Wang et al., "WeSpeaker: a research and production oriented
speaker embedding learning toolkit", ICASSP 2023): the features ``(B, F, T)`` are treated as a
one-channel image ``(B, 1, F, T)``, a 3x3 stem and four stages of BasicBlocks (widths ``w, 2w, 4w,
8w``, stride 2 from the second stage on, in both frequency and time) give a map ``(B, 8w, F', T')``
with ``F' = ceil(F / 8)``, ``T' = ceil(T / 8)``; its channels and frequencies are flattened to
``(B, 8w * F', T')``, pooled over time to the mean and standard deviation ``(B, 2 * 8w * F')`` and
projected to the embedding ``(B, embed_dim)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facevox.nets.tdnn import stats_pool
from facevox.registry import register_model

STAGE_STRIDES = (1, 2, 2, 2)  # the first stage keeps the stem's resolution, each later one halves it
STAGE_WIDTHS = (1, 2, 4, 8)  # stage widths as multiples of the base width


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection: (B, C_in, F, T) -> (B, C_out, F/s, T/s)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        # a separate ReLU module per use, so hooks of saliency methods see each activation once
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class SpeakerResNet(nn.Module):
    """Thin ResNet embedder: features (B, in_dim, T) -> embeddings (B, embed_dim).

    ``blocks`` is the number of BasicBlocks per stage ([3, 4, 6, 3] for ResNet-34).
    """

    def __init__(self, blocks: tuple[int, ...], in_dim: int = 80, base_width: int = 32, embed_dim: int = 256) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, base_width, 3, padding=1, bias=False), nn.BatchNorm2d(base_width), nn.ReLU()
        )
        stages: list[nn.Module] = []
        channels, freq = base_width, in_dim
        for count, stride, mult in zip(blocks, STAGE_STRIDES, STAGE_WIDTHS, strict=True):
            width = base_width * mult
            stage = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels, freq = width, math.ceil(freq / stride)  # a padded 3x3 conv of stride s gives ceil(F / s)
        self.stages = nn.Sequential(*stages)
        self.embedding = nn.Linear(2 * channels * freq, embed_dim)
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.example_input_shape = (in_dim, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected features (B, {self.in_dim}, T), got shape {tuple(x.shape)}")
        maps = self.stages(self.stem(x.unsqueeze(1)))  # (B, C, F', T')
        return self.embedding(stats_pool(maps.flatten(1, 2)))


@register_model("resnet34_thin")
def resnet34_thin(*, in_dim: int = 80, base_width: int = 32, embed_dim: int = 256) -> SpeakerResNet:
    """Thin ResNet-34 (WeSpeaker/VoxCeleb baseline): features (B, in_dim, T) -> embeddings (B, embed_dim)."""
    return SpeakerResNet((3, 4, 6, 3), in_dim, base_width, embed_dim)


@register_model("resnet18_thin")
def resnet18_thin(*, in_dim: int = 80, base_width: int = 32, embed_dim: int = 256) -> SpeakerResNet:
    """Thin ResNet-18: features (B, in_dim, T) -> embeddings (B, embed_dim)."""
    return SpeakerResNet((2, 2, 2, 2), in_dim, base_width, embed_dim)
