"""Waveform augmentation for speaker training: additive noise, speed perturbation, gain.

All functions work on one 1-D numpy waveform and take every random choice from a passed
``numpy.random.Generator``, so an augmented sample depends only on its per-sample seed
(see :mod:`facevox.data`) and a resumed run sees exactly the same audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from facevox.audio.features import random_crop

# largest denominator of the rational speed factor: 0.9 -> 9/10, 1.1 -> 11/10; keeps the
# polyphase filters short while any factor is matched to better than 1e-4
MAX_SPEED_DENOMINATOR = 100


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + a * noise`` with ``a`` chosen so the signal-to-noise ratio is ``snr_db`` (power ratio).

    ``noise`` is repeated or cut to the length of ``wave``. A silent wave or silent noise has no
    defined SNR; the wave is then returned unchanged (as a copy).
    """
    wave = np.asarray(wave)
    noise = np.asarray(noise)
    if len(noise) == 0:
        raise ValueError("noise is empty")
    noise = np.resize(noise, len(wave))  # repeats a short noise, cuts a long one
    p_wave, p_noise = _power(wave), _power(noise)
    if p_wave == 0.0 or p_noise == 0.0:
        return wave.copy()
    scale = np.sqrt(p_wave / (p_noise * 10.0 ** (snr_db / 10.0)))
    dtype = wave.dtype if np.issubdtype(wave.dtype, np.floating) else np.float32
    return (wave + scale * noise).astype(dtype, copy=False)


def coloured_noise(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS, float32 (length,)."""
    spectrum = rng.standard_normal(length // 2 + 1) + 1j * rng.standard_normal(length // 2 + 1)
    freqs = np.fft.rfftfreq(length)
    scale = np.zeros_like(freqs)
    scale[1:] = freqs[1:] ** (-exponent / 2.0)  # amplitude ~ f^(-exponent/2); no DC offset
    noise = np.fft.irfft(spectrum * scale, n=length)
    rms = np.sqrt(np.mean(np.square(noise))) if length else 0.0
    return (noise / rms if rms > 0 else noise).astype(np.float32)


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``wave`` ``factor`` times faster: tempo and pitch both scale (Kaldi / WeSpeaker speed perturb).

    The result has about ``len(wave) / factor`` samples and a tone at ``f`` Hz moves to ``factor * f``.
    Implemented as resampling by ``1 / factor`` with a rational approximation of the factor.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    wave = np.asarray(wave)
    ratio = Fraction(factor).limit_denominator(MAX_SPEED_DENOMINATOR)
    if ratio == 1:
        return wave.copy()
    # treat the samples as recorded at factor * rate and resample them back to the rate
    return resample_poly(wave, ratio.denominator, ratio.numerator).astype(wave.dtype, copy=False)


@dataclass
class WaveAugment:
    """Random augmentation of one waveform, configured once and called per sample.

    ``aug(wave, rng)`` applies, in order: with probability ``speed_prob`` a speed factor drawn from
    ``speeds``; with probability ``noise_prob`` noise at an SNR uniform in ``snr_db`` (a random
    piece of a random ``noise_bank`` entry, else coloured noise with a random exponent in [0, 2]);
    a gain uniform in ``gain_db``. The output has the length of the input (or ``length``): after a
    speed change it is cropped, or wrap-padded when too short, so batches of fixed-length crops stay
    fixed-length; pass ``input_length(length)`` samples to never wrap.
    """

    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (5.0, 20.0)
    noise_bank: Sequence[np.ndarray] = ()
    speed_prob: float = 0.0
    speeds: Sequence[float] = (0.9, 1.1)
    gain_db: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("noise_prob", "speed_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.speed_prob > 0 and (not self.speeds or min(self.speeds) <= 0):
            raise ValueError(f"speeds must be positive factors, got {self.speeds}")
        if any(len(n) == 0 for n in self.noise_bank):
            raise ValueError("noise_bank holds an empty noise")

    def input_length(self, length: int) -> int:
        """Samples to pass in for an output of ``length`` with no wrap-padding after the fastest speed."""
        fastest = max(self.speeds) if self.speed_prob > 0 else 1.0
        return int(np.ceil(length * max(1.0, fastest))) + 1

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
        """Augmented ``wave``, ``length`` samples long (default: the input's length), cropped at random."""
        wave = np.asarray(wave, dtype=np.float32)
        length = len(wave) if length is None else length
        if self.speed_prob > 0 and rng.random() < self.speed_prob:
            speed = float(self.speeds[int(rng.integers(len(self.speeds)))])
            wave = speed_perturb(wave, speed)
        if len(wave) != length:
            wave = random_crop(wave, length, rng)
        if self.noise_prob > 0 and rng.random() < self.noise_prob:
            if self.noise_bank:
                noise = random_crop(self.noise_bank[int(rng.integers(len(self.noise_bank)))], length, rng)
            else:
                noise = coloured_noise(length, rng, exponent=float(rng.uniform(0.0, 2.0)))
            wave = add_noise(wave, noise, float(rng.uniform(*self.snr_db)))
        if self.gain_db[0] != 0.0 or self.gain_db[1] != 0.0:
            wave = wave * np.float32(10.0 ** (rng.uniform(*self.gain_db) / 20.0))
        return wave.astype(np.float32, copy=False)
