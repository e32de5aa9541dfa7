"""What an adversarial perturbation costs, per example: SNR, PESQ and STOI for audio; PSNR,
SSIM and L-inf for images (:func:`facevox.metrics.psnr` / :func:`~facevox.metrics.ssim`).

PESQ (ITU-T P.862.2 wide band, 16 kHz; ``pesq`` package, from 1.04 to 4.64) and STOI
(``pystoi``) come from the ``attacks`` extra: ``pip install 'facevox[attacks]'``. Without them
the functions that need them are a one-line error saying so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from facevox.errors import FacevoxError
from facevox.metrics import psnr, ssim

__all__ = ["PESQ_WB_MAX", "example_measures", "linf", "l2", "pesq_wb", "psnr", "snr_db", "ssim", "stoi"]

PESQ_WB_MAX = 4.644  # the wide-band MOS-LQO of a signal against itself
INSTALL = "pip install 'facevox[attacks]'"


def _pair(clean: Any, adv: Any) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.as_tensor(clean).detach()
    a = torch.as_tensor(adv).detach().to(c.device)
    if c.shape != a.shape:
        raise FacevoxError(f"clean and adversarial batches differ in shape: {tuple(c.shape)} vs {tuple(a.shape)}")
    if c.dim() < 2:
        raise FacevoxError(f"expected a batch (B, ...), got shape {tuple(c.shape)}")
    dtype = torch.float64
    return c.reshape(c.shape[0], -1).to(dtype), a.reshape(a.shape[0], -1).to(dtype)


def snr_db(clean: Any, adv: Any) -> torch.Tensor:
    """``10 * log10(||clean||^2 / ||adv - clean||^2)`` per example (B,), float64; inf where equal."""
    c, a = _pair(clean, adv)
    return 10.0 * torch.log10(c.pow(2).sum(1) / (a - c).pow(2).sum(1))


def linf(clean: Any, adv: Any) -> torch.Tensor:
    """``max |adv - clean|`` per example (B,), float64."""
    c, a = _pair(clean, adv)
    return (a - c).abs().amax(1)


def l2(clean: Any, adv: Any) -> torch.Tensor:
    """``||adv - clean||_2`` per example (B,), float64."""
    c, a = _pair(clean, adv)
    return (a - c).norm(dim=1)


def _waves(clean: Any, adv: Any) -> tuple[np.ndarray, np.ndarray]:
    c, a = (torch.as_tensor(v).detach().cpu() for v in (clean, adv))
    if c.dim() == 1:
        c, a = c[None], a[None]
    if c.shape != a.shape or c.dim() != 2:
        raise FacevoxError(f"expected two batches of waves (B, T) of one shape, got {tuple(c.shape)} "
                           f"and {tuple(a.shape)}")
    return c.numpy().astype(np.float64), a.numpy().astype(np.float64)


def pesq_wb(clean: Any, adv: Any, sr: int = 16000) -> np.ndarray:
    """Wide-band PESQ (MOS-LQO) of each adversarial wave against its clean one (B,); NaN where PESQ
    finds no speech (e.g. silence). ``sr`` must be 16000."""
    try:
        from pesq import pesq
    except ImportError:
        raise FacevoxError(f"PESQ needs the pesq package; {INSTALL} (or pip install pesq)", "pesq") from None
    if sr != 16000:
        raise FacevoxError(f"wide-band PESQ is defined at 16000 Hz, got {sr}", "sr")
    c, a = _waves(clean, adv)
    out = np.full(len(c), np.nan)
    for i, (ci, ai) in enumerate(zip(c, a, strict=True)):
        try:
            out[i] = pesq(sr, ci, ai, "wb")
        except Exception:  # pesq's NoUtterancesError / BufferTooShortError
            out[i] = np.nan
    return out


def stoi(clean: Any, adv: Any, sr: int = 16000, extended: bool = False) -> np.ndarray:
    """Short-time objective intelligibility (Taal et al. 2011; ``extended``: ESTOI) of each adversarial
    wave against its clean one (B,), about 0 to 1."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise FacevoxError(f"STOI needs the pystoi package; {INSTALL} (or pip install pystoi)", "stoi") from None
    c, a = _waves(clean, adv)
    return np.array([_stoi(ci, ai, sr, extended=extended) for ci, ai in zip(c, a, strict=True)], dtype=np.float64)


def example_measures(clean: Any, adv: Any, modality: str, sr: int = 16000, perceptual: bool = True) -> dict[str, float]:
    """The measures of one example without the batch axis (a wave (T,) or an image (3, H, W)):
    ``linf``, ``l2`` and, for audio, ``snr_db`` (+ ``pesq_wb``, ``stoi`` with ``perceptual``), for
    images ``psnr`` and ``ssim`` (NaN for images under 11 x 11). For ``run_attacks``' ``measure``."""
    if modality not in ("audio", "image"):
        raise FacevoxError(f"unknown modality {modality!r}; valid: audio, image", "modality")
    c, a = torch.as_tensor(clean)[None], torch.as_tensor(adv)[None]
    out = {"linf": float(linf(c, a)[0]), "l2": float(l2(c, a)[0])}
    if modality == "audio":
        out["snr_db"] = float(snr_db(c, a)[0])
        if perceptual:
            out["pesq_wb"] = float(pesq_wb(c, a, sr)[0])
            out["stoi"] = float(stoi(c, a, sr)[0])
    else:
        out["psnr"] = float(psnr(c, a)[0])
        out["ssim"] = float(ssim(c, a)[0]) if min(c.shape[-2:]) >= 11 else float("nan")
    return out
