"""Optional voice-activity trim before speaker embedding, with silero-vad (MIT; ``pip install silero-vad``).

:func:`trim_silence` keeps the speech segments silero-vad finds, concatenated. The model is the one
shipped inside the installed ``silero-vad`` wheel (no download), loaded once per process: its ONNX
file when ``onnxruntime`` is importable (nothing unpickled), else its TorchScript file. The package
sets torch to one thread on import; facevox puts the thread count back.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from facevox.errors import FacevoxError

INSTALL = 'pip install silero-vad (or "facevox[speaker-baseline]")'
WHERE = "--vad"
_warned = False


def _silero() -> Any:
    """The ``silero_vad`` module, or a one-line FacevoxError saying how to install it."""
    import torch

    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError:
        raise FacevoxError(f"the voice-activity trim needs the silero-vad package: {INSTALL}", WHERE) from None
    finally:
        torch.set_num_threads(threads)  # silero_vad.model calls torch.set_num_threads(1) on import
    return silero_vad


@functools.cache
def vad_model() -> tuple[Any, str]:
    """silero-vad's model and which file it came from (``"onnx"`` or ``"jit"``), loaded once."""
    import warnings

    silero = _silero()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        kind = "jit"
    else:
        kind = "onnx"
    with warnings.catch_warnings():  # its loader uses the deprecated importlib.resources.path
        warnings.simplefilter("ignore", DeprecationWarning)
        return silero.load_silero_vad(onnx=kind == "onnx"), kind


def vad_settings() -> dict[str, str]:
    """What identifies the trim in an embedding store's key (package version and model file)."""
    from importlib.metadata import version

    return {"vad": f"silero-vad {version('silero-vad')} {vad_model()[1]}"}


def speech_segments(wave: np.ndarray, sr: int) -> list[tuple[int, int]]:
    """(start, end) sample indices of the speech silero-vad finds in ``wave`` (T,) at ``sr`` Hz."""
    import torch

    if sr != 8000 and sr % 16000 != 0:
        raise FacevoxError(f"silero-vad works at 8000 Hz or a multiple of 16000 Hz, got {sr} Hz", WHERE)
    model, _ = vad_model()
    audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    with torch.no_grad():
        stamps = _silero().get_speech_timestamps(audio, model, sampling_rate=sr)
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def trim_silence(wave: np.ndarray, sr: int, min_seconds: float = 0.0) -> np.ndarray:
    """The speech segments of ``wave`` (T,), concatenated (same dtype). When no speech is found, or less
    than ``min_seconds`` of it, the whole wave is kept and a warning is printed once per process."""
    global _warned
    wave = np.asarray(wave)
    kept = [wave[a:b] for a, b in speech_segments(wave, sr)]
    speech = np.concatenate(kept) if kept else wave[:0]
    if len(speech) == 0 or len(speech) < min_seconds * sr:
        if not _warned:
            _warned = True
            print(f"warning: {WHERE}: silero-vad found no speech (or under {min_seconds:g} s) in a recording; "
                  "its whole wave is kept (said once)", file=sys.stderr)
        return wave
    return speech
