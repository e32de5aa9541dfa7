"""The log-mel spectrogram that vocoders invert: one definition for MelGAN, Griffin-Lim and the benchmarks.

:class:`MelSpec` holds the settings (16 kHz, 1024-point FFT, hop 256, 80 mel bands up to 8 kHz,
the usual MelGAN front end) and :class:`LogMel` computes ``log(clamp(mel(|STFT|), 1e-5))`` of
(B, T) waves -> (B, n_mels, T // hop + 1) frames (centred STFT, Hann window, magnitude not power).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from facevox.audio.features import mel_filterbank
from facevox.errors import FacevoxError

MEL_FLOOR = 1e-5


@dataclass(frozen=True)
class MelSpec:
    """Settings of the log-mel spectrogram (what a vocoder model folder stores)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0

    def __post_init__(self) -> None:
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            raise FacevoxError(f"need 0 < hop_length <= win_length <= n_fft, got {self.hop_length}, "
                               f"{self.win_length}, {self.n_fft}", "mel")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise FacevoxError(f"need 0 <= f_min < f_max <= {self.sample_rate / 2:g} Hz, got {self.f_min:g}, "
                               f"{self.f_max:g}", "mel")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def filterbank(self) -> torch.Tensor:
        """(n_mels, n_fft // 2 + 1) Slaney-normalised triangular filters."""
        return mel_filterbank(self.n_fft, self.n_mels, self.sample_rate, self.f_min, self.f_max)


def stft(wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """Complex centred STFT of (B, T) waves with a Hann window -> (B, n_fft // 2 + 1, frames)."""
    window = torch.hann_window(win_length, device=wave.device, dtype=torch.float32)
    pad_mode = "reflect" if wave.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(wave.float(), n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=True, pad_mode=pad_mode, return_complex=True)


class LogMel(nn.Module):
    """Waves (B, T), (B, 1, T) or (T,) -> log-mel (B, n_mels, T // hop + 1), float32."""

    def __init__(self, spec: MelSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or MelSpec()
        self.register_buffer("fb", self.spec.filterbank(), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        s = self.spec
        wave = wave.reshape(-1, wave.shape[-1]) if wave.dim() != 1 else wave[None]
        return stft(wave, s.n_fft, s.hop_length, s.win_length).abs()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            return torch.log(torch.clamp(self.fb @ self.magnitude(wave), min=MEL_FLOOR))
