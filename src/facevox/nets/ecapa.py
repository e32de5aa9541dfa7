"""ECAPA-TDNN (Desplanques, Thienpondt and Demuynck, "ECAPA-TDNN: emphasized channel attention,
propagation and aggregation in TDNN based speaker verification", Interspeech 2020).

Features ``(B, F, T)`` -> Conv1d(k=5) + ReLU + BN ``(B, C, T)`` -> three SE-Res2Blocks (k=3,
dilations 2, 3, 4, Res2 scale 8, squeeze-excitation bottleneck 128), each fed the sum of the outputs
of everything before it -> multi-layer feature aggregation (the three block outputs concatenated,
Conv1d(k=1) to 1536 channels + ReLU) -> attentive statistics pooling with global context
``(B, 2 * 1536)`` -> BN -> Linear -> BN -> embeddings ``(B, embed_dim)``. ``channels`` (C) is 512 or
1024 in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.registry import register_model

RES2_SCALE = 8  # the paper's Res2Net scale: the block's channels are split into 8 groups
SE_BOTTLENECK = 128  # the paper's squeeze-excitation bottleneck width
ATTENTION_BOTTLENECK = 128  # the paper's attention bottleneck width in the pooling layer
BLOCK_DILATIONS = (2, 3, 4)
VAR_EPS = 1e-5  # floor of the attentive variance: it is a difference of two sums and can round below 0


def _conv_relu_bn(in_channels: int, channels: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv1d + ReLU + BatchNorm, the paper's basic unit; 'same' padding keeps the length T."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv1d(in_channels, channels, kernel, dilation=dilation, padding=padding),
        nn.ReLU(),
        nn.BatchNorm1d(channels),
    )


class SqueezeExcitation(nn.Module):
    """Channel gates from the time-averaged input: (B, C, T) -> (B, C, T) (Hu et al., CVPR 2018)."""

    def __init__(self, channels: int, bottleneck: int = SE_BOTTLENECK) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Conv1d(channels, bottleneck, 1), nn.ReLU(), nn.Conv1d(bottleneck, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=-1, keepdim=True))


class Res2Conv(nn.Module):
    """Res2Net dilated convolution (Gao et al., TPAMI 2021): (B, C, T) -> (B, C, T).

    The channels are split into ``scale`` groups; the first passes unchanged and group ``i`` is
    convolved after adding the previous group's output, so later groups see growing contexts.
    """

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int = RES2_SCALE) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"ECAPA channels must be a multiple of the Res2 scale {scale}, got {channels}")
        self.scale = scale
        width = channels // scale
        self.convs = nn.ModuleList(_conv_relu_bn(width, width, kernel, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.chunk(self.scale, dim=1)
        outs = [groups[0]]
        previous: torch.Tensor | None = None
        for conv, group in zip(self.convs, groups[1:], strict=True):
            previous = conv(group if previous is None else group + previous)
            outs.append(previous)
        return torch.cat(outs, dim=1)


class SERes2Block(nn.Module):
    """1x1 conv, Res2 dilated conv, 1x1 conv, squeeze-excitation, plus the input: (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_relu_bn(channels, channels),
            Res2Conv(channels, kernel, dilation),
            _conv_relu_bn(channels, channels),
            SqueezeExcitation(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AttentiveStatsPool(nn.Module):
    """Channel- and context-dependent attentive statistics pooling: (B, C, T) -> (B, 2C).

    Each frame's attention logits see the frame and the utterance's global mean and standard
    deviation (the paper's "global context"); the softmax over time weights a mean and a standard
    deviation per channel. The statistics are computed in float32 even under autocast.
    """

    def __init__(self, channels: int, bottleneck: int = ATTENTION_BOTTLENECK) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            _conv_relu_bn(3 * channels, bottleneck),
            nn.Tanh(),
            nn.Conv1d(bottleneck, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames, device = x.shape[-1], x.device.type
        with torch.autocast(device_type=device, enabled=False):
            var, mean = torch.var_mean(x.float(), dim=-1, keepdim=True, correction=0)
            std = torch.sqrt(var.clamp(min=VAR_EPS))
        context = [mean.expand(-1, -1, frames).to(x.dtype), std.expand(-1, -1, frames).to(x.dtype)]
        logits = self.attention(torch.cat([x, *context], dim=1))  # (B, C, T), one attention per channel
        with torch.autocast(device_type=device, enabled=False):
            weights, x = torch.softmax(logits.float(), dim=-1), x.float()
            mean = (weights * x).sum(dim=-1)
            var = (weights * x.square()).sum(dim=-1) - mean.square()
            return torch.cat([mean, torch.sqrt(var.clamp(min=VAR_EPS))], dim=-1)


class ECAPATDNN(nn.Module):
    """ECAPA-TDNN embedder: features (B, in_dim, T) -> embeddings (B, embed_dim)."""

    def __init__(self, in_dim: int = 80, channels: int = 512, embed_dim: int = 192, mfa_channels: int = 1536) -> None:
        super().__init__()
        self.stem = _conv_relu_bn(in_dim, channels, kernel=5)
        self.blocks = nn.ModuleList(SERes2Block(channels, 3, d) for d in BLOCK_DILATIONS)
        self.aggregate = nn.Sequential(nn.Conv1d(len(BLOCK_DILATIONS) * channels, mfa_channels, 1), nn.ReLU())
        self.pool = AttentiveStatsPool(mfa_channels)
        self.pool_bn = nn.BatchNorm1d(2 * mfa_channels)
        self.embedding = nn.Linear(2 * mfa_channels, embed_dim)
        self.embedding_bn = nn.BatchNorm1d(embed_dim)
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.example_input_shape = (in_dim, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.stem(x)
        outs = []
        for block in self.blocks:
            # the paper's residual summation: each block gets the sum of the stem's and all earlier blocks' outputs
            out = block(total)
            outs.append(out)
            total = total + out
        pooled = self.pool(self.aggregate(torch.cat(outs, dim=1)))
        return self.embedding_bn(self.embedding(self.pool_bn(pooled)))


@register_model("ecapa_tdnn")
def ecapa_tdnn(*, in_dim: int = 80, channels: int = 512, embed_dim: int = 192, mfa_channels: int = 1536) -> ECAPATDNN:
    """ECAPA-TDNN (Desplanques et al. 2020): features (B, in_dim, T) -> embeddings (B, embed_dim).

    ``channels`` is the SE-Res2Block width (512 or 1024 in the paper; a multiple of 8), and
    ``mfa_channels`` the width of the aggregated frame features (1536 in the paper; smaller only
    to make tiny models for tests).
    """
    return ECAPATDNN(in_dim, channels, embed_dim, mfa_channels)
