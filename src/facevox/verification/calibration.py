"""Calibration of verification scores to log-likelihood ratios, and the decision threshold.

Score normalisation (AS-norm, :mod:`facevox.verification.scoring`) and calibration are separate
optional steps, as in WeSpeaker: score -> (AS-norm) -> (linear calibration llr = a * score + b).
The threshold is the one rule of :func:`facevox.metrics.threshold_at_far`: the lowest score whose
false accept rate on the calibration trials is at most the target. Both speaker and face models
fit theirs on the held-out classes of training (:func:`calibrate_held_out`), and the pretrained
backends ship one fitted by ``scripts/fit_backend_calibration.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.metrics import threshold_at_far


@dataclass
class Calibration:
    """Linear calibration llr = a * score + b, fitted by prior-weighted logistic regression, and the
    raw-score threshold giving ``target_far`` on the calibration trials."""

    a: float
    b: float
    threshold: float
    target_far: float
    n_target: int
    n_nontarget: int

    def llr(self, scores: np.ndarray | float) -> np.ndarray:
        return self.a * np.asarray(scores, dtype=np.float64) + self.b

    def probability(self, scores: np.ndarray | float, prior: float = 0.5) -> np.ndarray:
        """P(same | score) at the given prior of a target trial (monotone in the score when a > 0)."""
        logit = self.llr(scores) + np.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """From :meth:`to_dict`'s form (extra keys, e.g. where it was fitted, are ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def fit_calibration(scores: np.ndarray, labels: np.ndarray, target_far: float,
                    name: str = "scoring.target_far") -> Calibration:
    """Fit the calibration and the threshold for ``target_far`` on development trials.

    The objective is the prior-0.5 cross-entropy (BOSARIS style), so ``a * s + b`` is a
    log-likelihood ratio; ``name`` is what a bad ``target_far`` is blamed on."""
    from scipy.optimize import minimize

    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    tar, non = scores[labels == 1], scores[labels == 0]
    if len(tar) == 0 or len(non) == 0:
        raise FacevoxError("calibration needs both same (target) and different (non-target) trials", name)

    def objective(p: np.ndarray) -> float:
        return 0.5 * np.mean(np.logaddexp(0, -(p[0] * tar + p[1]))) + 0.5 * np.mean(np.logaddexp(0, p[0] * non + p[1]))

    threshold = threshold_at_far(non, target_far, name=name)  # a bad FAR fails before the fit
    x0 = np.array([1.0 / max(float(np.std(scores)), 1e-6), 0.0])  # scale-free start: cosines and distances alike
    x0[1] = -x0[0] * 0.5 * (float(np.mean(tar)) + float(np.mean(non)))
    res = minimize(objective, x0=x0, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000})
    return Calibration(float(res.x[0]), float(res.x[1]), threshold, float(target_far), len(tar), len(non))


def all_pairs(owners: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair ``i < j`` of items and whether both belong to one class: (i, j, same)."""
    owner = np.asarray(owners)
    i, j = np.triu_indices(len(owner), k=1)
    return i, j, owner[i] == owner[j]


def calibrate_held_out(emb: np.ndarray, owners: Sequence[str], target_far: float, similarity: str = "cosine",
                       name: str = "scoring.target_far") -> Calibration:
    """Calibration and threshold from all pairs of held-out classes' embeddings (N, D)."""
    from facevox.verification.scoring import pair_similarity

    i, j, same = all_pairs(owners)
    scores = pair_similarity(emb[i], emb[j], similarity)
    return fit_calibration(scores, same.astype(int), target_far, name=name)


def held_out_metrics(emb: np.ndarray, owners: Sequence[str], calibration: Calibration, similarity: str = "cosine"
                     ) -> dict[str, Any]:
    """What a model folder's ``metrics.json`` says it scored on the held-out classes of training: EER,
    minDCF, Cllr and the FAR / FRR at its threshold over all pairs of their embeddings (N, D). The
    same trials fitted the calibration, so the threshold figures are in-sample (the EER is not
    affected: it needs no threshold)."""
    from facevox.metrics import cllr, eer, min_dcf
    from facevox.verification.scoring import pair_similarity

    i, j, same = all_pairs(owners)
    scores = pair_similarity(emb[i], emb[j], similarity)
    labels = same.astype(int)
    accept = scores >= calibration.threshold
    return {"held_out_classes": len(set(owners)), "held_out_items": len(owners),
            "held_out_target_trials": int(labels.sum()), "held_out_nontarget_trials": int(len(labels) - labels.sum()),
            "held_out_eer": float(eer(scores, labels)[0]),
            "held_out_min_dcf_0.01": float(min_dcf(scores, labels, 0.01)[0]),
            "held_out_cllr": float(cllr(calibration.llr(scores), labels)),
            "held_out_far_at_threshold": float(accept[labels == 0].mean()),
            "held_out_frr_at_threshold": float((~accept[labels == 1]).mean())}


def backend_card(name: str) -> dict[str, Any] | None:
    """The calibration card shipped for a pretrained backend (``facevox/backends/<name>.json``:
    calibration, what it was fitted and evaluated on, the command), or None when none ships."""
    import json
    from importlib import resources

    f = resources.files("facevox").joinpath("backends", f"{name}.json")
    if not f.is_file():
        return None
    return json.loads(f.read_text(encoding="utf-8"))


def backend_calibration(name: str) -> Calibration | None:
    """The shipped calibration and threshold of a pretrained backend (None when none ships)."""
    card = backend_card(name)
    return Calibration.from_dict(card["calibration"]) if card else None
