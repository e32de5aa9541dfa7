"""Scoring at scale equals the simple per-trial forms: cosine, AS-norm, top-k, identification metrics."""

from __future__ import annotations

import numpy as np
import pytest

from facevox.verification import as_norm_pairs, cohort_stats, cosine_pairs, index_pairs, top_k, unit
from facevox.verification.identification import (
    dir_at_far,
    dir_at_far_from_best,
    rank_k_accuracy,
    rank_k_from_top,
    templates,
)
from facevox.verification.scoring import faiss_available


def _trials(rng, n_files=60, n_trials=500, d=16):
    emb = rng.standard_normal((n_files, d)).astype(np.float32)
    ia, ib = rng.integers(0, n_files, n_trials), rng.integers(0, n_files, n_trials)
    return emb, ia, ib


def test_index_pairs_maps_names_once():
    names, ia, ib = index_pairs(["a", "b", "a"], ["c", "a", "d"])
    assert names == ["a", "b", "c", "d"] and ia.tolist() == [0, 1, 0] and ib.tolist() == [2, 0, 3]


def test_chunked_cosine_equals_per_trial():
    emb, ia, ib = _trials(np.random.default_rng(0))
    a, b = emb[ia], emb[ib]
    per_trial = np.sum(unit(a) * unit(b), axis=1)
    np.testing.assert_allclose(cosine_pairs(emb, ia, ib, chunk=7), per_trial, rtol=1e-6, atol=1e-7)


def as_norm(scores, emb_a, emb_b, cohort, top_k):
    """AS-norm1 written per trial, as in the paper: each side's top-k cohort cosines, mean and std."""
    def stats(e):
        s = unit(e) @ unit(cohort).T
        top = -np.sort(-s, axis=1)[:, : min(top_k, s.shape[1])]
        return top.mean(1), top.std(1) + 1e-8

    (mu_a, sd_a), (mu_b, sd_b) = stats(emb_a), stats(emb_b)
    return 0.5 * ((scores - mu_a) / sd_a + (scores - mu_b) / sd_b)


def test_as_norm_hand_computed():
    # one trial, a cohort of 3, top 2: cohort cosines of a are (1, 0, -1) -> top 2 (1, 0): mean 0.5,
    # std 0.5; of b (0, 1, 0) -> (1, 0): mean 0.5, std 0.5; raw cosine a.b = 0 -> 0.5 * (-1 + -1) = -1
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    cohort = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    emb = np.stack([a, b])
    mu, sd = cohort_stats(emb, cohort, 2)
    np.testing.assert_allclose(mu, [0.5, 0.5])
    np.testing.assert_allclose(sd, [0.5 + 1e-8, 0.5 + 1e-8])
    out = as_norm_pairs(np.array([0.0]), np.array([0]), np.array([1]), mu, sd)
    np.testing.assert_allclose(out, [-1.0], rtol=1e-6)


@pytest.mark.parametrize("top", [1, 10, 1000])
def test_as_norm_once_per_embedding_equals_per_trial(top):
    rng = np.random.default_rng(1)
    emb, ia, ib = _trials(rng)
    cohort = rng.standard_normal((50, 16)).astype(np.float32)
    raw = cosine_pairs(emb, ia, ib)
    expected = as_norm(raw, emb[ia], emb[ib], cohort, top)  # today's per-trial form
    mu, sd = cohort_stats(emb, cohort, top, chunk_elems=50 * 7)  # 7 embeddings per chunk
    np.testing.assert_allclose(as_norm_pairs(raw, ia, ib, mu, sd), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_numpy_top_k_equals_a_full_sort(metric):
    rng = np.random.default_rng(2)
    probes, gallery = rng.standard_normal((40, 8)), rng.standard_normal((300, 8))
    full = probes @ gallery.T if metric == "ip" else -np.linalg.norm(probes[:, None] - gallery[None], axis=-1)
    scores, idx = top_k(probes, gallery, 5, metric=metric, backend="numpy", chunk_elems=300 * 3)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    assert np.array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed")
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_and_numpy_top_k_agree(metric):
    rng = np.random.default_rng(3)
    probes = unit(rng.standard_normal((200, 32))).astype(np.float32)
    gallery = unit(rng.standard_normal((1000, 32))).astype(np.float32)
    s_np, i_np = top_k(probes, gallery, 10, metric=metric, backend="numpy")
    s_fa, i_fa = top_k(probes, gallery, 10, metric=metric, backend="faiss")
    assert np.array_equal(i_np, i_fa)
    np.testing.assert_allclose(s_np, s_fa, rtol=1e-5, atol=1e-5)


def test_identification_metrics_from_top_k_equal_the_full_matrix():
    rng = np.random.default_rng(4)
    names = [f"id{i}" for i in range(30)]
    centres = rng.standard_normal((30, 16))
    gallery_emb = centres + 0.3 * rng.standard_normal((30, 16))
    t, t_names = templates(gallery_emb, names)
    assert t_names == sorted(names) and np.allclose(np.linalg.norm(t, axis=1), 1)
    probe_ids = [names[i % 40] if i % 40 < 30 else f"stranger{i}" for i in range(200)]
    probes = np.stack([centres[names.index(p)] if p in names else rng.standard_normal(16) for p in probe_ids])
    probes = probes + 0.8 * rng.standard_normal(probes.shape)
    full = unit(probes) @ t.T
    scores, idx = top_k(unit(probes), t, 5, backend="numpy")
    mated = [i for i, p in enumerate(probe_ids) if p in names]
    for k in (1, 5):
        assert rank_k_from_top(idx[mated], [probe_ids[i] for i in mated], t_names, k) == pytest.approx(
            rank_k_accuracy(full[mated], [probe_ids[i] for i in mated], t_names, k))
    for far in (0.0, 0.1, 0.5):
        assert dir_at_far_from_best(scores[:, 0], idx[:, 0], probe_ids, t_names, far) == pytest.approx(
            dir_at_far(full, probe_ids, t_names, far), rel=1e-6)


def test_templates_equal_the_per_identity_mean():
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((20, 4))
    ids = [f"p{i % 3}" for i in range(20)]
    t, names = templates(emb, ids)
    for name, row in zip(names, t, strict=True):
        m = unit(emb[[i for i, x in enumerate(ids) if x == name]]).mean(0)
        np.testing.assert_allclose(row, m / np.linalg.norm(m), rtol=1e-12)
