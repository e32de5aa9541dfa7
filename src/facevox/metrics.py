"""Evaluation metrics: verification (EER, minDCF, ROC, TAR@FAR, accuracy), calibration, image quality.

Conventions for the verification metrics
-----------------------------------------
* ``scores``: 1-D array of N finite floats; higher means "more likely the same identity / positive".
* ``labels``: 1-D array of N values in {0, 1} (or bool); 1 = target (positive, same identity).
* A trial is *accepted* (predicted positive) when ``score >= threshold``.
* Lists, numpy arrays and torch tensors are accepted; everything is converted to numpy.

All of them are built on one operating-point curve (each class sorted once, then merged and summed
cumulatively: no full argsort), with tied scores grouped into a single operating point as
``sklearn.metrics._binary_clf_curve`` does, so EER and minDCF on 10 million trials take about a
second each.  The curve starts with the
"accept nothing" point at threshold ``+inf`` and ends with the "accept everything" point at the
lowest score.  Invalid input raises :class:`~facevox.errors.FacevoxError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facevox.errors import FacevoxError

VERIFICATION_FARS = (1e-2, 1e-3)  # the false accept rates TAR is reported at by default
__all__ = [
    "KFoldResult",
    "accuracy_at",
    "average_precision",
    "VERIFICATION_FARS",
    "best_accuracy",
    "cllr",
    "det_points",
    "eer",
    "expected_calibration_error",
    "far_support_warnings",
    "kfold_accuracy",
    "min_dcf",
    "psnr",
    "roc_auc",
    "roc_points",
    "ssim",
    "tar_at_far",
    "tar_at_fars",
    "threshold_at_far",
    "verification_metrics",
]


# ---------------------------------------------------------------------------------------------
# input handling


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16: widen it (exactly) to float32
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise FacevoxError(f"{name} cannot be read as an array ({err})") from None


def _as_scores(x: Any, name: str = "scores") -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim != 1:
        raise FacevoxError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
    if a.size == 0:
        raise FacevoxError(f"{name} is empty")
    # Keep float32/float64 as given: sorting float32 is faster and ties are then judged in the
    # precision the scores were produced in.  Everything else becomes float64.
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype not in (np.float32, np.float64):
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise FacevoxError(f"{name} must be numeric, got dtype {a.dtype}") from None
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise FacevoxError(f"{name} must be finite, found {a[bad]} at index {bad}")
    return a


def _as_labels(x: Any, n: int, name: str = "labels", of: str = "scores") -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim != 1:
        raise FacevoxError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
    if a.shape[0] != n:
        raise FacevoxError(f"{of} and {name} differ in length ({n} vs {a.shape[0]})")
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        raise FacevoxError(f"{name} must be 0/1 or bool, got dtype {a.dtype}")
    is_one = a == 1
    if not (is_one | (a == 0)).all():
        bad = int(np.flatnonzero(~(is_one | (a == 0)))[0])
        raise FacevoxError(f"{name} must contain only 0 and 1, found {a[bad]} at index {bad}")
    return is_one


def _scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    return s, _as_labels(labels, s.shape[0])


def _check_prob(value: float, name: str, *, open_interval: bool) -> float:
    v = float(value)
    ok = (0.0 < v < 1.0) if open_interval else (0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise FacevoxError(f"{name} must be in {interval}, got {value}")
    return v


# ---------------------------------------------------------------------------------------------
# the operating-point curve


@dataclass(frozen=True)
class _Curve:
    """Operating points at every distinct threshold, thresholds descending.

    Index 0 is "accept nothing" (threshold +inf, tps = fps = 0); the last index accepts every
    trial.  ``tps[i]``/``fps[i]`` count targets/non-targets with ``score >= thresholds[i]``.
    """

    tps: np.ndarray  # int32 (int64 beyond 2**31 trials), (M+1,)
    fps: np.ndarray  # same
    thresholds: np.ndarray  # float64 (M+1,)
    n_pos: int
    n_neg: int

    def tpr(self) -> np.ndarray:
        return self.tps / self.n_pos

    def fpr(self) -> np.ndarray:
        return self.fps / self.n_neg

    def fnr(self) -> np.ndarray:
        # (n_pos - tps) / n_pos rather than 1 - tpr: exact for the counts, no cancellation
        return (self.n_pos - self.tps) / self.n_pos


def _curve(s: np.ndarray, y: np.ndarray, *, need_pos: bool = True, need_neg: bool = True) -> _Curve:
    n = s.shape[0]
    pos_sorted = s[y]
    pos_sorted.sort()  # in place: the masked copies are ours, and fresh pages are costly at 10M+
    neg_sorted = s[~y]
    neg_sorted.sort()
    n_pos, n_neg = pos_sorted.shape[0], neg_sorted.shape[0]
    if need_pos and n_pos == 0:
        raise FacevoxError("labels contain no targets (1s); this metric needs both classes")
    if need_neg and n_neg == 0:
        raise FacevoxError("labels contain no non-targets (0s); this metric needs both classes")
    # Merge the two sorted classes instead of argsorting all N scores: two sorts plus a binary
    # search for the places of the targets is about 2x faster than one argsort and the
    # random-access gathers it needs.
    pos_at = np.searchsorted(neg_sorted, pos_sorted, side="left")
    pos_at += np.arange(n_pos)
    merged_y = np.zeros(n, dtype=np.bool_)
    merged_y[pos_at] = True
    merged_s = np.empty(n, dtype=s.dtype)
    merged_s[pos_at] = pos_sorted
    merged_s[~merged_y] = neg_sorted
    del pos_sorted, neg_sorted, pos_at
    # first index (ascending order) of every run of equal scores: a run is one operating point
    is_start = np.empty(n, dtype=np.bool_)
    is_start[0] = True
    np.not_equal(merged_s[1:], merged_s[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)[::-1]  # descending thresholds
    del is_start
    m = starts.shape[0]
    # counts fit in int32 below 2**31 trials and halve the memory traffic; products of counts
    # are always formed in float64 or Python ints below
    count_dtype = np.int32 if n < 2**31 - 1 else np.int64
    thresholds = np.empty(m + 1, dtype=np.float64)
    thresholds[0] = np.inf
    thresholds[1:] = merged_s[starts]
    del merged_s
    below = np.empty(n + 1, dtype=count_dtype)  # below[i] = targets among the i lowest scores
    below[0] = 0
    np.cumsum(merged_y, out=below[1:])
    tps = np.empty(m + 1, dtype=count_dtype)
    tps[0] = 0
    np.take(below, starts, out=tps[1:])
    del below
    np.subtract(n_pos, tps[1:], out=tps[1:])  # targets with score >= threshold
    fps = np.empty(m + 1, dtype=count_dtype)
    fps[0] = 0
    np.subtract(n, starts, out=fps[1:], casting="unsafe")  # trials with score >= threshold
    fps[1:] -= tps[1:]
    return _Curve(tps=tps, fps=fps, thresholds=thresholds, n_pos=n_pos, n_neg=n_neg)


def _eer(c: _Curve) -> tuple[float, float]:
    # FNR - FPR is strictly decreasing along the curve (every point adds a target or a
    # non-target): +1 at "accept nothing", -1 at "accept everything".  Bisect for the first point
    # with FNR <= FPR, comparing (n_pos - tps) / n_pos <= fps / n_neg exactly in Python ints.
    n_pos, n_neg = c.n_pos, c.n_neg
    lo, hi = 1, c.tps.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (n_pos - int(c.tps[mid])) * n_neg <= int(c.fps[mid]) * n_pos:
            hi = mid
        else:
            lo = mid + 1
    i = lo
    fpr = (c.fps[i - 1] / n_neg, c.fps[i] / n_neg)
    gap = ((n_pos - c.tps[i - 1]) / n_pos - fpr[0], (n_pos - c.tps[i]) / n_pos - fpr[1])
    if gap[1] == 0:
        return float(fpr[1]), float(c.thresholds[i])
    w = gap[0] / (gap[0] - gap[1])  # where the segment between points i-1 and i crosses 0
    value = fpr[0] + w * (fpr[1] - fpr[0])
    t0, t1 = c.thresholds[i - 1], c.thresholds[i]
    # when the upper neighbour is the +inf point there is nothing to interpolate with
    threshold = t1 if i == 1 else t0 + w * (t1 - t0)
    return float(value), float(threshold)


def _min_dcf(c: _Curve, p_target: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    dcf = c.fps * (c_fa * (1.0 - p_target) / c.n_neg)
    dcf += (c.n_pos - c.tps) * (c_miss * p_target / c.n_pos)
    i = int(np.argmin(dcf))
    c_default = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf[i] / c_default), float(c.thresholds[i])


def _roc_auc(c: _Curve) -> float:
    # trapezoids on the integer counts, one division at the end (exact for the tie diagonals)
    tps = c.tps.astype(np.float64)
    area2 = np.dot(np.diff(c.fps).astype(np.float64), tps[1:] + tps[:-1])
    return float(area2 / (2.0 * c.n_pos * c.n_neg))


def _average_precision(c: _Curve) -> float:
    tps, fps = c.tps[1:], c.fps[1:]
    precision = tps / (tps + fps)
    return float(np.dot(np.diff(c.tps), precision) / c.n_pos)


def _best_accuracy(c: _Curve) -> tuple[float, float]:
    correct = c.tps + (c.n_neg - c.fps)
    i = int(np.argmax(correct))  # first maximum = highest threshold among equally good ones
    n = c.n_pos + c.n_neg
    last = c.thresholds.shape[0] - 1
    if i == 0:
        threshold = math.inf
    elif i == last:
        threshold = -math.inf
    else:
        hi, lo = c.thresholds[i], c.thresholds[i + 1]
        threshold = 0.5 * hi + 0.5 * lo  # halves first: no overflow for huge scores
        if not lo < threshold <= hi:  # adjacent floats: the midpoint rounds onto lo
            threshold = hi
    return float(correct[i] / n), float(threshold)


def _far_index(fpr: np.ndarray, far: float) -> int:
    """The one FAR rule of this module: the index of the last (largest) accept set along the curve whose
    false accept rate ``fps / n_neg`` is still ``<= far``; the +inf point (index 0) always is."""
    return int(np.searchsorted(fpr, far, side="right")) - 1


def _tar_at_far(c: _Curve, far: float, fpr: np.ndarray | None = None) -> tuple[float, float]:
    # ``fpr`` lets callers asking for several rates compute c.fpr() once.
    i = _far_index(c.fpr() if fpr is None else fpr, far)
    return float(c.tps[i] / c.n_pos), float(c.thresholds[i])


# ---------------------------------------------------------------------------------------------
# public verification metrics


def roc_points(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct threshold.

    Args:
        scores: (N,) floats, higher = more likely target.
        labels: (N,) 0/1 or bool, 1 = target.  Both classes must be present.

    Returns:
        ``(fpr, tpr, thresholds)``, each (M+1,) float64 where M is the number of distinct scores.
        Thresholds are descending; index 0 is the point (0, 0) at threshold ``+inf``.  Point i
        accepts the trials with ``score >= thresholds[i]``.  Identical to
        ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.
    """
    c = _curve(*_scores_labels(scores, labels))
    return c.fpr(), c.tpr(), c.thresholds


