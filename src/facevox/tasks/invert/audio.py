"""Inverting an audio generator (seed ch. 3): perceptual loss, encoder front end, clips and metrics.

- :class:`AudioPerceptual`: the audio perceptual distance, per clip: the multi-resolution STFT loss
  (spectral convergence + log-magnitude L1 at three STFT sizes, the definition of
  :class:`facevox.audio.gan_losses.MultiResolutionSTFTLoss`, here per clip) + the L1 distance of the
  log-mel spectrograms (:class:`facevox.audio.mel.LogMel`), plus, where ``--features`` names a facevox
  speaker model folder, 1 - cosine of its embeddings. Its name is ``mrstft-logmel``.
- :class:`AudioEncoder`: waves (B, 1, T) -> z: a ResNet-18 on the log-mel frames (80 x F, scaled
  to about [0, 1] and repeated over 3 channels).
- :func:`load_clips`: audio files cut to the generator's length (the centre window).
- :func:`audio_metrics`: MR-STFT distance, log-mel L1 and SNR per clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.audio.gan_losses import DEFAULT_RESOLUTIONS, MultiResolutionSTFTLoss
from facevox.audio.mel import MEL_FLOOR, LogMel, MelSpec
from facevox.errors import FacevoxError

AUDIO_PERCEPTUAL = "mrstft-logmel"
MIN_CLIP_RMS = 1e-3  # a cut clip quieter than this (-60 dBFS) is refused as silent
_LOG_FLOOR = float(np.log(MEL_FLOOR))


def mrstft_per_clip(pred: torch.Tensor, target: torch.Tensor,
                    resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS) -> torch.Tensor:
    """(B,) multi-resolution STFT loss of waves (B, 1, T): MultiResolutionSTFTLoss per clip."""
    return MultiResolutionSTFTLoss(resolutions).per_example(pred, target)


class AudioPerceptual(nn.Module):
    """Waves (B, 1, T) x (B, 1, T) -> (B,) perceptual distance (see the module docstring).

    ``prepare(target)`` computes what the target side needs once (an inversion reuses it every
    step); ``distance(x, prepared)`` the distances. ``speaker`` is a frozen embedding network
    (waves (B, T) -> (B, D)) or None.
    """

    def __init__(self, stft_weight: float = 1.0, logmel_weight: float = 1.0, speaker: nn.Module | None = None,
                 speaker_weight: float = 1.0, speaker_name: str = "") -> None:
        super().__init__()
        self.logmel = LogMel()
        self.stft_weight, self.logmel_weight, self.speaker_weight = stft_weight, logmel_weight, speaker_weight
        self.speaker = speaker.eval().requires_grad_(False) if speaker is not None else None
        self.name = AUDIO_PERCEPTUAL + ("+speaker" if speaker is not None else "")
        self.description = (f"multi-resolution STFT loss x {stft_weight:g} + log-mel L1 x {logmel_weight:g}"
                            + (f" + speaker embedding (1 - cos) x {speaker_weight:g} of {speaker_name}"
                               if speaker is not None else ""))

    def train(self, mode: bool = True) -> AudioPerceptual:  # always frozen
        return super().train(False)

    def prepare(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"wave": target.float(), "logmel": self.logmel(target)}
        if self.speaker is not None:
            out["embedding"] = F.normalize(self.speaker(target.reshape(target.shape[0], -1)).float(), dim=1)
        return out

    def distance(self, x: torch.Tensor, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        d = torch.zeros(x.shape[0], device=x.device)
        if self.stft_weight:
            d = d + self.stft_weight * mrstft_per_clip(x, prepared["wave"])
        if self.logmel_weight:
            d = d + self.logmel_weight * (self.logmel(x) - prepared["logmel"]).abs().flatten(1).mean(1)
        if self.speaker is not None and self.speaker_weight:
            e = F.normalize(self.speaker(x.reshape(x.shape[0], -1)).float(), dim=1)
            d = d + self.speaker_weight * (1 - (e * prepared["embedding"]).sum(1))
        return d

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, self.prepare(y))


def load_audio_perceptual(network: str = "", *, stft_weight: float = 1.0, logmel_weight: float = 1.0,
                          speaker_weight: float = 1.0, device: str | torch.device = "cpu") -> AudioPerceptual | None:
    """``"" / "mrstft-logmel"``: the built-in distance; a facevox speaker model folder: plus its
    embeddings; ``"none"``: None."""
    network = str(network or AUDIO_PERCEPTUAL)
    if network == "none":
        return None
    if network == AUDIO_PERCEPTUAL:
        return AudioPerceptual(stft_weight, logmel_weight).to(device)
    if not Path(network).is_dir():
        raise FacevoxError(f"audio feature network not found: give '{AUDIO_PERCEPTUAL}', a facevox speaker model "
                           "folder or 'none'", network)
    from facevox.checkpoint import read_model_folder

    folder = read_model_folder(network, task="speaker", use="an audio perceptual network (--features)")
    if folder.inference.kind == "pair":
        raise FacevoxError("a pair classifier has no embeddings: give a speaker embedding model", network)
    return AudioPerceptual(stft_weight, logmel_weight, folder.model, speaker_weight, str(network)).to(device)


# --------------------------------------------------------------------------------------------
# the encoder's front end


def mel_image(logmel: torch.Tensor) -> torch.Tensor:
    """Log-mel (B, n_mels, F) -> (B, 3, n_mels, F) in about [0, 1] (floor 0, 0 dB at about 1)."""
    x = (logmel - _LOG_FLOOR) / -_LOG_FLOOR
    return x[:, None].expand(-1, 3, -1, -1)


class AudioEncoder(nn.Module):
    """Waves (B, 1, T) -> z (B, nz): ``net`` (a ResNet-18) on the log-mel image of each clip."""

    modality = "audio"

    def __init__(self, net: nn.Module, nz: int, extra: dict[str, Any] | None = None, mel: MelSpec | None = None):
        super().__init__()
        self.net, self.nz, self.extra = net, int(nz), dict(extra or {})
        self.logmel = LogMel(mel)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.net(mel_image(self.logmel(wave))).float()


def mel_frames(samples: int, mel: MelSpec | None = None) -> tuple[int, int]:
    """(n_mels, frames) of the log-mel of a clip of ``samples``."""
    m = mel or MelSpec()
    return m.n_mels, samples // m.hop_length + 1


# --------------------------------------------------------------------------------------------
# real clips


def cut_clip(wave: np.ndarray, samples: int, where: str) -> np.ndarray:
    """The centre ``samples`` of a wave; too short or near-silent is a FacevoxError naming ``where``."""
    if len(wave) < samples:
        raise FacevoxError(f"audio too short ({len(wave) / 16000:.2f} s; the generator draws {samples} samples, "
                           f"{samples / 16000:.2f} s at 16 kHz)", where)
    start = (len(wave) - samples) // 2
    clip = wave[start : start + samples]
    rms = float(np.sqrt(np.mean(clip.astype(np.float64) ** 2)))
    if rms < MIN_CLIP_RMS:
        raise FacevoxError(f"the clip cut from this file is near-silent (RMS {rms:.1e}, under {MIN_CLIP_RMS:g})",
                           where)
    return clip


def load_clips(paths: Sequence[str | Path], samples: int, sample_rate: int = 16000) -> tuple[torch.Tensor, list[Path]]:
    """Audio files and folders (searched recursively) -> (N, 1, samples) in [-1, 1] and the files."""
    from facevox.audio.io import expand_audio_paths, load_audio
    from facevox.textfile import shown_name

    files = expand_audio_paths(paths)
    clips = [cut_clip(load_audio(f, sample_rate), samples, shown_name(f)) for f in files]
    return torch.from_numpy(np.stack(clips).astype(np.float32))[:, None], files


# --------------------------------------------------------------------------------------------
# metrics


def snr_db(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) SNR of ``pred`` against ``target`` in dB (:func:`facevox.attacks.perceptual.snr_db`), within +-100."""
    from facevox.attacks.perceptual import snr_db as attack_snr

    return attack_snr(target, pred).nan_to_num(nan=100.0).clamp(-100.0, 100.0).float()


@torch.no_grad()
def audio_metrics(targets: torch.Tensor, recon: torch.Tensor) -> dict[str, list[float]]:
    """Per clip: MR-STFT distance (MultiResolutionSTFTLoss of each clip), log-mel L1 and SNR (dB)."""
    x, y = targets.float().cpu(), recon.float().cpu()
    mr, lm = MultiResolutionSTFTLoss(), LogMel()
    return {"mrstft": mr.per_example(y, x).tolist(),
            "logmel_l1": (lm(y) - lm(x)).abs().flatten(1).mean(1).tolist(),
            "snr_db": snr_db(y, x).tolist()}


@torch.no_grad()
def mel_pictures(waves: torch.Tensor) -> torch.Tensor:
    """Waves (N, 1, T) -> their log-mel spectrograms as images (N, 3, n_mels, F) in [0, 1], low bands at the bottom."""
    lm = LogMel()(waves.float().cpu())
    lo, hi = float(lm.min()), float(lm.max())
    img = ((lm - lo) / max(1e-6, hi - lo)).flip(1)
    return img[:, None].expand(-1, 3, -1, -1).clamp(0, 1)
