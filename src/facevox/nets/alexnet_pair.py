"""The seed paper's AlexNet-style speaker networks on spectrograms.

Both use the convolutional trunk of AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet
classification with deep convolutional neural networks", NeurIPS 2012, in torchvision's one-GPU
layout: five convolutions with 64-192-384-256-256 channels, ReLUs, three 3x3/2 max pools, an adaptive
average pool to a 6x6 grid, dropout and three fully connected layers of 4096-4096-out units), adapted
to spectrograms:

- :class:`PairAlexNet` (``pair_alexnet``) is the pair classifier: the two utterances' spectrograms
  are stacked as two input channels ``(B, 2, F, T)`` and the last layer gives one same/different
  logit ``(B,)``, positive for "same speaker" (train with ``binary_cross_entropy_with_logits``).
- :class:`SiameseCNN` (``siamese_cnn``) is one branch of the Siamese network: one spectrogram
  ``(B, F, T)`` -> embedding ``(B, embed_dim)``, shared by both sides of a pair and trained with a
  contrastive loss on the distance between the two embeddings.

The adaptations: the max pools are padded by one (``ceil(n / 2)`` outputs instead of
``floor((n - 1) / 2)``) so that short or narrow inputs, 80 mel bands or 20 frames, do not shrink to
nothing; the adaptive pool then makes the fully connected layers independent of ``(F, T)``, from
257 linear bins x 157 frames (25,000 samples at a 160-sample hop) down to 80 x 20. ``width``
scales every channel and hidden-unit count (1.0 is AlexNet's, 0.25 a quarter) to fit a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.registry import register_model

CONV_CHANNELS = (64, 192, 384, 256, 256)  # AlexNet's conv widths at width 1.0
HIDDEN_UNITS = 4096  # AlexNet's fully connected width at width 1.0
POOL_GRID = (6, 6)  # AlexNet's adaptive pool output; the FC input is channels * 36


def _scaled(count: int, width: float) -> int:
    return max(1, round(count * width))


def alexnet_features(in_channels: int, width: float, batchnorm: bool = True) -> nn.Sequential:
    """AlexNet's conv trunk: (B, in_channels, F, T) -> (B, C, 6, 6) with C = 256 * width.

    ``batchnorm`` puts a BatchNorm after every convolution (before its ReLU). AlexNet predates
    batch norm; without it, this net trained from scratch on log-spectrograms stays at chance
    for thousands of steps (the seed's "modified AlexNet" does not say what was modified).
    """
    c1, c2, c3, c4, c5 = (_scaled(c, width) for c in CONV_CHANNELS)

    def conv(cin: int, cout: int, **kw: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, bias=not batchnorm, **kw)]
        return layers + ([nn.BatchNorm2d(cout)] if batchnorm else []) + [nn.ReLU()]

    return nn.Sequential(
        *conv(in_channels, c1, kernel_size=11, stride=4, padding=2),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        *conv(c1, c2, kernel_size=5, padding=2),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        *conv(c2, c3, kernel_size=3, padding=1),
        *conv(c3, c4, kernel_size=3, padding=1),
        *conv(c4, c5, kernel_size=3, padding=1),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(POOL_GRID),
    )


class PairAlexNet(nn.Module):
    """Same/different classifier: stacked spectrograms (B, 2, F, T) -> logits (B,), > 0 for "same"."""

    def __init__(self, in_channels: int = 2, width: float = 0.5, dropout: float = 0.5, batchnorm: bool = True) -> None:
        super().__init__()
        self.features = alexnet_features(in_channels, width, batchnorm)
        flat, hidden = _scaled(CONV_CHANNELS[-1], width) * POOL_GRID[0] * POOL_GRID[1], _scaled(HIDDEN_UNITS, width)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        self.in_channels = in_channels
        self.example_input_shape = (in_channels, 80, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected stacked spectrograms (B, {self.in_channels}, F, T), got {tuple(x.shape)}")
        return self.classifier(self.features(x)).squeeze(-1)


class SiameseCNN(nn.Module):
    """One Siamese branch: a spectrogram (B, in_dim, T) -> embedding (B, embed_dim)."""

    def __init__(self, in_dim: int = 80, width: float = 0.5, embed_dim: int = 128, batchnorm: bool = True) -> None:
        super().__init__()
        self.features = alexnet_features(1, width, batchnorm)
        flat, hidden = _scaled(CONV_CHANNELS[-1], width) * POOL_GRID[0] * POOL_GRID[1], _scaled(HIDDEN_UNITS, width)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, embed_dim))
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.example_input_shape = (in_dim, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected a spectrogram batch (B, F, T), got shape {tuple(x.shape)}")
        return self.head(self.features(x.unsqueeze(1)))


@register_model("pair_alexnet")
def pair_alexnet(*, in_channels: int = 2, width: float = 0.5, dropout: float = 0.5,
                 batchnorm: bool = True) -> PairAlexNet:
    """Seed paper's AlexNet pair classifier: stacked spectrograms (B, 2, F, T) -> same-speaker logits (B,)."""
    return PairAlexNet(in_channels, width, dropout, batchnorm)


@register_model("siamese_cnn")
def siamese_cnn(*, in_dim: int = 80, width: float = 0.5, embed_dim: int = 128,
                batchnorm: bool = True) -> SiameseCNN:
    """Seed paper's Siamese branch, an AlexNet-like CNN: spectrograms (B, in_dim, T) -> embeddings (B, embed_dim)."""
    return SiameseCNN(in_dim, width, embed_dim, batchnorm)
