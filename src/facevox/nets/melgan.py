"""MelGAN (Kumar et al., NeurIPS 2019): a fully convolutional, non-autoregressive mel-spectrogram
to waveform GAN.

- :class:`MelGANGenerator`: log-mel frames (B, n_mels, F) -> wave (B, 1, hop * F) in [-1, 1], with
  ``hop`` the product of the upsampling ratios (8 * 8 * 2 * 2 = 256 by default). A 7-tap input
  convolution, then per ratio ``r`` a LeakyReLU, a transposed convolution (kernel 2r, stride r)
  that halves the channels and a residual stack of dilated convolutions (dilations 1, 3, 9), and a
  7-tap output convolution with tanh.
- :class:`MelGANDiscriminator`: three discriminators on the raw wave and on 2x and 4x average-pooled
  copies; each is a stack of grouped, strided 1-D convolutions and returns its feature maps and a
  score map (used by the hinge and feature-matching losses of :mod:`facevox.audio.gan_losses`).

Every convolution is weight normalised; activations are LeakyReLU(0.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from facevox.errors import FacevoxError
from facevox.registry import BuildError, register_model

LEAK = 0.2


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BuildError(f"{name} must be a positive integer, not {value!r}")
    return value


def _int_tuple(values: object, name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise BuildError(f"{name} must be a non-empty list of positive integers, not {values!r}")
    return tuple(_positive_int(v, f"each of {name}") for v in values)


def _conv(in_ch: int, out_ch: int, kernel: int, **kwargs: int) -> nn.Module:
    return weight_norm(nn.Conv1d(in_ch, out_ch, kernel, **kwargs))


class ResidualStack(nn.Module):
    """Dilated residual blocks at one resolution: x + conv1x1(lrelu(conv3_d(lrelu(x)))) for each dilation d."""

    def __init__(self, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LeakyReLU(LEAK),
                nn.ReflectionPad1d(d),
                _conv(channels, channels, 3, dilation=d),
                nn.LeakyReLU(LEAK),
                _conv(channels, channels, 1),
            )
            for d in dilations
        )
        self.shortcuts = nn.ModuleList(_conv(channels, channels, 1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, shortcut in zip(self.blocks, self.shortcuts, strict=True):
            x = shortcut(x) + block(x)
        return x


class MelGANGenerator(nn.Module):
    """Log-mel frames (B, n_mels, F) -> wave (B, 1, hop_length * F) in [-1, 1].

    ``channels`` is the width after the input convolution; each upsampling halves it, so it must
    be divisible by ``2 ** len(upsample_ratios)`` (512 and four ratios leave 32 at the output).
    """

    def __init__(self, n_mels: int = 80, channels: int = 512, upsample_ratios: Sequence[int] = (8, 8, 2, 2),
                 dilations: Sequence[int] = (1, 3, 9)) -> None:
        super().__init__()
        n_mels = _positive_int(n_mels, "n_mels")
        channels = _positive_int(channels, "channels")
        ratios = _int_tuple(upsample_ratios, "upsample_ratios")
        dilations = _int_tuple(dilations, "dilations")
        if channels % 2 ** len(ratios):
            raise BuildError(f"channels ({channels}) must be divisible by 2 ** {len(ratios)} (each of the "
                             f"{len(ratios)} upsampling layers halves it)")
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), _conv(n_mels, channels, 7)]
        ch = channels
        for r in ratios:
            # kernel 2r, stride r: output length = r * input length for every r
            up = nn.ConvTranspose1d(ch, ch // 2, 2 * r, stride=r, padding=r // 2 + r % 2, output_padding=r % 2)
            layers += [nn.LeakyReLU(LEAK), weight_norm(up), ResidualStack(ch // 2, dilations)]
            ch //= 2
        layers += [nn.LeakyReLU(LEAK), nn.ReflectionPad1d(3), _conv(ch, 1, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.n_mels = n_mels
        self.hop_length = math.prod(ratios)
        self.example_input_shape = (n_mels, 4)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise FacevoxError(f"expected log-mel frames (B, {self.n_mels}, F), got shape {tuple(mel.shape)}",
                               "melgan generator")
        if mel.shape[2] < 4:
            # the 7-tap reflection-padded input convolution needs more than 3 frames
            raise FacevoxError(f"need at least 4 mel frames, got {mel.shape[2]}", "melgan generator")
        return self.model(mel)


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator: wave (B, 1, T) -> (feature maps, score map (B, 1, T'))."""

    def __init__(self, channels: int = 16, max_channels: int = 1024, n_layers: int = 4, stride: int = 4) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.ReflectionPad1d(7), _conv(1, channels, 15), nn.LeakyReLU(LEAK))]
        ch = channels
        for _ in range(n_layers):
            out = min(ch * stride, max_channels)
            groups = max(1, ch // 4)
            if out % groups:
                raise BuildError(f"a grouped convolution from {ch} to {out} channels in {groups} groups: choose "
                                 f"max_channels ({max_channels}) a multiple of channels ({channels})")
            conv = _conv(ch, out, stride * 10 + 1, stride=stride, padding=stride * 5, groups=groups)
            layers.append(nn.Sequential(conv, nn.LeakyReLU(LEAK)))
            ch = out
        layers.append(nn.Sequential(_conv(ch, ch, 5, padding=2), nn.LeakyReLU(LEAK)))
        self.layers = nn.ModuleList(layers)
        self.score = _conv(ch, 1, 3, padding=1)

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = []
        x = wave
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats, self.score(x)


class MelGANDiscriminator(nn.Module):
    """Multi-scale discriminator: wave (B, 1, T) or (B, T) -> one (feature maps, score map) per scale.

    Scale ``k`` sees the wave average-pooled ``k`` times (kernel 4, stride 2), i.e. at 1x, 2x, 4x ...
    downsampling.
    """

    def __init__(self, n_scales: int = 3, channels: int = 16, max_channels: int = 1024, n_layers: int = 4,
                 stride: int = 4) -> None:
        super().__init__()
        n_scales = _positive_int(n_scales, "n_scales")
        channels = _positive_int(channels, "channels")
        max_channels = _positive_int(max_channels, "max_channels")
        n_layers = _positive_int(n_layers, "n_layers")
        stride = _positive_int(stride, "stride")
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(channels, max_channels, n_layers, stride) for _ in range(n_scales)
        )
        self.pool = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)
        self.min_samples = 8 * 2 ** (n_scales - 1)  # the coarsest scale's 15-tap reflection padding needs > 7
        self.example_input_shape = (1, max(self.min_samples, 256))

    def forward(self, wave: torch.Tensor) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        if wave.dim() == 2:
            wave = wave.unsqueeze(1)
        if wave.dim() != 3 or wave.shape[1] != 1:
            raise FacevoxError(f"expected waves (B, 1, T) or (B, T), got shape {tuple(wave.shape)}",
                               "melgan discriminator")
        if wave.shape[2] < self.min_samples:
            raise FacevoxError(f"need at least {self.min_samples} samples for {len(self.discriminators)} scales, "
                               f"got {wave.shape[2]}", "melgan discriminator")
        outputs = []
        for k, disc in enumerate(self.discriminators):
            if k:
                wave = self.pool(wave)
            outputs.append(disc(wave))
        return outputs


@register_model("melgan_generator")
def melgan_generator(*, n_mels: int = 80, channels: int = 512, upsample_ratios: Sequence[int] = (8, 8, 2, 2),
                     dilations: Sequence[int] = (1, 3, 9)) -> MelGANGenerator:
    """MelGAN generator: log-mel (B, n_mels, F) -> wave (B, 1, 256 F) in [-1, 1] (hop = product of ratios)."""
    return MelGANGenerator(n_mels, channels, upsample_ratios, dilations)


@register_model("melgan_discriminator")
def melgan_discriminator(*, n_scales: int = 3, channels: int = 16, max_channels: int = 1024, n_layers: int = 4,
                         stride: int = 4) -> MelGANDiscriminator:
    """MelGAN multi-scale discriminator: wave (B, 1, T) -> per scale (feature maps, score map)."""
    return MelGANDiscriminator(n_scales, channels, max_channels, n_layers, stride)
