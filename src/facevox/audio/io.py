"""Reading and writing audio files, with one clear error per bad file.

Everything is read through soundfile (libsndfile), which decodes WAV (8-bit unsigned, 16/24/32-bit
integer and float), FLAC, Ogg Vorbis/Opus and MP3, except MP4-family containers (``.m4a``, AAC
as VoxCeleb2 ships it), which go through PyAV (:mod:`facevox.audio.container`). A loaded
waveform is always a float32 mono array in [-1, 1] at the requested sample rate; every problem
with a file (missing, undecodable, a header with an absurd sample rate or no channels, empty, silent, too short) raises
:class:`~facevox.errors.FacevoxError` naming the file, so a data set with one broken file fails
with one readable line, or is skipped and summarised with :func:`load_many`. File names that are
not UTF-8 can be read; a corpus folder holding one is an error naming it (see
:func:`list_audio_files`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from facevox.audio.container import CONTAINER_EXTENSIONS, container_info, read_container
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, list_files, load_each
from facevox.textfile import check_utf8_name, shown_name

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", *CONTAINER_EXTENSIONS)

# peak amplitude under which a file counts as digital silence: 3 steps of 16-bit PCM
SILENCE_PEAK = 1e-4
# sample rates a header may claim: outside them the header is damaged (or the file is not audio)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000


def load_audio(path: str | Path, sample_rate: int = 16000, min_seconds: float = 0.0) -> np.ndarray:
    """Load an audio file as a float32 mono waveform of shape (T,) in [-1, 1] at ``sample_rate``.

    Channels are averaged; other sample rates are resampled with a polyphase filter. Float files
    with samples outside [-1, 1] are clipped. Raises :class:`FacevoxError` when the file is
    missing, cannot be decoded, has no samples, is digitally silent, or lasts less than
    ``min_seconds`` after resampling.
    """
    path = Path(path)
    where = shown_name(path)
    _check_file(path)
    if path.suffix.lower() in CONTAINER_EXTENSIONS:
        data, file_rate = read_container(path, where, _check_header)
    else:
        try:
            with sf.SoundFile(os.fsencode(path)) as fh:  # bytes: names that are not UTF-8 open too
                file_rate = _check_header(fh.samplerate, fh.channels, None, where)
                data = fh.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
            raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=where) from None
    if data.shape[0] == 0:
        raise FacevoxError("empty audio file (0 samples)", where=where)
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise FacevoxError("audio contains NaN or infinite samples", where=where)
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise FacevoxError(f"silent audio (peak amplitude {peak:.1e})", where=where)
    wave = resample(wave, file_rate, sample_rate)
    seconds = len(wave) / sample_rate
    if seconds < min_seconds:
        raise FacevoxError(f"audio too short ({seconds:.2f} s, need at least {min_seconds:g} s)", where=where)
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

    Raises :class:`FacevoxError` when the file is missing, cannot be decoded, has no samples, or
    its header claims an absurd sample rate or no channels. For MP3 the frame count is the
    decoder's estimate.
    """
    path = Path(path)
    where = shown_name(path)
    _check_file(path)
    if path.suffix.lower() in CONTAINER_EXTENSIONS:
        return container_info(path, where, _check_header)
    try:
        info = sf.info(os.fsencode(path))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=where) from None
    rate = _check_header(info.samplerate, info.channels, info.frames, where)
    return rate, int(info.channels), int(info.frames)


def _check_header(rate: int, channels: int, frames: int | None, where: str) -> int:
    """The sample rate, after checking what a file's header claims (``frames`` None: not known yet)."""
    if channels <= 0:
        raise FacevoxError(f"the header claims {channels} channels", where=where)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise FacevoxError(f"the header claims a sample rate of {rate} Hz (expected {MIN_SAMPLE_RATE} to "
                           f"{MAX_SAMPLE_RATE} Hz): a damaged header or not an audio file", where=where)
    if frames == 0:
        raise FacevoxError("empty audio file (0 samples)", where=where)
    return int(rate)


def list_audio_files(root: str | Path) -> list[Path]:
    """All audio files under ``root`` (recursive, sorted, hidden ones left out; see :func:`list_files`).

    A file or folder name that is not UTF-8 is an error naming it: it could not be written into
    a trial list or a report.
    """
    files = list_files(root, AUDIO_EXTENSIONS, "audio")
    for f in files:
        check_utf8_name(f)
    return files


def expand_audio_paths(paths: Iterable[str | Path], suffixes: tuple[str, ...] = (), what: str = "an audio file",
                       nothing: str = "no audio files given") -> list[Path]:
    """Files as given, folders expanded to the audio files under them (:func:`list_audio_files`).

    A named file must exist and, when ``suffixes`` is given, end in one of them (else a one-line
    error calling it not ``what``); no file at all is the error ``nothing``.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += list_audio_files(p)
        elif not p.is_file():
            raise FacevoxError("file not found", shown_name(p))
        elif suffixes and p.suffix.lower() not in suffixes:
            raise FacevoxError(f"not {what} (extensions: {', '.join(suffixes)})", shown_name(p))
        else:
            out.append(p)
    if not out:
        raise FacevoxError(nothing)
    return out


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
        raise FacevoxError("file not found", where=shown_name(path))
    if not path.is_file():
        raise FacevoxError("not a file", where=shown_name(path))


def _reason(err: Exception) -> str:
    """A short one-line reason from a soundfile error, e.g. ``format not recognised``."""
    text = getattr(err, "error_string", None) or str(err) or type(err).__name__
    text = " ".join(str(text).split())
    for prefix in ("Error : ", "Error: ", "System error : "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip(".")
    return (text[:1].lower() + text[1:])[:200] or "unknown error"
