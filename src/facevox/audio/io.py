"""Reading and writing audio files, with one clear error per bad file.

Everything is read through soundfile (libsndfile), which decodes WAV (8-bit unsigned, 16/24/32-bit
integer and float), FLAC, Ogg Vorbis/Opus and MP3. A loaded waveform is always a float32 mono
array in [-1, 1] at the requested sample rate; every problem with a file (missing, undecodable,
empty, silent, too short) raises :class:`~facevox.errors.FacevoxError` naming the file, so a data
set with one broken file fails with one readable line, or is skipped and summarised with
:func:`load_many`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, list_files, load_each

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# peak amplitude under which a file counts as digital silence: 3 steps of 16-bit PCM
SILENCE_PEAK = 1e-4


def load_audio(path: str | Path, sample_rate: int = 16000, min_seconds: float = 0.0) -> np.ndarray:
    """Load an audio file as a float32 mono waveform of shape (T,) in [-1, 1] at ``sample_rate``.

    Channels are averaged; other sample rates are resampled with a polyphase filter. Float files
    with samples outside [-1, 1] are clipped. Raises :class:`FacevoxError` when the file is
    missing, cannot be decoded, has no samples, is digitally silent, or lasts less than
    ``min_seconds`` after resampling.
    """
    path = Path(path)
    _check_file(path)
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=path) from None
    if data.shape[0] == 0:
        raise FacevoxError("empty audio file (0 samples)", where=path)
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise FacevoxError("audio contains NaN or infinite samples", where=path)
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise FacevoxError(f"silent audio (peak amplitude {peak:.1e})", where=path)
    wave = resample(wave, int(file_rate), sample_rate)
    seconds = len(wave) / sample_rate
    if seconds < min_seconds:
        raise FacevoxError(f"audio too short ({seconds:.2f} s, need at least {min_seconds:g} s)", where=path)
    # resampling can overshoot by a hair near full scale; float files may exceed 1 outright
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D waveform (T,) from ``orig_rate`` to ``new_rate`` Hz (polyphase, reduced ratio).

    The result has ``ceil(T * new_rate / orig_rate)`` samples.
    """
    if orig_rate == new_rate:
        return wave
    g = math.gcd(orig_rate, new_rate)
    return resample_poly(wave, new_rate // g, orig_rate // g).astype(np.float32, copy=False)


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of an audio file, read from its header only.

    Raises :class:`FacevoxError` when the file is missing, cannot be decoded or has no samples.
    For MP3 the frame count is the decoder's estimate.
    """
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=path) from None
    if info.frames == 0:
        raise FacevoxError("empty audio file (0 samples)", where=path)
    return int(info.samplerate), int(info.channels), int(info.frames)


def list_audio_files(root: str | Path) -> list[Path]:
    """All audio files under ``root`` (recursive, sorted, hidden ones left out; see :func:`list_files`)."""
    return list_files(root, AUDIO_EXTENSIONS, "audio")


def load_many(
    paths: Iterable[str | Path],
    sample_rate: int = 16000,
    min_seconds: float = 0.0,
    skip_bad: bool = False,
) -> tuple[list[np.ndarray], list[tuple[Path, str]]]:
    """Load several files with :func:`load_audio`; returns ``(waves, bad)``.

    With ``skip_bad`` a file that fails is left out of ``waves`` and listed in ``bad`` as
    ``(path, problem)`` so the caller can print one summary; without it the first bad file raises.
    ``waves`` keeps the order of ``paths``.
    """
    return load_each(paths, lambda p: load_audio(p, sample_rate=sample_rate, min_seconds=min_seconds), skip_bad)


def save_wav(path: str | Path, wave: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write a waveform ((T,) mono or (T, channels)) as 16-bit PCM WAV, atomically; returns the path.

    Samples are clipped to [-1, 1] first: libsndfile would otherwise wrap them around.
    """
    data = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        # the temporary name ends in .tmp, so soundfile cannot guess the format from it
        sf.write(tmp, data, sample_rate, format="WAV", subtype="PCM_16")
    return Path(path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FacevoxError("file not found", where=path)
    if not path.is_file():
        raise FacevoxError("not a file", where=path)


def _reason(err: Exception) -> str:
    """A short one-line reason from a soundfile error, e.g. ``format not recognised``."""
    text = getattr(err, "error_string", None) or str(err) or type(err).__name__
    text = " ".join(str(text).split())
    for prefix in ("Error : ", "Error: ", "System error : "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip(".")
    return (text[:1].lower() + text[1:])[:200] or "unknown error"
