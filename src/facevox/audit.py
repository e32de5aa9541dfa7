"""Bias audits: error rates of a binary decision per group, and the largest gap between groups.

For every group column (``sex``, ``age``, ``skin``...) and every value in it, the audit gives
the number of samples, the accuracy, the false-positive rate (negatives called positive) and the
false-negative rate (positives missed), then the largest difference of each rate between two
groups of that column. Rates that a group cannot have (an FPR for a group with no negatives)
are ``None`` and stay out of the gaps. Groups smaller than ``min_count`` are reported but
left out of the gaps: a gap between two tiny groups is noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _rates(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    neg, pos = ~y, y
    return {
        "n": int(len(y)),
        "n_positive": int(pos.sum()),
        "accuracy": float(np.mean(pred == y)) if len(y) else None,
        "fpr": float(np.mean(pred[neg])) if neg.any() else None,
        "fnr": float(np.mean(~pred[pos])) if pos.any() else None,
    }


def group_metrics(scores: Sequence[float], labels: Sequence[int], groups: Mapping[str, Sequence[str]],
                  threshold: float = 0.5, min_count: int = 5) -> dict[str, Any]:
    """``{column: {"groups": {value: rates}, "gaps": {rate: (gap, worst, best)}}}``.

    ``scores >= threshold`` is the positive decision; ``groups`` maps a column name to one value
    per sample (empty values are grouped as ``"(missing)"``).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pred = s >= threshold
    out: dict[str, Any] = {}
    for column, values in groups.items():
        v = np.array([str(x) if str(x) else "(missing)" for x in values])
        if len(v) != len(y):
            raise ValueError(f"group column '{column}' has {len(v)} values for {len(y)} samples")
        per = {g: _rates(pred[v == g], y[v == g]) for g in sorted(set(v))}
        gaps = {}
        for rate in ("accuracy", "fpr", "fnr"):
            vals = {g: r[rate] for g, r in per.items() if r[rate] is not None and r["n"] >= min_count}
            if len(vals) >= 2:
                hi, lo = max(vals, key=vals.get), min(vals, key=vals.get)
                worst, best = (lo, hi) if rate == "accuracy" else (hi, lo)
                gaps[rate] = {"gap": vals[hi] - vals[lo], "worst": worst, "best": best}
        out[column] = {"groups": per, "gaps": gaps}
    return out
