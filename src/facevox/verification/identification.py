"""Identification metrics: closed-set rank-k and open-set detection-and-identification rate.

A gallery holds one template per enrolled identity; each probe is compared with every template.

* Closed set (every probe's identity is enrolled): rank-k accuracy is the fraction of probes
  whose identity is among the ``k`` best-scoring templates.
* Open set (some probes are of people not enrolled: "non-mated"): the threshold is set so that a
  fraction ``far`` of non-mated probes have a best score at or above it (a false alarm); the
  detection-and-identification rate DIR(far) is the fraction of mated probes whose best template
  is the right one *and* scores at or above the threshold (Grother and Phillips; the IJB and
  NIST FRVT definition, rank 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError


def templates(embeddings: np.ndarray, identities: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """One template per identity: the mean of its unit-length embeddings, again of unit length.

    One pass over the embeddings (``np.add.at``), so a gallery of millions costs O(N D)."""
    e = _unit(np.asarray(embeddings, dtype=np.float64))
    names, inverse = np.unique(np.asarray(identities), return_inverse=True)
    t = np.zeros((len(names), e.shape[1]))
    np.add.at(t, inverse, e)
    return _unit(t / np.bincount(inverse, minlength=len(names))[:, None]), [str(n) for n in names]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def rank_k_accuracy(scores: np.ndarray, probe_ids: Sequence[str], gallery_ids: Sequence[str], k: int = 1) -> float:
    """``scores`` (P, G) probe-to-template similarities; fraction of probes with their identity in the top ``k``."""
    s = np.asarray(scores, dtype=np.float64)
    gallery = np.asarray(gallery_ids)
    truth = np.asarray(probe_ids)
    if s.shape != (len(truth), len(gallery)):
        raise FacevoxError(f"scores have shape {s.shape}, expected ({len(truth)}, {len(gallery)})")
    if not np.isin(truth, gallery).all():
        raise FacevoxError("closed-set identification needs every probe's identity in the gallery")
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return rank_k_from_top(top, truth, gallery, k)


def rank_k_from_top(top: np.ndarray, probe_ids: Sequence[str], gallery_ids: Sequence[str], k: int = 1) -> float:
    """Rank-k accuracy from each probe's best gallery indices, best first (P, >= k), e.g. from
    :func:`facevox.verification.scoring.top_k`: no (P, G) score matrix needed."""
    gallery = np.asarray(gallery_ids)
    truth = np.asarray(probe_ids)
    top = np.asarray(top)[:, :k]
    if not np.isin(truth, gallery).all():
        raise FacevoxError("closed-set identification needs every probe's identity in the gallery")
    return float(np.mean((gallery[top] == truth[:, None]).any(axis=1)))


def dir_at_far(scores: np.ndarray, probe_ids: Sequence[str], gallery_ids: Sequence[str],
               far: float) -> tuple[float, float]:
    """Open-set rank-1 detection-and-identification rate at false-alarm rate ``far``: ``(dir, threshold)``.

    Probes whose identity is not in ``gallery_ids`` are the non-mated ones. The threshold is the
    lowest one at which at most ``far`` of them raise an alarm (best score >= threshold).
    """
    s = np.asarray(scores, dtype=np.float64)
    return dir_at_far_from_best(s.max(axis=1), s.argmax(axis=1), probe_ids, gallery_ids, far)


def dir_at_far_from_best(best: np.ndarray, best_index: np.ndarray, probe_ids: Sequence[str],
                         gallery_ids: Sequence[str], far: float) -> tuple[float, float]:
    """:func:`dir_at_far` from each probe's best score and best gallery index (P,) (a top-1 search)."""
    best = np.asarray(best, dtype=np.float64)
    gallery = np.asarray(gallery_ids)
    truth = np.asarray(probe_ids)
    mated = np.isin(truth, gallery)
    if mated.all() or not mated.any():
        raise FacevoxError("open-set identification needs probes of enrolled and of non-enrolled people")
    if not 0.0 <= far <= 1.0:
        raise FacevoxError(f"far must be in [0, 1], got {far}")
    nonmated = np.sort(best[~mated])[::-1]  # descending
    allowed = int(np.floor(far * len(nonmated) + 1e-9))  # false alarms allowed
    # accepting 'allowed' of them: the threshold sits just above the next non-mated score
    threshold = np.nextafter(nonmated[allowed], np.inf) if allowed < len(nonmated) else -np.inf
    hit = (gallery[np.asarray(best_index)] == truth) & (best >= threshold)
    return float(hit[mated].mean()), float(threshold)


def identification_protocol(verifier: Any, groups: Mapping[str, Sequence[Path]], where: str | Path,
                            enrolled_fraction: float = 0.5, gallery_per_identity: int = 1,
                            fars: Sequence[float] = (0.01, 0.1), ranks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Closed- and open-set identification on a folder of either modality: ``groups`` maps each
    identity to its files (sorted); ``verifier`` is a :class:`~facevox.verification.verifier.Verifier`.

    The first ``enrolled_fraction`` of the identities (in sorted order) are enrolled with their first
    ``gallery_per_identity`` files (one mean template each); every other file is a probe. Rank-k
    accuracy is over the enrolled people's probes (closed set); DIR at each FAR over all probes
    (open set: the others are the non-mated probes). Files the verifier skips are left out."""
    names = sorted(groups)
    n_enrolled = max(1, int(round(enrolled_fraction * len(names))))
    enrolled = set(names[:n_enrolled])
    gallery = [(n, p) for n in names[:n_enrolled] for p in groups[n][:gallery_per_identity]]
    probes = [(n, p) for n in names for p in (groups[n][gallery_per_identity:] if n in enrolled else groups[n])]
    if n_enrolled == len(names) or not any(n in enrolled for n, _ in probes):
        raise FacevoxError(f"identification needs enrolled identities with more than {gallery_per_identity} "
                           "file(s) each and identities that are not enrolled", where)
    files = [p for _, p in gallery + probes]
    emb, ok = verifier.embed_paths(files)
    g_ok, p_ok = ok[: len(gallery)], ok[len(gallery):]
    gallery = [x for x, good in zip(gallery, g_ok, strict=True) if good]
    probes = [x for x, good in zip(probes, p_ok, strict=True) if good]
    g_emb, p_emb = emb[: len(g_ok)][g_ok], emb[len(g_ok):][p_ok]
    k = min(max(ranks), n_enrolled)
    top, top_index, t_names = verifier.search(p_emb, g_emb, [n for n, _ in gallery], k)
    probe_ids = [n for n, _ in probes]
    mated = [i for i, n in enumerate(probe_ids) if n in t_names]
    out: dict[str, Any] = {"gallery_identities": len(t_names), "probes": len(probes), "mated_probes": len(mated),
                           "gallery_per_identity": gallery_per_identity}
    for r in ranks:
        if r <= k:
            out[f"rank{r}"] = rank_k_from_top(top_index[mated], [probe_ids[i] for i in mated], t_names, k=r)
    out["dir"] = {str(f): dir_at_far_from_best(top[:, 0], top_index[:, 0], probe_ids, t_names, f)[0] for f in fars}
    return out
