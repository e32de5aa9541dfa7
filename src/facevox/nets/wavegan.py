"""WaveGAN (Donahue, McAuley and Puckette, ICLR 2019): a DCGAN for raw audio, 16384 samples (~1 s at 16 kHz).

- :class:`WaveGANGenerator`: z (B, nz) -> wave (B, 1, 16384) in [-1, 1]: a dense layer to (16 d, 16),
  then five transposed 1-D convolutions (kernel 25, stride 4) to 8d, 4d, 2d, d and 1 channels, ReLU
  between them and tanh at the end (16 -> 64 -> 256 -> 1024 -> 4096 -> 16384 samples).
- :class:`WaveGANDiscriminator`: wave (B, 1, 16384) -> score (B,): five strided convolutions (kernel
  25, stride 4) to d, 2d, 4d, 8d and 16d channels with LeakyReLU(0.2), phase shuffle (a random shift
  of up to ``shuffle`` samples per clip, reflection padded, in training mode only) after each of the
  first four, and a dense layer to one score. No batch norm (the paper's WGAN-GP setting).

The paper's width is d = 64; the default here, d = 16, trains on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.errors import FacevoxError
from facevox.registry import BuildError, register_model

SAMPLES = 16384  # 16 * 4**5
KERNEL, STRIDE, LEAK = 25, 4, 0.2


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BuildError(f"{name} must be a positive integer, not {value!r}")
    return value


class WaveGANGenerator(nn.Module):
    """z (B, nz) -> wave (B, 1, 16384) in [-1, 1]."""

    def __init__(self, nz: int = 100, d: int = 16) -> None:
        super().__init__()
        self.nz, self.d = _positive_int(nz, "nz"), _positive_int(d, "d")
        self.fc = nn.Linear(nz, 16 * 16 * d)
        widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            # kernel 25, stride 4, padding 11, output padding 1: exactly 4x the length
            layers.append(nn.ConvTranspose1d(a, b, KERNEL, STRIDE, padding=11, output_padding=1))
            layers.append(nn.ReLU() if i < 4 else nn.Tanh())
        self.up = nn.Sequential(*layers)
        self.samples = SAMPLES
        self.example_input_shape = (nz,)
        self._init()

    def _init(self) -> None:
        """He-normal weights for the fan-in a transposed convolution really has (in * kernel / stride),
        zero biases: the signal keeps its scale through the layers (PyTorch's default shrinks it
        until the output is the last bias, and can leave a narrow layer dead)."""
        nn.init.normal_(self.fc.weight, 0.0, (2.0 / self.nz) ** 0.5)
        nn.init.zeros_(self.fc.bias)
        convs = [m for m in self.up if isinstance(m, nn.ConvTranspose1d)]
        for i, m in enumerate(convs):
            gain = 2.0 if i < len(convs) - 1 else 0.25  # ReLU layers; the tanh layer starts at about +-0.5
            nn.init.normal_(m.weight, 0.0, (gain * STRIDE / (m.in_channels * KERNEL)) ** 0.5)
            nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z.reshape(z.shape[0], self.nz)).view(z.shape[0], 16 * self.d, 16)
        return self.up(F.relu(x))


def phase_shuffle(x: torch.Tensor, n: int) -> torch.Tensor:
    """Each clip of x (B, C, T) shifted by its own random k in [-n, n], reflection padded."""
    if n <= 0:
        return x
    b, _, t = x.shape
    k = torch.randint(-n, n + 1, (b,), device=x.device)
    padded = F.pad(x, (n, n), mode="reflect")
    index = (torch.arange(t, device=x.device)[None, :] + (n - k)[:, None])[:, None, :].expand(-1, x.shape[1], -1)
    return torch.gather(padded, 2, index)


class WaveGANDiscriminator(nn.Module):
    """Wave (B, 1, 16384) or (B, 16384) -> score (B,) (a WGAN critic or hinge score)."""

    def __init__(self, d: int = 16, shuffle: int = 2) -> None:
        super().__init__()
        self.d = _positive_int(d, "d")
        if isinstance(shuffle, bool) or not isinstance(shuffle, int) or shuffle < 0:
            raise BuildError(f"shuffle must be an integer >= 0, not {shuffle!r}")
        self.shuffle = shuffle
        widths = [1, d, 2 * d, 4 * d, 8 * d, 16 * d]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, KERNEL, STRIDE, padding=11)
                                   for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.fc = nn.Linear(16 * 16 * d, 1)
        self.samples = SAMPLES
        self.example_input_shape = (1, SAMPLES)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 2:
            wave = wave.unsqueeze(1)
        if wave.dim() != 3 or wave.shape[1] != 1 or wave.shape[2] != SAMPLES:
            raise FacevoxError(f"expected waves (B, 1, {SAMPLES}), got shape {tuple(wave.shape)}",
                               "wavegan discriminator")
        x = wave
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), LEAK)
            if i < len(self.convs) - 1 and self.training:
                x = phase_shuffle(x, self.shuffle)
        return self.fc(x.flatten(1)).squeeze(1)


@register_model("wavegan_generator")
def wavegan_generator(*, nz: int = 100, d: int = 16) -> WaveGANGenerator:
    """WaveGAN generator: z (B, nz) -> wave (B, 1, 16384) in [-1, 1] (~1 s at 16 kHz)."""
    return WaveGANGenerator(nz, d)


@register_model("wavegan_discriminator")
def wavegan_discriminator(*, d: int = 16, shuffle: int = 2) -> WaveGANDiscriminator:
    """WaveGAN discriminator with phase shuffle: wave (B, 1, 16384) -> score (B,)."""
    return WaveGANDiscriminator(d, shuffle)
