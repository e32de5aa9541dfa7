"""Speech front ends in torch (log-mel filterbanks, spectrograms, SpecAugment) and waveform crops.

The modules work on batches of waveforms ``(B, T)`` on whatever device the input is on, use only
``torch.stft`` and always compute in float32, even inside a bf16/fp16 autocast region: log energies
of quiet frames lose everything in half precision. The crop helpers are numpy and take their
randomness from a ``numpy.random.Generator`` (see :mod:`facevox.data`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LOG_FLOOR = 1e-6  # added before the log so that digital silence gives a finite floor, not -inf


# --------------------------------------------------------------------------------------------
# mel filterbank


def hz_to_mel(freq: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hertz to mels: the Slaney (Auditory Toolbox) scale by default, else the HTK formula."""
    freq = np.asarray(freq, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    f_sp = 200.0 / 3  # linear below 1 kHz ...
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0  # ... logarithmic above
    mels = freq / f_sp
    log_part = min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
    return np.where(freq >= min_log_hz, log_part, mels)


def mel_to_hz(mels: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    log_part = min_log_hz * np.exp(logstep * (mels - min_log_mel))
    return np.where(mels >= min_log_mel, log_part, freqs)


def mel_filterbank(
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    norm: str | None = "slaney",
    htk: bool = False,
) -> torch.Tensor:
    """Triangular mel filters, float32 of shape (n_mels, n_fft // 2 + 1).

    Filter ``i`` rises from mel point ``i`` to ``i + 1`` and falls to ``i + 2``, for ``n_mels + 2``
    points evenly spaced in mels between ``f_min`` and ``f_max`` (default: Nyquist). ``norm="slaney"``
    scales each filter by ``2 / (f_hi - f_lo)`` so they have roughly equal area; ``None`` leaves peaks
    at 1. With the defaults this equals ``librosa.filters.mel(sr=..., n_fft=..., n_mels=...)``.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, not {norm!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2} Hz, got f_min={f_min}, f_max={f_max}")
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2), htk)
    widths = np.diff(points)
    ramps = points[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freqs)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


# --------------------------------------------------------------------------------------------
# front ends


def frames_for(num_samples: int, hop_length: int) -> int:
    """Number of frames :class:`Fbank` / :class:`Spectrogram` give for ``num_samples`` (centred STFT)."""
    return 1 + num_samples // hop_length


def _as_batch(wave: torch.Tensor) -> torch.Tensor:
    if wave.dim() == 1:
        return wave.unsqueeze(0)
    if wave.dim() != 2:
        raise ValueError(f"expected a waveform (T,) or a batch (B, T), got shape {tuple(wave.shape)}")
    return wave


def _stft_magnitude(wave: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """|STFT| of (B, T) float32 waves -> (B, n_fft // 2 + 1, frames), centred."""
    # reflect padding needs more samples than the padding; very short inputs are zero padded instead
    pad_mode = "reflect" if wave.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=window.shape[0],
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return spec.abs()


def _log_cmn(feats: torch.Tensor, log: bool, cmn: bool) -> torch.Tensor:
    if log:
        feats = torch.log(feats + LOG_FLOOR)
    if cmn:
        # per-utterance mean over time removes a fixed channel (microphone) colouring
        feats = feats - feats.mean(dim=-1, keepdim=True)
    return feats


class Fbank(nn.Module):
    """Log-mel filterbank energies: waves (B, T) or (T,) -> (B, n_mels, frames).

    Pre-emphasis, a Hamming-windowed centred STFT (reflect padding), power spectrum, mel filters,
    ``log(x + 1e-6)`` and per-utterance mean normalisation over time (``cmn``). The defaults are the
    usual speaker-verification ones (25 ms windows every 10 ms at 16 kHz, 80 mels, 20-7600 Hz).
    ``frames = frames_for(T, hop_length)``. The filterbank and window are non-persistent buffers:
    they are rebuilt from the arguments, so model state dicts do not carry them.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        f_min: float = 20.0,
        f_max: float = 7600.0,
        log: bool = True,
        power: float = 2.0,
        cmn: bool = True,
        preemphasis: float = 0.97,
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} is longer than n_fft {n_fft}")
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.log, self.power, self.cmn, self.preemphasis = log, power, cmn, preemphasis
        self.out_dim = n_mels
        self.register_buffer("window", torch.hamming_window(win_length, periodic=False), persistent=False)
        self.register_buffer("fbank", mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = _as_batch(wave)
        with torch.autocast(device_type=wave.device.type, enabled=False):
            x = wave.float()
            if self.preemphasis:
                x = torch.cat([x[:, :1], x[:, 1:] - self.preemphasis * x[:, :-1]], dim=1)
            window = self.window.to(device=x.device, dtype=torch.float32)
            fbank = self.fbank.to(device=x.device, dtype=torch.float32)
            spec = _stft_magnitude(x, self.n_fft, self.hop_length, window)
            if self.power != 1.0:
                spec = spec.pow(self.power)
            mel = torch.matmul(fbank, spec)  # (n_mels, F) @ (B, F, frames) -> (B, n_mels, frames)
            return _log_cmn(mel, self.log, self.cmn)


class Spectrogram(nn.Module):
    """Linear-frequency (log-)magnitude spectrogram: waves (B, T) or (T,) -> (B, n_fft // 2 + 1, frames).

    Hamming-windowed centred STFT, ``log(|X| + 1e-6)`` when ``log``, per-utterance mean
    normalisation over time when ``cmn``.
    """

    def __init__(
        self, n_fft: int = 512, win_length: int = 400, hop_length: int = 160, log: bool = True, cmn: bool = True
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} is longer than n_fft {n_fft}")
        self.n_fft, self.hop_length, self.log, self.cmn = n_fft, hop_length, log, cmn
        self.out_dim = n_fft // 2 + 1
        self.register_buffer("window", torch.hamming_window(win_length, periodic=False), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = _as_batch(wave)
        with torch.autocast(device_type=wave.device.type, enabled=False):
            x = wave.float()
            window = self.window.to(device=x.device, dtype=torch.float32)
            return _log_cmn(_stft_magnitude(x, self.n_fft, self.hop_length, window), self.log, self.cmn)


class SpecAugment(nn.Module):
    """Frequency and time masking of features (B, F, T), in training mode only.

    Each example gets ``freq_masks`` bands of width uniform in [0, freq_width] and ``time_masks``
    spans of width uniform in [0, time_width], at uniform random positions, set to that example's
    mean value (which is 0 after mean normalisation). In eval mode the input is returned unchanged.
    """

    def __init__(self, freq_masks: int = 1, freq_width: int = 8, time_masks: int = 1, time_width: int = 10) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if feats.dim() != 3:
            raise ValueError(f"expected features (B, F, T), got shape {tuple(feats.shape)}")
        if not self.training:
            return feats
        b, f, t = feats.shape
        mask = self._mask(b, f, self.freq_masks, self.freq_width, generator, feats.device)[:, :, None]
        mask = mask | self._mask(b, t, self.time_masks, self.time_width, generator, feats.device)[:, None, :]
        fill = feats.mean(dim=(1, 2), keepdim=True)
        return torch.where(mask, fill, feats)

    @staticmethod
    def _mask(
        batch: int, size: int, count: int, max_width: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        """(batch, size) bool: ``count`` random spans per row, each of width in [0, max_width]."""
        if count <= 0 or max_width <= 0:
            return torch.zeros(batch, size, dtype=torch.bool, device=device)
        # draw on the generator's device so a seeded CPU generator gives the same masks on any device
        gen_device = generator.device if generator is not None else torch.device("cpu")
        width = torch.randint(0, min(max_width, size) + 1, (batch, count), generator=generator, device=gen_device)
        start = (torch.rand(batch, count, generator=generator, device=gen_device) * (size - width + 1)).long()
        width, start = width.to(device), start.to(device)
        pos = torch.arange(size, device=device)[None, None, :]
        spans = (pos >= start[..., None]) & (pos < (start + width)[..., None])
        return spans.any(dim=1)


# --------------------------------------------------------------------------------------------
# waveform crops (numpy)


def random_crop(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``length`` samples from a 1-D wave (a copy).

    A wave shorter than ``length`` is repeated end to end (wrap padding, as WeSpeaker does) from a
    random offset within its first period.
    """
    wave = np.asarray(wave)
    n = len(wave)
    if n == 0:
        raise ValueError("cannot crop an empty wave")
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return wave[start : start + length].copy()
    offset = int(rng.integers(0, n))
    return wave[(offset + np.arange(length)) % n]


def fixed_windows(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Windows of ``length`` samples every ``hop`` samples covering the whole wave: (N, length).

    The last window is aligned to the end of the wave, so no sample is left out; a wave no longer
    than ``length`` gives a single window, repeated end to end to fill it.
    """
    wave = np.asarray(wave)
    n = len(wave)
    if n == 0:
        raise ValueError("cannot cut windows from an empty wave")
    if hop <= 0:
        raise ValueError(f"hop must be positive, got {hop}")
    if n <= length:
        return np.resize(wave, length)[None, :]
    starts = list(range(0, n - length + 1, hop))
    if starts[-1] + length < n:
        starts.append(n - length)
    return np.lib.stride_tricks.sliding_window_view(wave, length)[starts]
