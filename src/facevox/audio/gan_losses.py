"""Losses of audio GANs: hinge adversarial losses, feature matching and the multi-resolution STFT loss.

- :func:`hinge_d_loss` / :func:`hinge_g_loss`: MelGAN's hinge losses summed over the
  discriminator's scales (each score map averaged).
- :func:`feature_matching_loss`: mean L1 distance between the discriminator's feature maps of the
  real and the generated wave, averaged over layers and summed over scales (MelGAN weights it by 10).
- :class:`MultiResolutionSTFTLoss`: spectral convergence + log-magnitude L1 at several STFT sizes
  (Parallel WaveGAN, Yamamoto et al. 2020), averaged over the resolutions; also the "multi-resolution
  STFT distance" the vocoder benchmark reports.

Discriminator outputs are a list, one entry per scale, of ``(feature_maps, score)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facevox.audio.mel import stft

ScaleOutputs = Sequence[tuple[Sequence[torch.Tensor], torch.Tensor]]
DEFAULT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, window)


def hinge_d_loss(real: ScaleOutputs, fake: ScaleOutputs) -> torch.Tensor:
    """sum over scales of mean(relu(1 - D(x))) + mean(relu(1 + D(G(s))))."""
    return sum(torch.relu(1 - r[1]).mean() + torch.relu(1 + f[1]).mean() for r, f in zip(real, fake, strict=True))


def hinge_g_loss(fake: ScaleOutputs) -> torch.Tensor:
    """sum over scales of -mean(D(G(s)))."""
    return sum(-f[1].mean() for f in fake)


def feature_matching_loss(real: ScaleOutputs, fake: ScaleOutputs) -> torch.Tensor:
    """sum over scales of the mean over layers of L1(D_k(x), D_k(G(s))), real features detached."""
    total = 0.0
    for (real_feats, _), (fake_feats, _) in zip(real, fake, strict=True):
        layers = [torch.mean(torch.abs(f - r.detach())) for r, f in zip(real_feats, fake_feats, strict=True)]
        total = total + sum(layers) / max(1, len(layers))
    return total


def _flat(wave: torch.Tensor) -> torch.Tensor:
    return wave.reshape(-1, wave.shape[-1]).float()


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-STFT-magnitude L1, averaged over ``resolutions`` (n_fft, hop, window).

    ``forward(pred, target)`` takes waves (B, T) or (B, 1, T) of the same shape and returns a scalar;
    :meth:`parts` returns the two terms separately.
    """

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS, eps: float = 1e-7) -> None:
        super().__init__()
        self.resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
        if not self.resolutions or any(len(r) != 3 or not 0 < r[1] <= r[2] <= r[0] for r in self.resolutions):
            raise ValueError(f"resolutions must be (n_fft, hop, window) with 0 < hop <= window <= n_fft, "
                             f"got {resolutions!r}")
        self.eps = eps

    def parts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred, target = _flat(pred), _flat(target)
        sc = mag = 0.0
        with torch.autocast(pred.device.type, enabled=False):
            for n_fft, hop, win in self.resolutions:
                p = stft(pred, n_fft, hop, win).abs().clamp_min(self.eps)
                t = stft(target, n_fft, hop, win).abs().clamp_min(self.eps)
                sc = sc + torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(self.eps)
                mag = mag + torch.mean(torch.abs(torch.log(t) - torch.log(p)))
        n = len(self.resolutions)
        return sc / n, mag / n

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sc, mag = self.parts(pred, target)
        return sc + mag

    def per_example(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) the loss of each wave of (B, T) / (B, 1, T) against its own target (a batch of one each)."""
        if pred.shape != target.shape:
            raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
        p, t = pred.reshape(pred.shape[0], -1).float(), target.reshape(target.shape[0], -1).float()
        total = torch.zeros(p.shape[0], device=p.device)
        with torch.autocast(p.device.type, enabled=False):
            for n_fft, hop, win in self.resolutions:
                a = stft(p, n_fft, hop, win).abs().clamp_min(self.eps)
                b = stft(t, n_fft, hop, win).abs().clamp_min(self.eps)
                sc = (b - a).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(self.eps)
                total = total + sc + (b.log() - a.log()).abs().flatten(1).mean(1)
        return total / len(self.resolutions)
