"""``facevox voice predict``: real or generated? label and confidence per audio file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facevox.audio.io import expand_audio_paths
from facevox.scores import check_finite_scores
from facevox.tasks.fakeface.data import CLASSES
from facevox.tasks.voice.detector_data import load_detector


def predict_voice(model_dir: str | Path, paths: Sequence[str | Path], *, device: str = "auto",
                  precision: str = "fp32", workers: int = 0) -> list[dict[str, Any]]:
    """One row per file: path, label (real/fake), confidence in that label, P(fake)."""
    det = load_detector(model_dir, "voice predict", device, precision)
    files = expand_audio_paths(paths)
    p = det.score_files(files, workers=workers)
    check_finite_scores(p, [f"P(fake) of {f}" for f in files], det.where)
    rows = []
    for f, pf in zip(files, p, strict=True):
        fake = bool(pf >= det.threshold)
        rows.append({"path": str(f), "label": CLASSES[int(fake)], "confidence": float(pf if fake else 1 - pf),
                     "p_fake": float(pf)})
    return rows
