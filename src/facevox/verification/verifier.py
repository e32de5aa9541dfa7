"""What speaker and face verification share once inputs are embedded: the similarity, the
decision (threshold, calibrated P(same), llr) and identification against a gallery. The tasks
subclass :class:`Verifier` and add only the decoding and the network (:meth:`Verifier.embed_paths`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.verification.calibration import Calibration
from facevox.verification.scoring import as_norm_pairs, cohort_stats, pair_similarity, top_k, unit


class Verifier:
    """Base of :class:`~facevox.tasks.speaker.evaluate.SpeakerScorer` and
    :class:`~facevox.tasks.face.evaluate.FaceScorer`.

    Attributes a subclass sets: ``name`` (shown in reports), ``where`` (what a non-finite score
    is blamed on), ``similarity`` (``"cosine"`` or ``"euclidean"``), ``calibration`` (or None)
    and ``threshold`` (the decision threshold, None when unknown).
    """

    name: str = "verifier"
    where: str | Path = "verifier"
    similarity: str = "cosine"
    calibration: Calibration | None = None
    threshold: float | None = None

    def embed_paths(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (n, D) of files and which were read (n,) bool. Implemented by the task."""
        raise NotImplementedError

    def score(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """Similarity of embeddings, row-wise (higher = more alike)."""
        return pair_similarity(ea, eb, self.similarity)

    def cohort(self, groups: dict[str, Sequence[Path]], where: str | Path) -> np.ndarray:
        """AS-norm cohort (C, D): the mean unit embedding of each identity of ``groups`` (files read)."""
        from facevox.verification.identification import templates

        files = [p for n in sorted(groups) for p in groups[n]]
        owners = [n for n in sorted(groups) for _ in groups[n]]
        emb, ok = self.embed_paths(files)
        if not ok.any():
            raise FacevoxError("no file of the cohort could be read", where)
        return templates(emb[ok], [o for o, good in zip(owners, ok, strict=True) if good])[0]

    def check_as_norm(self) -> None:
        """A one-line error unless this scorer's scores are cosines (what AS-norm normalises)."""
        if self.similarity != "cosine":
            raise FacevoxError(f"AS-norm normalises cosine scores; {self.name} scores by {self.similarity} distance",
                               "--asnorm-top-k")

    def as_norm(self, scores: np.ndarray, emb: np.ndarray, ia: np.ndarray, ib: np.ndarray, cohort: np.ndarray,
                top_k: int) -> np.ndarray:
        """AS-norm1 of trial ``scores`` (rows ``ia``, ``ib`` of the unique embeddings ``emb``) with each
        side's ``top_k`` best cosines against ``cohort``; cosine scorers only."""
        self.check_as_norm()
        mu, sd = cohort_stats(emb, cohort, top_k)
        return as_norm_pairs(scores, ia, ib, mu, sd)

    def decide(self, score: float) -> dict[str, Any]:
        """``score`` plus, when known, ``same`` and ``threshold``; with a calibration also
        ``p_same`` (at prior 0.5) and ``llr``."""
        out: dict[str, Any] = {"score": float(score)}
        thr = self.threshold if self.threshold is not None else (
            self.calibration.threshold if self.calibration is not None else None)
        if thr is not None:
            out["same"] = bool(score >= thr)
            out["threshold"] = float(thr)
        if self.calibration is not None:
            out["p_same"] = float(self.calibration.probability(score))
            out["llr"] = float(self.calibration.llr(score))
        return out

    def search(self, probes: np.ndarray, gallery: np.ndarray, identities: Sequence[str], k: int = 1
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The ``k`` best templates of each probe (P, D) against a gallery (G, D) whose rows belong to
        ``identities``: ``(scores (P, k), template indices (P, k), template names)``, best first.

        Templates are the mean unit embedding per identity (cosine) or the mean embedding
        (euclidean); the search makes no (P, G) matrix (faiss when installed)."""
        from facevox.verification.identification import templates

        if self.similarity == "cosine":
            t, names = templates(np.asarray(gallery), list(identities))
            metric = "ip"
            probes = unit(np.asarray(probes, dtype=np.float64))
        else:
            names = sorted(set(identities))
            owner = np.asarray(identities)
            t = np.stack([np.asarray(gallery)[owner == n].mean(0) for n in names])
            metric = "l2"
        scores, idx = top_k(np.asarray(probes), t, k, metric=metric)
        return scores, idx, names

    def identify_embeddings(self, probes: np.ndarray, gallery: np.ndarray, identities: Sequence[str], k: int = 1
                            ) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(identity, score)`` of each probe, best first (see :meth:`search`)."""
        scores, idx, names = self.search(probes, gallery, identities, k)
        return [[(names[j], float(v)) for v, j in zip(rs, ri, strict=True)] for rs, ri in zip(scores, idx, strict=True)]
