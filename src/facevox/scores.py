"""Reading and writing files of scored trials (one trial per line), and checking scores before a decision."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.textfile import read_text, shown_name

_LABELS = {"1": 1, "0": 0, "target": 1, "nontarget": 0, "true": 1, "false": 0, "same": 1, "different": 0}


def read_score_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read trials as (scores (N,), labels (N,)).

    Columns are whitespace-separated; the label column is the first one whose every value is a
    label word (``1/0``, ``target/nontarget``, ``true/false``, ``same/different``), the score
    column the last other column that holds numbers. So ``score label``, ``label score`` and
    WeSpeaker's ``enroll test score target`` all work. A NaN or infinite score is an error
    naming its line; so is a file that is not UTF-8 text.
    """
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("score file not found", shown_name(path))
    numbered = [(i, line.split()) for i, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    numbered = [(i, r) for i, r in numbered if not r[0].startswith("#")]
    if not numbered:
        raise FacevoxError("score file is empty", shown_name(path))
    rows = [r for _, r in numbered]
    width = len(rows[0])
    for i, row in numbered:
        if len(row) != width:
            raise FacevoxError(f"line {i} has {len(row)} columns, the first line has {width}", shown_name(path))
    columns = list(zip(*rows, strict=True))
    label_col = next((c for c, col in enumerate(columns) if all(v.lower() in _LABELS for v in col)), None)
    if label_col is None:
        raise FacevoxError("no label column (values 1/0 or target/nontarget)", shown_name(path))
    score_col = None
    for c in range(width - 1, -1, -1):
        if c != label_col and all(_is_number(v) for v in columns[c]):
            score_col = c
            break
    if score_col is None:
        raise FacevoxError("no numeric score column", shown_name(path))
    scores = np.array([float(v) for v in columns[score_col]], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        line = numbered[int(bad[0])][0]
        raise FacevoxError(f"line {line}: score {columns[score_col][bad[0]]} is not a finite number", shown_name(path))
    labels = np.array([_LABELS[v.lower()] for v in columns[label_col]], dtype=np.int8)
    if labels.all() or not labels.any():
        only = "target" if labels.all() else "non-target"
        raise FacevoxError(f"every trial is {only}: verification needs both target and non-target trials",
                           shown_name(path))
    return scores, labels


def check_finite_scores(scores: Sequence[float] | np.ndarray, items: Sequence[str], where: str | Path) -> None:
    """A one-line error for the first NaN or infinite score: no decision or metric is made from it.

    ``items`` names what each score is of (``"a.wav and b.wav"``); ``where`` is the model that made them.
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise FacevoxError(f"the score of {shown_name(items[i])} is {_word(values[i])}{more}: the model produced "
                           "NaN or infinite values, so no decision is made", shown_name(where))


def _word(v: float) -> str:
    return "NaN" if math.isnan(v) else ("infinite" if v > 0 else "-infinite")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
