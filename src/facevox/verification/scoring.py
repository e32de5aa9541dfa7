"""Scoring at scale from embeddings by index: trials as row pairs, chunked cosine, AS-norm per unique
embedding, and top-k search of large galleries (faiss when installed, chunked numpy otherwise).

Memory is bounded by the unique embeddings (U, D) plus one chunk: a trial list is two int64
index arrays, so VoxCeleb1-H (550k trials over 145k files, D=256, 6k cohort) needs about 150 MB
of embeddings, 9 MB of indices and a cohort chunk of ``chunk_elems`` scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK_ELEMS = 1 << 24  # scores held at once in a chunk (64 MB in float32)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; an all-zero row stays 0 instead of NaN (a row with NaN or inf becomes NaN)."""
    with np.errstate(invalid="ignore"):
        return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


SIMILARITIES = ("cosine", "euclidean")


def pair_similarity(ea: np.ndarray, eb: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    """Row-wise similarity of two (N, D) arrays (or two (D,) vectors), higher = more alike: the cosine, or minus the
    Euclidean distance (``"euclidean"``: dlib's face model, trained for a distance of 0.6)."""
    if similarity == "cosine":
        return np.sum(unit(np.asarray(ea, np.float64)) * unit(np.asarray(eb, np.float64)), axis=-1)
    if similarity == "euclidean":
        return -np.linalg.norm(np.asarray(ea, np.float64) - np.asarray(eb, np.float64), axis=-1)
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


def index_pairs(a: Sequence[str], b: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unique names of both sides (first-seen order) and each trial's two rows into them."""
    index: dict[str, int] = {}
    ia = np.fromiter((index.setdefault(x, len(index)) for x in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((index.setdefault(x, len(index)) for x in b), dtype=np.int64, count=len(b))
    return list(index), ia, ib


def cosine_pairs(emb: np.ndarray, ia: np.ndarray, ib: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Cosine of rows ``emb[ia]`` and ``emb[ib]`` (emb (U, D)), ``chunk`` trials at a time: (N,) float64."""
    e = unit(np.asarray(emb))
    out = np.empty(len(ia), dtype=np.float64)
    for s in range(0, len(ia), chunk):
        out[s : s + chunk] = np.einsum("nd,nd->n", e[ia[s : s + chunk]], e[ib[s : s + chunk]])
    return out


def cohort_stats(emb: np.ndarray, cohort: np.ndarray, top_k: int, chunk_elems: int = CHUNK_ELEMS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (+1e-8) of each row's ``top_k`` highest cosines against the cohort (C, D): (U,) each.

    Computed once per unique embedding, ``chunk_elems // C`` rows at a time.
    """
    e = unit(np.asarray(emb))
    c = unit(np.asarray(cohort))
    k = max(1, min(top_k, len(c)))
    rows = max(1, chunk_elems // max(1, len(c)))
    mu = np.empty(len(e), dtype=np.float64)
    sd = np.empty(len(e), dtype=np.float64)
    for s in range(0, len(e), rows):
        scores = e[s : s + rows] @ c.T
        top = -np.partition(-scores, k - 1, axis=1)[:, :k]
        mu[s : s + rows] = top.mean(1)
        sd[s : s + rows] = top.std(1) + 1e-8
    return mu, sd


def as_norm_pairs(scores: np.ndarray, ia: np.ndarray, ib: np.ndarray, mu: np.ndarray, sd: np.ndarray
                  ) -> np.ndarray:
    """AS-norm1 (Matejka et al. 2017) of trial ``scores`` from per-embedding cohort statistics."""
    return 0.5 * ((scores - mu[ia]) / sd[ia] + (scores - mu[ib]) / sd[ib])


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def top_k(probes: np.ndarray, gallery: np.ndarray, k: int, *, metric: str = "ip", backend: str = "auto",
          chunk_elems: int = CHUNK_ELEMS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best gallery rows for each probe: ``(scores (P, k), indices (P, k))``, best first.

    ``metric="ip"``: inner product (cosine for unit rows); ``"l2"``: minus the Euclidean distance.
    Ties go to the lower gallery index (as a stable sort of the full score matrix would). No
    (P, G, D) array is ever made: numpy works ``chunk_elems // G`` probes at a time; faiss
    (``backend="faiss"``, or ``"auto"`` when installed) searches an exact flat index.
    """
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    probes = np.asarray(probes, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    k = max(1, min(k, len(gallery)))
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        import faiss

        index = (faiss.IndexFlatIP if metric == "ip" else faiss.IndexFlatL2)(gallery.shape[1])
        index.add(np.ascontiguousarray(gallery))
        dist, idx = index.search(np.ascontiguousarray(probes), k)
        scores = dist.astype(np.float64) if metric == "ip" else -np.sqrt(np.maximum(dist, 0).astype(np.float64))
        return _tie_order(scores, idx.astype(np.int64))
    if backend not in ("auto", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
    rows = max(1, chunk_elems // max(1, len(gallery)))
    g2 = np.einsum("gd,gd->g", gallery, gallery) if metric == "l2" else None
    out_s = np.empty((len(probes), k), dtype=np.float64)
    out_i = np.empty((len(probes), k), dtype=np.int64)
    for s in range(0, len(probes), rows):
        p = probes[s : s + rows]
        sc = (p @ gallery.T).astype(np.float64)
        if g2 is not None:
            p2 = np.einsum("pd,pd->p", p, p)
            sc = -np.sqrt(np.maximum(p2[:, None] + g2[None] - 2 * sc, 0))
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k] if k < sc.shape[1] else np.tile(np.arange(k), (len(p), 1))
        ps = np.take_along_axis(sc, part, 1)
        order = np.lexsort((part, -ps), axis=1)
        out_i[s : s + rows] = np.take_along_axis(part, order, 1)
        out_s[s : s + rows] = np.take_along_axis(ps, order, 1)
    return out_s, out_i


def _tie_order(scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((idx, -scores), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