def det_points(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET curve: ``(fpr, fnr, thresholds)``, each (M+1,), as :func:`roc_points` with fnr = 1 - tpr."""
    c = _curve(*_scores_labels(scores, labels))
    return c.fpr(), c.fnr(), c.thresholds


def eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate and its threshold.

    Args:
        scores: (N,) floats.  labels: (N,) 0/1, both classes present.

    Returns:
        ``(eer, threshold)``.  FNR - FPR falls from +1 (accept nothing) to -1 (accept everything)
        along the curve; the EER is where it reaches 0, linearly interpolated between the two
        neighbouring operating points (no convex hull), as in WeSpeaker/SpeechBrain-style
        evaluations.  The threshold is interpolated between those two points' thresholds with the
        same weight (when the crossing lies at an operating point, that point's threshold; when
        the upper neighbour is the +inf point, the lower point's threshold).  Perfectly separated
        scores give 0, fully inverted ones give 1.
    """
    return _eer(_curve(*_scores_labels(scores, labels)))


def min_dcf(
    scores: Any, labels: Any, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> tuple[float, float]:
    """Normalised minimum detection cost function (NIST SRE) and its threshold.

    ``DCF(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target)``, divided by
    ``min(c_miss * p_target, c_fa * (1 - p_target))`` (the cost of always accepting or always
    rejecting), minimised over all operating points including "accept nothing" (threshold +inf),
    so the result lies in [0, 1].

    Args:
        scores: (N,) floats.  labels: (N,) 0/1, both classes present.
        p_target: prior of a target trial, in (0, 1).  c_miss, c_fa: positive costs.

    Returns:
        ``(min_dcf, threshold)``; on ties the highest threshold reaching the minimum.
    """
    p = _check_prob(p_target, "p_target", open_interval=True)
    if not (c_miss > 0 and c_fa > 0):
        raise FacevoxError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    return _min_dcf(_curve(*_scores_labels(scores, labels)), p, float(c_miss), float(c_fa))


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve; tied scores count as half (same as ``sklearn.metrics.roc_auc_score``).

    scores: (N,) floats; labels: (N,) 0/1 with both classes present.
    """
    return _roc_auc(_curve(*_scores_labels(scores, labels)))


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision, ``sum_i (R_i - R_{i-1}) * P_i`` over the distinct thresholds (descending).

    Same as ``sklearn.metrics.average_precision_score`` (no interpolation, ties as one point).
    scores: (N,) floats; labels: (N,) 0/1 with at least one target (no non-targets gives 1.0).
    """
    return _average_precision(_curve(*_scores_labels(scores, labels), need_neg=False))


def accuracy_at(scores: Any, labels: Any, threshold: float) -> float:
    """Fraction of trials classified correctly when accepting ``score >= threshold``.

    scores: (N,) floats; labels: (N,) 0/1 (one class alone is fine).  ``threshold`` may be ±inf.
    """
    s, y = _scores_labels(scores, labels)
    t = float(threshold)
    if math.isnan(t):
        raise FacevoxError("threshold must not be NaN")
    return float(np.count_nonzero((s >= t) == y) / s.shape[0])


def detection_summary(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """``{"average_precision", "roc_auc", "accuracy"}`` of a detector's scores; accuracy at ``threshold``."""
    return {"average_precision": average_precision(scores, labels), "roc_auc": roc_auc(scores, labels),
            "accuracy": accuracy_at(scores, labels, threshold)}


def best_accuracy(scores: Any, labels: Any) -> tuple[float, float]:
    """Highest accuracy over all thresholds, and a threshold reaching it.

    scores: (N,) floats; labels: (N,) 0/1 (one class alone is fine).

    The threshold returned is the midpoint between the lowest accepted distinct score and the
    next lower distinct score, so it generalises to unseen scores symmetrically; ``+inf`` when
    rejecting everything is best, ``-inf`` when accepting everything is.  On ties the highest
    threshold (smallest accept set) wins.
    """
    return _best_accuracy(_curve(*_scores_labels(scores, labels), need_pos=False, need_neg=False))


@dataclass(frozen=True)
class KFoldResult:
    """Result of :func:`kfold_accuracy`.

    ``accuracies``/``thresholds``: (K,) float64, one per held-out fold (in order of fold id).
    ``std`` is the population standard deviation (numpy's default ddof=0), as in the LFW
    reference evaluation code.
    """

    mean: float
    std: float
    accuracies: np.ndarray
    thresholds: np.ndarray


def kfold_accuracy(scores: Any, labels: Any, folds: int | Any = 10) -> KFoldResult:
    """Cross-validated verification accuracy (the LFW / "unrestricted" protocol).

    Args:
        scores: (N,) floats.  labels: (N,) 0/1.
        folds: an int K (2 <= K <= N): K consecutive folds in the given order, sizes as
            ``np.array_split`` (= ``sklearn.model_selection.KFold(K, shuffle=False)``); the
            pairs.txt of LFW is laid out this way.  Or an (N,) integer array of fold ids (at least
            two distinct ids).

    For each fold the threshold is :func:`best_accuracy`'s threshold on all the other folds,
    and the accuracy is measured on the held-out fold with it.
    """
    s, y = _scores_labels(scores, labels)
    n = s.shape[0]
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        k = int(folds)
        if not 2 <= k <= n:
            raise FacevoxError(f"folds must be between 2 and the number of trials ({n}), got {k}")
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        fold_ids = np.repeat(np.arange(k), sizes)
    else:
        fold_ids = _to_numpy(folds, "folds")
        if fold_ids.ndim != 1 or fold_ids.shape[0] != n:
            raise FacevoxError(
                f"folds must be an int or a 1-D array of {n} fold ids, got shape {tuple(fold_ids.shape)}"
            )
        if fold_ids.dtype.kind not in "iu":
            raise FacevoxError(f"fold ids must be integers, got dtype {fold_ids.dtype}")
    ids = np.unique(fold_ids)
    if ids.shape[0] < 2:
        raise FacevoxError("folds must contain at least two distinct fold ids")
    accuracies = np.empty(ids.shape[0])
    thresholds = np.empty(ids.shape[0])
    for j, fold in enumerate(ids):
        test = fold_ids == fold
        _, thresholds[j] = _best_accuracy(_curve(s[~test], y[~test], need_pos=False, need_neg=False))
        accuracies[j] = np.count_nonzero((s[test] >= thresholds[j]) == y[test]) / np.count_nonzero(test)
    return KFoldResult(float(accuracies.mean()), float(accuracies.std()), accuracies, thresholds)


def tar_at_far(scores: Any, labels: Any, far: float) -> tuple[float, float]:
    """True accept rate at a false accept rate.

    Takes the largest accept set (lowest threshold) whose false accept rate is ``<= far`` and
    returns ``(tar, threshold)``.  When even the highest score lets too many non-targets in, that
    is the "accept nothing" point: ``(0.0, inf)``.
    scores: (N,) floats; labels: (N,) 0/1, both classes present; far in [0, 1].

    The accept set is chosen by the same rule as :func:`threshold_at_far` (so both accept the same
    non-targets), but the threshold reported differs on purpose: here it is the operating point's own
    score (the lowest accepted score, target or not, as ``sklearn.metrics.roc_curve`` reports it),
    which is what a TAR@FAR table quotes; :func:`threshold_at_far` returns the lowest value that
    still rejects the highest rejected non-target, the threshold to store for scoring unseen trials.
    """
    f = _check_prob(far, "far", open_interval=False)
    return _tar_at_far(_curve(*_scores_labels(scores, labels)), f)


def tar_at_fars(scores: Any, labels: Any, fars: Sequence[float]) -> dict[float, float]:
    """:func:`tar_at_far` for several false accept rates at once (one curve): ``{far: tar}``."""
    checked = [_check_prob(f, "far", open_interval=False) for f in fars]
    c = _curve(*_scores_labels(scores, labels))
    fpr = c.fpr()
    return {f: _tar_at_far(c, f, fpr)[0] for f in checked}


def threshold_at_far(nontarget_scores: Any, far: float, *, name: str = "far") -> float:
    """The lowest threshold whose false accept rate (share of non-target scores ``>=`` it) is ``<= far``.

    Args:
        nontarget_scores: (N,) finite floats of non-target trials.  An empty array gives ``0.0``.
        far: the false accept rate allowed, in [0, 1].
        name: what a bad ``far`` is blamed on (the ``where`` of the error), e.g. ``scoring.target_far``.

    Returns:
        When every non-target may be accepted, the lowest non-target score; otherwise the float just
        above the highest non-target score that must be rejected (ties are rejected together).  The
        accept set is chosen by the same rule as :func:`tar_at_far`.
    """
    f = float(far)
    if not 0.0 <= f <= 1.0:
        raise FacevoxError(f"must be in [0, 1], got {far}", name)
    a = _to_numpy(nontarget_scores, "nontarget_scores")
    if a.size == 0:
        return 0.0
    s = _as_scores(a, "nontarget_scores")
    c = _curve(s, np.zeros(s.shape[0], dtype=np.bool_), need_pos=False)
    i = _far_index(c.fpr(), f)
    if i == c.thresholds.shape[0] - 1:  # everything may be accepted
        return float(c.thresholds[i])
    return float(np.nextafter(c.thresholds[i + 1], np.inf))  # just above the highest rejected score


def far_support_warnings(n_nontarget: int, fars: Sequence[float]) -> list[str]:
    """One line per false accept rate that ``n_nontarget`` non-target trials cannot measure reliably.

    A TAR@FAR from fewer than ``10 / far`` non-target trials rests on fewer than 10 false accepts.
    Lines read ``TAR@FAR=0.001 from 500 non-target trials (fewer than 10/FAR = 10000): not reliable``
    (print them with a ``warning: `` prefix).  ``far = 0`` is never warned about (no count suffices).
    """
    out = []
    for far in fars:
        f = float(far)
        if f > 0 and n_nontarget < 10.0 / f:
            out.append(f"TAR@FAR={f:g} from {int(n_nontarget)} non-target trials "
                       f"(fewer than 10/FAR = {10.0 / f:g}): not reliable")
    return out


def cllr(scores_llr: Any, labels: Any) -> float:
    """Log-likelihood-ratio cost in bits (Brümmer & du Preez 2006; BOSARIS ``cllr``).

    ``Cllr = 1/(2 ln 2) * (mean_tar log(1 + exp(-llr)) + mean_non log(1 + exp(llr)))``: 1.0 for a
    system that always says llr = 0, 0 for perfectly separated, confident llrs.

    Args:
        scores_llr: (N,) natural-log likelihood ratios.  labels: (N,) 0/1, both classes present.
    """
    s, y = _scores_labels(scores_llr, labels)
    if not y.any():
        raise FacevoxError("labels contain no targets (1s); this metric needs both classes")
    if y.all():
        raise FacevoxError("labels contain no non-targets (0s); this metric needs both classes")
    s = s.astype(np.float64)
    return float((np.mean(np.logaddexp(0.0, -s[y])) + np.mean(np.logaddexp(0.0, s[~y]))) / (2.0 * math.log(2.0)))


def verification_metrics(
    scores: Any,
    labels: Any,
    p_targets: Sequence[float] = (0.01, 0.05),
    fars: Sequence[float] = VERIFICATION_FARS,
) -> dict[str, float]:
    """All verification metrics from one curve (one sorting pass), as a JSON-ready dict of floats/ints.

    Keys: ``eer``, ``eer_threshold``, ``min_dcf_<p>``, ``min_dcf_<p>_threshold`` for each p in
    ``p_targets``, ``roc_auc``, ``average_precision``, ``best_accuracy``,
    ``best_accuracy_threshold``, ``tar@far=<far>``, ``tar@far=<far>_threshold`` for each far,
    ``n_target``, ``n_nontarget``; numbers in the keys are formatted with ``{:g}``
    (``min_dcf_0.01``, ``tar@far=0.001``).  Thresholds may be ±inf (see the single metrics).
    """
    checked_p = [_check_prob(p, "p_target", open_interval=True) for p in p_targets]
    checked_far = [_check_prob(f, "far", open_interval=False) for f in fars]
    c = _curve(*_scores_labels(scores, labels))
    out: dict[str, float] = {}
    out["eer"], out["eer_threshold"] = _eer(c)
    for p in checked_p:
        out[f"min_dcf_{p:g}"], out[f"min_dcf_{p:g}_threshold"] = _min_dcf(c, p, 1.0, 1.0)
    out["roc_auc"] = _roc_auc(c)
    out["average_precision"] = _average_precision(c)
    out["best_accuracy"], out["best_accuracy_threshold"] = _best_accuracy(c)
    fpr = c.fpr()
    for f in checked_far:
        out[f"tar@far={f:g}"], out[f"tar@far={f:g}_threshold"] = _tar_at_far(c, f, fpr)
    out["n_target"] = c.n_pos
    out["n_nontarget"] = c.n_neg
    return out


# ---------------------------------------------------------------------------------------------
# calibration


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence (Guo et al. 2017).

    Args:
        probs: (N,) P(label == 1) for a binary problem, or (N, C) class probabilities.
        labels: (N,) 0/1 for the binary case, integers in [0, C) for the (N, C) case.
        n_bins: number of equal-width confidence bins on [0, 1].

    The confidence is the probability of the predicted class: ``max(p, 1 - p)`` with prediction
    ``p >= 0.5`` in the binary case, the row maximum with prediction argmax otherwise.  Bins are
    ``(m/n_bins, (m+1)/n_bins]`` (confidence 0 goes to the first bin), and
    ``ECE = sum_m |B_m|/N * |accuracy(B_m) - mean confidence(B_m)|``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise FacevoxError(f"n_bins must be a positive integer, got {n_bins}")
    p = _to_numpy(probs, "probs")
    if p.ndim == 1:
        p = _as_scores(p, "probs").astype(np.float64)
        y = _as_labels(labels, p.shape[0], of="probs")
        predicted = p >= 0.5
        confidence = np.where(predicted, p, 1.0 - p)
        correct = predicted == y
    elif p.ndim == 2:
        if p.shape[0] == 0 or p.shape[1] < 2:
            raise FacevoxError(f"probs must be (N, C) with N >= 1 and C >= 2, got {tuple(p.shape)}")
        try:
            p = p.astype(np.float64)
        except (TypeError, ValueError):
            raise FacevoxError(f"probs must be numeric, got dtype {p.dtype}") from None
        if not np.isfinite(p).all():
            raise FacevoxError("probs must be finite")
        y = _to_numpy(labels, "labels")
        if y.ndim != 1 or y.shape[0] != p.shape[0]:
            raise FacevoxError(f"labels must be 1-D with {p.shape[0]} entries, got shape {tuple(y.shape)}")
        if y.dtype.kind not in "iu" or (y < 0).any() or (y >= p.shape[1]).any():
            raise FacevoxError(f"labels must be integers in [0, {p.shape[1]})")
        predicted_class = p.argmax(axis=1)
        confidence = p[np.arange(p.shape[0]), predicted_class]
        correct = predicted_class == y
    else:
        raise FacevoxError(f"probs must be 1-D or 2-D, got shape {tuple(p.shape)}")
    if (p < 0).any() or (p > 1).any():
        raise FacevoxError("probs must lie in [0, 1] (pass probabilities, not logits)")
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins) - np.bincount(
        bins, weights=confidence, minlength=n_bins
    )
    # |sum(correct) - sum(conf)| per bin equals |B_m| * |acc(B_m) - conf(B_m)|
    return float(np.abs(gap[count > 0]).sum() / confidence.shape[0])


# ---------------------------------------------------------------------------------------------
# image quality


def _image_pair(x: Any, y: Any, data_range: float) -> tuple[torch.Tensor, torch.Tensor, bool]:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y, device=x.device)
    if x.shape != y.shape:
        raise FacevoxError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim not in (3, 4):
        raise FacevoxError(f"images must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if not data_range > 0:
        raise FacevoxError(f"data_range must be positive, got {data_range}")
    # at least float32; float64 stays float64
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    single = x.ndim == 3
    if single:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    return x.to(dtype), y.to(dtype), single


def psnr(x: Any, y: Any, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 * log10(data_range**2 / MSE)`` in dB.

    Args:
        x, y: (N, C, H, W) or (C, H, W) tensors (or arrays) of the same shape.
        data_range: max - min of the value range (1.0 for [0, 1] images, 255 for uint8).

    Returns:
        (N,) tensor, or a 0-d tensor for a single (C, H, W) image; float32 unless an input is
        float64.  Identical images give ``inf``.
    """
    xf, yf, single = _image_pair(x, y, data_range)
    mse = (xf - yf).pow(2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(float(data_range) ** 2 / mse)
    return out[0] if single else out


def _gaussian_window(window_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r = (window_size - 1) / 2
    g = torch.exp(-((torch.arange(window_size, dtype=torch.float64) - r) ** 2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(x: Any, y: Any, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity per image (Wang et al. 2004).

    Gaussian window (``window_size`` taps, std ``sigma``), K1 = 0.01, K2 = 0.03, population
    (not sample) covariances, "valid" convolution (no padding: only windows fully inside the
    image), SSIM map averaged over pixels and channels.  Matches
    ``skimage.metrics.structural_similarity(x, y, data_range=..., channel_axis=0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` for the defaults.

    Args:
        x, y: (N, C, H, W) or (C, H, W), same shape, H and W >= window_size.
        data_range: max - min of the value range.  window_size: odd.  sigma: > 0.

    Returns:
        (N,) tensor, or a 0-d tensor for a single (C, H, W) image; float32 unless an input is
        float64.
    """
    xf, yf, single = _image_pair(x, y, data_range)
    odd = isinstance(window_size, int) and not isinstance(window_size, bool) and window_size % 2 == 1
    if not odd or window_size < 1:
        raise FacevoxError(f"window_size must be a positive odd integer, got {window_size}")
    if not sigma > 0:
        raise FacevoxError(f"sigma must be positive, got {sigma}")
    n, ch, h, w = xf.shape
    if h < window_size or w < window_size:
        raise FacevoxError(f"images must be at least {window_size}x{window_size} for SSIM, got {h}x{w}")
    g = _gaussian_window(window_size, sigma, xf.dtype, xf.device)
    kernel_h = g.view(1, 1, window_size, 1).expand(ch, 1, window_size, 1)
    kernel_w = g.view(1, 1, 1, window_size).expand(ch, 1, 1, window_size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        # separable Gaussian, depthwise (groups=ch) so channels stay independent
        return F.conv2d(F.conv2d(t, kernel_h, groups=ch), kernel_w, groups=ch)

    # one batched blur for the five moment images
    moments = blur(torch.cat([xf, yf, xf * xf, yf * yf, xf * yf], dim=0))
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(n, dim=0)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    out = ssim_map.flatten(1).mean(dim=1)
    return out[0] if single else out
