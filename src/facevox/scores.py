"""Reading and writing files of scored trials (one trial per line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError

_LABELS = {"1": 1, "0": 0, "target": 1, "nontarget": 0, "true": 1, "false": 0, "same": 1, "different": 0}


def read_score_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read trials as (scores (N,), labels (N,)).

    Columns are whitespace-separated; the label column is the first one whose every value is a
    label word (``1/0``, ``target/nontarget``, ``true/false``, ``same/different``), the score
    column the last other column that holds numbers. So ``score label``, ``label score`` and
    WeSpeaker's ``enroll test score target`` all work.
    """
    if not path.is_file():
        raise FacevoxError("score file not found", path)
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if not r[0].startswith("#")]
    if not rows:
        raise FacevoxError("score file is empty", path)
    width = len(rows[0])
    for i, row in enumerate(rows, 1):
        if len(row) != width:
            raise FacevoxError(f"line {i} has {len(row)} columns, the first line has {width}", path)
    columns = list(zip(*rows, strict=True))
    label_col = next((c for c, col in enumerate(columns) if all(v.lower() in _LABELS for v in col)), None)
    if label_col is None:
        raise FacevoxError("no label column (values 1/0 or target/nontarget)", path)
    score_col = None
    for c in range(width - 1, -1, -1):
        if c != label_col and all(_is_number(v) for v in columns[c]):
            score_col = c
            break
    if score_col is None:
        raise FacevoxError("no numeric score column", path)
    scores = np.array([float(v) for v in columns[score_col]], dtype=np.float64)
    labels = np.array([_LABELS[v.lower()] for v in columns[label_col]], dtype=np.int8)
    return scores, labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
