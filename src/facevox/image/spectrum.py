"""The azimuthally averaged Fourier spectrum of an image (Durall, Keuper and Keuper, "Watch
your up-convolution: CNN based generative deep neural networks are failing to reproduce spectral
distributions", CVPR 2020).

Up-sampling layers of a generator leave periodic traces: a GAN image's spectrum departs from a
photo's at high frequencies. The 1-D profile is the mean log-magnitude of the 2-D FFT over rings
of equal radius, min-max normalised per image; a linear classifier on it is a cue that needs no
deep network.
"""

from __future__ import annotations

import torch

LUMA = (0.299, 0.587, 0.114)


def ring_index(size: int, device: torch.device | None = None) -> torch.Tensor:
    """(size, size) integer radius of each centred-FFT frequency, clipped to size // 2 - 1."""
    c = torch.arange(size, device=device, dtype=torch.float32) - size // 2
    r = torch.sqrt(c.view(-1, 1) ** 2 + c.view(1, -1) ** 2).round().long()
    return r.clamp(max=size // 2 - 1)


def azimuthal_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, S, S) or (B, 1, S, S) -> spectral profiles (B, S // 2) in [0, 1].

    Bin ``k`` is the mean of log(1 + |FFT|) over the ring of radius ``k`` (0 = DC); every profile
    is min-max normalised, so overall brightness and contrast do not matter. Differentiable.
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected square images (B, C, S, S), got {tuple(x.shape)}")
    x = x.float()
    gray = (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1) if x.shape[1] == 3 else x[:, 0]
    size = gray.shape[-1]
    mag = torch.log1p(torch.fft.fftshift(torch.fft.fft2(gray), dim=(-2, -1)).abs())
    rings = ring_index(size, x.device).flatten()
    n_bins = size // 2
    sums = torch.zeros(gray.shape[0], n_bins, device=x.device).index_add_(1, rings, mag.flatten(1))
    counts = torch.bincount(rings, minlength=n_bins).clamp(min=1)
    profile = sums / counts
    lo, hi = profile.amin(1, keepdim=True), profile.amax(1, keepdim=True)
    return (profile - lo) / (hi - lo).clamp(min=1e-8)
