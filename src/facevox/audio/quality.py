"""How close a resynthesised wave is to its original: mel-cepstral distortion, the multi-resolution
STFT distance, PESQ and STOI (the last two from :mod:`facevox.attacks.perceptual`, extra ``attacks``).

Mel-cepstral distortion (MCD, dB) here is ``(10 / ln 10) * sqrt(2 * sum_{d=1}^{24} (c_d - c'_d)^2)``
averaged over frames, with ``c`` the DCT-II (orthonormal) of the natural-log mel spectrum (80 bands,
1024-point FFT, hop 256) and ``c_0`` (energy) left out. The two waves are time-aligned (a vocoder
keeps the timing), so frames are compared one to one with no DTW; each wave's mel magnitudes are
clamped at -80 dB re its loudest (so a change of gain alone costs nothing) and frames whose mean
level is 60 dB below the original's loudest frame are left out. Values are comparable with each
other, not with SPTK/mcep-based MCDs of papers (those use a mel-generalised cepstrum of order 24-34 with an
all-pass warp, and often DTW).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from facevox.audio.gan_losses import MultiResolutionSTFTLoss
from facevox.audio.mel import LogMel, MelSpec

MCD_ORDER = 24
MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)
SILENT_DB = 60.0
FLOOR_DB = 80.0


def _dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


def mel_cepstrum(wave: torch.Tensor, spec: MelSpec | None = None, order: int = MCD_ORDER,
                 floor: float | None = None) -> torch.Tensor:
    """(T,) wave -> (frames, order + 1) cepstra c_0..c_order of its log-mel spectrum (mel magnitudes
    clamped at ``floor``, a natural-log value)."""
    logmel = LogMel(spec or MelSpec())(torch.as_tensor(wave, dtype=torch.float32)[None])[0]  # (n_mels, F)
    if floor is not None:
        logmel = logmel.clamp_min(floor)
    return (_dct_matrix(logmel.shape[0])[: order + 1] @ logmel).T


def _floor(wave: torch.Tensor, spec: MelSpec | None) -> float:
    """-80 dB re the loudest mel magnitude of ``wave`` (a floor that scales with the wave)."""
    return float(LogMel(spec or MelSpec())(wave[None]).max()) - FLOOR_DB / 20 * math.log(10)


def mcd(reference: Any, estimate: Any, spec: MelSpec | None = None) -> float:
    """Mel-cepstral distortion in dB between two time-aligned waves (T,) (the shorter length is used)."""
    ref, est = (torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in (reference, estimate))
    n = min(len(ref), len(est))
    cr = mel_cepstrum(ref[:n], spec, floor=_floor(ref[:n], spec))
    ce = mel_cepstrum(est[:n], spec, floor=_floor(est[:n], spec))
    level = cr[:, 0] / math.sqrt(spec.n_mels if spec else MelSpec().n_mels)  # mean natural-log mel magnitude
    keep = level >= level.max() - SILENT_DB / 20 * math.log(10)
    diff = (cr[keep, 1:] - ce[keep, 1:]).double()
    return float(MCD_CONST * torch.sqrt((diff**2).sum(1)).mean())


def stft_distance(reference: Any, estimate: Any) -> float:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1) of two waves (T,)."""
    ref, est = (torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in (reference, estimate))
    n = min(len(ref), len(est))
    with torch.no_grad():
        return float(MultiResolutionSTFTLoss()(est[None, :n], ref[None, :n]))


def quality(reference: np.ndarray, estimate: np.ndarray, perceptual: bool = True, sr: int = 16000,
            ) -> dict[str, float]:
    """MCD (dB), MR-STFT distance and, with ``perceptual``, PESQ-wb and STOI of ``estimate`` against ``reference``."""
    n = min(len(reference), len(estimate))
    ref, est = np.asarray(reference[:n], np.float32), np.asarray(estimate[:n], np.float32)
    out = {"mcd_db": mcd(ref, est), "stft_distance": stft_distance(ref, est)}
    if perceptual:
        from facevox.attacks.perceptual import pesq_wb, stoi

        out["pesq_wb"] = float(pesq_wb(ref[None], est[None], sr)[0])
        out["stoi"] = float(stoi(ref[None], est[None], sr)[0])
    return out
