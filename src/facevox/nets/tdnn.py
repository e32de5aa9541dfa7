"""The x-vector TDNN speaker embedder (Snyder et al., "X-vectors: robust DNN embeddings for speaker
recognition", ICASSP 2018).

Acoustic features ``(B, F, T)`` go through five frame-level TDNN layers (1-D convolutions over time,
dilated to reach the paper's frame contexts), are summarised by statistics pooling (mean and standard
deviation over time) and mapped to a fixed-size embedding ``(B, embed_dim)`` by the first
segment-level layer. The paper reads the x-vector off that layer's affine output, before its
non-linearity, so that is what :class:`XVector` returns; the training head (segment7 + softmax) is
the loss's job here (see :mod:`facevox.losses`).
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.registry import register_model

# The paper's frame5 and pooling width: 1500 channels for 512-channel frame layers. A smaller
# ``channels`` keeps the same ratio so that shrinking for the CPU shrinks the whole network.
PAPER_CHANNELS, PAPER_STATS_CHANNELS = 512, 1500

# (kernel size, dilation) of frame1..frame5: contexts [t-2, t+2], {t-2, t, t+2}, {t-3, t, t+3}, {t}, {t}
FRAME_LAYERS = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))

STD_EPS = 1e-5  # added to the variance so the std's gradient stays finite on constant channels


def stats_pool(x: torch.Tensor) -> torch.Tensor:
    """Statistics pooling: (B, C, T) -> (B, 2C), the mean and standard deviation over time.

    Computed in float32 even under autocast: a variance in bf16 loses most of its digits.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        var, mean = torch.var_mean(x, dim=-1, correction=0)
        return torch.cat([mean, torch.sqrt(var + STD_EPS)], dim=-1)


class XVector(nn.Module):
    """x-vector TDNN: features (B, in_dim, T) -> embeddings (B, embed_dim).

    The frame layers use unpadded ("valid") convolutions as in Kaldi, so each utterance loses
    :attr:`context` = 14 frames at the edges and needs ``T > 14``.
    """

    def __init__(self, in_dim: int = 80, channels: int = 512, embed_dim: int = 512) -> None:
        super().__init__()
        stats_channels = channels * PAPER_STATS_CHANNELS // PAPER_CHANNELS
        widths = [channels] * (len(FRAME_LAYERS) - 1) + [stats_channels]
        layers: list[nn.Module] = []
        dim = in_dim
        for (kernel, dilation), width in zip(FRAME_LAYERS, widths, strict=True):
            # ReLU then BatchNorm, the order of Kaldi's "relu-batchnorm" components used by the paper
            layers += [nn.Conv1d(dim, width, kernel, dilation=dilation), nn.ReLU(), nn.BatchNorm1d(width)]
            dim = width
        self.frames = nn.Sequential(*layers)
        self.segment6 = nn.Linear(2 * stats_channels, embed_dim)
        self.context = sum((kernel - 1) * dilation for kernel, dilation in FRAME_LAYERS)
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.example_input_shape = (in_dim, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] <= self.context:
            raise ValueError(f"x-vector needs more than {self.context} frames, got input of shape {tuple(x.shape)}")
        return self.segment6(stats_pool(self.frames(x)))


@register_model("xvector")
def xvector(*, in_dim: int = 80, channels: int = 512, embed_dim: int = 512) -> XVector:
    """x-vector TDNN (Snyder et al. 2018): features (B, in_dim, T) -> embeddings (B, embed_dim)."""
    return XVector(in_dim, channels, embed_dim)
