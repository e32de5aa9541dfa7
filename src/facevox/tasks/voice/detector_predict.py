"""``facevox voice predict``: real or generated? label and confidence per audio file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facevox.audio.io import list_audio_files
from facevox.errors import FacevoxError
from facevox.scores import check_finite_scores
from facevox.tasks.fakeface.data import CLASSES
from facevox.tasks.voice.detector_data import load_detector
from facevox.textfile import shown_name


def expand_audio(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the audio files under them (recursive, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += list_audio_files(p)
        elif p.exists():
            out.append(p)
        else:
            raise FacevoxError("file not found", shown_name(p))
    if not out:
        raise FacevoxError("no audio files given")
    return out


def predict_voice(model_dir: str | Path, paths: Sequence[str | Path], *, device: str = "auto",
                  precision: str = "fp32", workers: int = 0) -> list[dict[str, Any]]:
    """One row per file: path, label (real/fake), confidence in that label, P(fake)."""
    det = load_detector(model_dir, "voice predict", device, precision)
    files = expand_audio(paths)
    p = det.score_files(files, workers=workers)
    check_finite_scores(p, [f"P(fake) of {f}" for f in files], det.where)
    rows = []
    for f, pf in zip(files, p, strict=True):
        fake = bool(pf >= det.threshold)
        rows.append({"path": str(f), "label": CLASSES[int(fake)], "confidence": float(pf if fake else 1 - pf),
                     "p_fake": float(pf)})
    return rows
