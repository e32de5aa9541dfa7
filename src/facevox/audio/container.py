"""Audio in MP4-family containers (``.m4a``, ``.mp4``, ``.aac``): VoxCeleb2 ships AAC in ``.m4a``.

libsndfile cannot read these, so they are decoded with PyAV (the ``av`` wheel, which bundles
FFmpeg: ``pip install "facevox[m4a]"``, nothing from the system). The first audio stream is
decoded to planar float32 at its own rate and channel count; :mod:`facevox.audio.io` then mixes,
resamples and checks it exactly as it does a WAV. Files are opened as Python file objects, so
names that are not UTF-8 open too. The encoder's priming samples (about 1024 of near-silence at
the start of an AAC stream) are kept as FFmpeg decodes them: 64 ms at 16 kHz, which no speaker
model notices; the frame count :func:`container_info` gives is the header's estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.fileio import atomic_path

CONTAINER_EXTENSIONS = (".m4a", ".mp4", ".aac")
INSTALL = 'pip install "facevox[m4a]" (PyAV)'


def _av(where: str) -> Any:
    try:
        import av
    except ImportError:
        raise FacevoxError(f"decoding {Path(where).suffix or 'this'} audio needs PyAV: {INSTALL}", where) from None
    return av


def _reason(err: Exception) -> str:
    text = " ".join(str(getattr(err, "strerror", None) or err).split()) or type(err).__name__
    return (text[:1].lower() + text[1:])[:200]


def _audio_stream(container: Any, where: str) -> Any:
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        raise FacevoxError("no audio stream in this file", where)
    return streams[0]


def _rate_and_channels(stream: Any) -> tuple[int, int]:
    ctx = stream.codec_context
    rate = int(ctx.sample_rate or stream.rate or 0)
    channels = int(getattr(ctx.layout, "nb_channels", 0) or getattr(ctx, "channels", 0) or 0)
    return rate, channels


def read_container(path: Path, where: str, check_header: Any) -> tuple[np.ndarray, int]:
    """``(samples (T, C) float32, sample rate)`` of the first audio stream of ``path``.

    ``check_header(rate, channels, frames, where)`` vets what the stream claims before decoding.
    Undecodable data is a one-line :class:`FacevoxError` naming ``where``.
    """
    if path.stat().st_size == 0:
        raise FacevoxError("empty audio file (0 bytes)", where=where)
    av = _av(where)
    chunks: list[np.ndarray] = []
    try:
        with open(path, "rb") as fh, av.open(fh, "r") as container:
            stream = _audio_stream(container, where)
            rate, channels = _rate_and_channels(stream)
            check_header(rate, channels, None, where)
            resampler = av.AudioResampler(format="fltp")  # planar float, same layout and rate
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except FacevoxError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, EOFError) as err:
        raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=where) from None
    if not chunks:
        return np.zeros((0, max(channels, 1)), dtype=np.float32), rate
    data = np.concatenate(chunks, axis=1).T  # (T, C)
    return np.ascontiguousarray(data, dtype=np.float32), rate


def container_info(path: Path, where: str, check_header: Any) -> tuple[int, int, int]:
    """``(sample rate, channels, frames)`` from the container's header; frames is an estimate
    from the stream's duration (as for MP3), 0 when the header gives none and nothing decodes."""
    if path.stat().st_size == 0:
        raise FacevoxError("empty audio file (0 bytes)", where=where)
    av = _av(where)
    try:
        with open(path, "rb") as fh, av.open(fh, "r") as container:
            stream = _audio_stream(container, where)
            rate, channels = _rate_and_channels(stream)
            check_header(rate, channels, None, where)
            if stream.duration is not None and stream.time_base is not None:
                frames = int(round(float(stream.duration * stream.time_base) * rate))
            elif container.duration is not None:
                frames = int(round(container.duration / 1e6 * rate))  # microseconds
            else:
                frames = sum(f.samples for f in container.decode(stream))
    except FacevoxError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, EOFError) as err:
        raise FacevoxError(f"cannot decode audio ({_reason(err)})", where=where) from None
    check_header(rate, channels, frames, where)
    return rate, channels, frames


def write_m4a(path: str | Path, wave: np.ndarray, sample_rate: int = 16000, bitrate: int = 64000) -> Path:
    """Encode a waveform ((T,) mono or (T, C)) as AAC in an ``.m4a`` file (for tests and benchmarks)."""
    av = _av(str(path))
    data = np.asarray(wave, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data
    layout = {1: "mono", 2: "stereo"}[data.shape[1]]
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout=layout)
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(data, -1, 1).T), format="fltp",
                                           layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)
