"""Tests for facevox.metrics against sklearn / skimage and brute-force references."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import KFold

from facevox import metrics as fm
from facevox.errors import FacevoxError

# ---------------------------------------------------------------------------------------------
# data and brute-force references


def _random_trials(seed: int, n: int = 200, decimals: int | None = None, p_target: float = 0.3):
    """(scores, labels); ``decimals`` rounds the scores to create heavy ties."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < p_target).astype(np.int64)
    labels[:2] = [0, 1]  # both classes always present
    scores = rng.normal(size=n) + 1.2 * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    return scores, labels


# seeds x tie levels: continuous scores, 2 decimals, 1 decimal (heavy ties), integers (massive ties)
CASES = [(seed, dec) for seed in range(4) for dec in (None, 2, 1, 0)]


def _brute_points(scores, labels):
    """[(threshold, fpr, fnr)] for +inf and every distinct score, descending, by counting."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    out = []
    for t in [math.inf, *sorted(set(s.tolist()), reverse=True)]:
        accepted = s >= t
        out.append((t, np.mean(accepted[~y]), np.mean(~accepted[y])))
    return out


def _brute_eer(scores, labels):
    pts = _brute_points(scores, labels)
    for (t0, fpr0, fnr0), (t1, fpr1, fnr1) in zip(pts[:-1], pts[1:], strict=True):
        if fnr1 - fpr1 == 0:
            return fpr1, t1
        if fnr1 - fpr1 < 0:
            d0, d1 = fnr0 - fpr0, fnr1 - fpr1
            w = d0 / (d0 - d1)
            thr = t1 if math.isinf(t0) else t0 + w * (t1 - t0)
            return fpr0 + w * (fpr1 - fpr0), thr
    raise AssertionError("no crossing")


def _brute_min_dcf(scores, labels, p_target, c_miss, c_fa):
    best = (math.inf, None)
    for t, fpr, fnr in _brute_points(scores, labels):
        dcf = c_miss * fnr * p_target + c_fa * fpr * (1 - p_target)
        if dcf < best[0] - 1e-15:
            best = (dcf, t)
    return best[0] / min(c_miss * p_target, c_fa * (1 - p_target)), best[1]


def _midpoint_thresholds(scores):
    """+inf, the midpoints between neighbouring distinct scores (descending), -inf."""
    u = sorted(set(np.asarray(scores, dtype=np.float64).tolist()), reverse=True)
    return [math.inf] + [(a + b) / 2 for a, b in zip(u[:-1], u[1:], strict=True)] + [-math.inf]


def _brute_best_accuracy(scores, labels):
    best = (-1.0, None)
    for t in _midpoint_thresholds(scores):
        acc = accuracy_score(labels, np.asarray(scores) >= t)
        if acc > best[0]:
            best = (acc, t)
    return best


# ---------------------------------------------------------------------------------------------
# ROC / DET / AUC / AP against sklearn


@pytest.mark.parametrize(("seed", "decimals"), CASES)
def test_roc_points_match_sklearn(seed, decimals):
    scores, labels = _random_trials(seed, decimals=decimals)
    fpr, tpr, thr = fm.roc_points(scores, labels)
    ref_fpr, ref_tpr, ref_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_array_equal(tpr, ref_tpr)
    np.testing.assert_array_equal(thr, ref_thr)
    assert thr[0] == math.inf and fpr[0] == 0 and tpr[0] == 0


def test_roc_points_float32_and_torch_inputs():
    scores, labels = _random_trials(7, decimals=1)
    s32 = scores.astype(np.float32)
    ref = roc_curve(labels, s32, drop_intermediate=False)
    for s, y in [
        (s32, labels),
        (torch.from_numpy(s32), torch.from_numpy(labels)),
        (s32.tolist(), labels.tolist()),
    ]:
        for got, want in zip(fm.roc_points(s, y), ref, strict=True):
            np.testing.assert_array_equal(got, want)
    bool_labels = torch.from_numpy(labels.astype(bool))
    np.testing.assert_array_equal(fm.roc_points(torch.from_numpy(s32), bool_labels)[1], ref[1])


def test_det_points():
    scores, labels = _random_trials(1, decimals=1)
    fpr, fnr, thr = fm.det_points(scores, labels)
    ref_fpr, ref_tpr, ref_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_allclose(fnr, 1 - ref_tpr, atol=1e-15)
    np.testing.assert_array_equal(thr, ref_thr)


@pytest.mark.parametrize(("seed", "decimals"), CASES)
def test_roc_auc_and_average_precision_match_sklearn(seed, decimals):
    scores, labels = _random_trials(seed, decimals=decimals)
    assert fm.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert fm.average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_roc_auc_all_tied_is_half_and_ap_without_negatives_is_one():
    assert fm.roc_auc([0.3] * 6, [0, 1, 0, 1, 1, 0]) == 0.5
    assert fm.average_precision([0.2, 0.5, 0.9], [1, 1, 1]) == 1.0


# ---------------------------------------------------------------------------------------------
# EER


def test_eer_perfect_separation_is_zero():
    value, thr = fm.eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    assert value == 0.0
    # the crossing is the point accepting exactly the targets: threshold = lowest target score
    assert thr == 0.8


def test_eer_fully_inverted_is_one():
    value, _ = fm.eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert value == 1.0


def test_eer_four_sample_hand_case():
    # scores 0.9 (non-target), 0.8 (target), 0.7, 0.6 (non-targets).  Operating points
    # (threshold: FPR, FNR):  +inf: 0, 1   0.9: 1/3, 1   0.8: 1/3, 0.
    # FNR - FPR goes 2/3 -> -1/3 between 0.9 and 0.8: w = (2/3) / (2/3 + 1/3) = 2/3,
    # EER = 1/3 + w * 0 = 1/3 (FNR side: 1 - w * 1 = 1/3), threshold = 0.9 + w * (0.8 - 0.9) = 0.8333.
    value, thr = fm.eer([0.8, 0.9, 0.7, 0.6], [1, 0, 0, 0])
    assert value == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.9 - 0.1 * 2 / 3)


def test_eer_five_sample_hand_case():
    # T .9, N .8, T .7, N .6, N .5 -> points (FPR, FNR): +inf (0, 1), .9 (0, .5), .8 (1/3, .5),
    # .7 (1/3, 0).  Gap 1/6 -> -1/3 between .8 and .7: w = 1/3, EER = 1/3, threshold = .8 - .1/3.
    value, thr = fm.eer([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 0])
    assert value == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.8 - 0.1 / 3)


def test_eer_exact_crossing_at_a_point():
    # T .9, N .8, T .7, N .6: at threshold .8, FPR = FNR = 1/2
    assert fm.eer([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == (0.5, 0.8)


@pytest.mark.parametrize(("seed", "decimals"), CASES)
def test_eer_matches_brute_force(seed, decimals):
    scores, labels = _random_trials(seed, decimals=decimals)
    value, thr = fm.eer(scores, labels)
    ref_value, ref_thr = _brute_eer(scores, labels)
    assert value == pytest.approx(ref_value, abs=1e-12)
    assert thr == pytest.approx(ref_thr, abs=1e-12)
    if decimals is not None:
        return
    # without ties it is within one step of the usual non-interpolated estimate on sklearn's curve
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    i = np.nanargmin(np.abs(1 - tpr - fpr))
    step = max(1 / np.sum(labels == 1), 1 / np.sum(labels == 0))
    assert abs(value - (fpr[i] + 1 - tpr[i]) / 2) <= step


# ---------------------------------------------------------------------------------------------
# minDCF


@pytest.mark.parametrize(("seed", "decimals"), CASES)
@pytest.mark.parametrize(("p_target", "c_miss", "c_fa"), [(0.01, 1, 1), (0.05, 1, 1), (0.5, 1, 1), (0.1, 10, 1)])
def test_min_dcf_matches_brute_force(seed, decimals, p_target, c_miss, c_fa):
    scores, labels = _random_trials(seed, decimals=decimals)
    value, thr = fm.min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    ref_value, ref_thr = _brute_min_dcf(scores, labels, p_target, c_miss, c_fa)
    assert value == pytest.approx(ref_value, abs=1e-12)
    assert thr == ref_thr
    assert 0.0 <= value <= 1.0


def test_min_dcf_perfect_separation_is_zero():
    assert fm.min_dcf([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], p_target=0.05) == (0.0, 0.8)


# ---------------------------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("threshold", [-math.inf, -0.5, 0.0, 0.5, 1.3, math.inf])
def test_accuracy_at_matches_sklearn(threshold):
    scores, labels = _random_trials(3, decimals=1)
    got = fm.accuracy_at(scores, labels, threshold)
    assert got == pytest.approx(accuracy_score(labels, scores >= threshold), abs=1e-15)


@pytest.mark.parametrize(("seed", "decimals"), CASES)
def test_best_accuracy_matches_brute_force(seed, decimals):
    scores, labels = _random_trials(seed, decimals=decimals)
    acc, thr = fm.best_accuracy(scores, labels)
    ref_acc, ref_thr = _brute_best_accuracy(scores, labels)
    assert acc == pytest.approx(ref_acc, abs=1e-15)
    assert thr == pytest.approx(ref_thr, abs=1e-12)
    assert fm.accuracy_at(scores, labels, thr) == pytest.approx(acc, abs=1e-15)


def test_best_accuracy_extremes():
    assert fm.best_accuracy([0.1, 0.5, 0.7], [1, 1, 1]) == (1.0, -math.inf)  # accept everything
    assert fm.best_accuracy([0.1, 0.5, 0.7], [0, 0, 0]) == (1.0, math.inf)  # accept nothing
    assert fm.best_accuracy([0.2, 0.6, 0.4, 0.9], [0, 1, 0, 1]) == (1.0, 0.5)


def test_kfold_accuracy_hand_case():
    # fold 0: .9 T, .75 T, .5 N, .2 N        fold 1: .8 T, .4 T, .6 N, .1 N
    # Held-out fold 0, train on fold 1 (descending .8T .6N .4T .1N): correct trials when accepting
    # nothing 2, >= .8 3, >= .6 2, >= .4 3, all 2 -> first best is ">= .8", threshold midway
    # between .8 and .6 = .7; on fold 0 that accepts .9, .75 and rejects .5, .2 -> accuracy 1.
    # Held-out fold 1, train on fold 0 (.9T .75T .5N .2N): nothing 2, >= .9 3, >= .75 4, >= .5 3,
    # all 2 -> ">= .75", threshold (.75 + .5) / 2 = .625; on fold 1 .8 accepted (right), .4
    # rejected (wrong), .6 and .1 rejected (right) -> 3/4.  Mean .875, std (ddof=0) .125.
    scores = [0.9, 0.75, 0.5, 0.2, 0.8, 0.4, 0.6, 0.1]
    labels = [1, 1, 0, 0, 1, 1, 0, 0]
    res = fm.kfold_accuracy(scores, labels, folds=2)
    np.testing.assert_allclose(res.accuracies, [1.0, 0.75])
    np.testing.assert_allclose(res.thresholds, [0.7, 0.625])
    assert res.mean == pytest.approx(0.875)
    assert res.std == pytest.approx(0.125)
    same = fm.kfold_accuracy(scores, labels, folds=np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    np.testing.assert_array_equal(same.accuracies, res.accuracies)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.mean = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(("seed", "k", "n"), [(0, 10, 200), (1, 3, 100), (2, 7, 103), (3, 4, 61)])
def test_kfold_accuracy_matches_brute_force(seed, k, n):
    scores, labels = _random_trials(seed, n=n, decimals=2)
    res = fm.kfold_accuracy(scores, labels, folds=k)
    splits = list(KFold(n_splits=k, shuffle=False).split(scores))  # the same consecutive folds
    assert res.accuracies.shape == (k,)
    for j, (train, test) in enumerate(splits):
        _, thr = _brute_best_accuracy(scores[train], labels[train])
        assert res.thresholds[j] == pytest.approx(thr, abs=1e-12)
        assert res.accuracies[j] == pytest.approx(accuracy_score(labels[test], scores[test] >= thr))
    assert res.mean == pytest.approx(np.mean(res.accuracies))
    assert res.std == pytest.approx(np.std(res.accuracies))


def test_kfold_accuracy_with_shuffled_fold_ids():
    scores, labels = _random_trials(5, n=90, decimals=2)
    fold_ids = np.random.default_rng(0).integers(10, 13, size=90)
    res = fm.kfold_accuracy(scores, labels, folds=fold_ids)
    for j, fold in enumerate([10, 11, 12]):
        test = fold_ids == fold
        _, thr = _brute_best_accuracy(scores[~test], labels[~test])
        assert res.accuracies[j] == pytest.approx(accuracy_score(labels[test], scores[test] >= thr))


# ---------------------------------------------------------------------------------------------
# TAR @ FAR


def _brute_tar_at_far(scores, labels, far):
    best = (0.0, math.inf)
    for t, fpr, fnr in _brute_points(scores, labels):
        if fpr <= far and 1 - fnr >= best[0]:
            best = (1 - fnr, t)
    return best


@pytest.mark.parametrize(("seed", "decimals"), CASES)
@pytest.mark.parametrize("far", [0.0, 1e-3, 0.01, 0.05, 0.1, 0.3, 1.0])
def test_tar_at_far_matches_brute_force(seed, decimals, far):
    scores, labels = _random_trials(seed, decimals=decimals)
    tar, thr = fm.tar_at_far(scores, labels, far)
    ref_tar, ref_thr = _brute_tar_at_far(scores, labels, far)
    assert tar == pytest.approx(ref_tar, abs=1e-15)
    assert thr == ref_thr
    neg = scores[labels == 0]
    assert np.mean(neg >= thr) <= far


def test_tar_at_fars_and_exact_far_boundary():
    # 1 non-target out of 100 above .5: FAR = 0.01 exactly is allowed at far=0.01
    scores = np.r_[np.linspace(0.0, 0.4, 99), 0.6, 0.55, 0.7, 0.3]
    labels = np.r_[np.zeros(99), 0, 1, 1, 1]
    assert fm.tar_at_far(scores, labels, 0.01) == (2 / 3, 0.55)
    assert fm.tar_at_far(scores, labels, 0.0) == (1 / 3, 0.7)
    got = fm.tar_at_fars(scores, labels, [0.0, 0.01])
    assert got == {0.0: 1 / 3, 0.01: 2 / 3}


# ---------------------------------------------------------------------------------------------
# calibration


def test_ece_binary_hand_case():
    # 5 bins of width .2.  p=.95 (y=1): conf .95 right, bin (.8,1]; p=.75 (y=0): conf .75 wrong,
    # bin (.6,.8]; p=.25 (y=0): conf .75 right, bin (.6,.8]; p=.55 (y=1): conf .55 right, (.4,.6].
    # ECE = 1/4 |1 - .95| + 2/4 |.5 - .75| + 1/4 |1 - .55| = .0125 + .125 + .1125 = .25
    assert fm.expected_calibration_error([0.95, 0.75, 0.25, 0.55], [1, 0, 0, 1], n_bins=5) == pytest.approx(0.25)


def _loop_ece(probs, labels, n_bins):
    """Guo et al.'s reference loop over (lower, upper] bins."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs((pred[in_bin] == labels[in_bin]).mean() - conf[in_bin].mean())
    return ece


def test_ece_multiclass_matches_loop_and_binary_form():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=500)
    assert fm.expected_calibration_error(probs, labels) == pytest.approx(_loop_ece(probs, labels, 15), abs=1e-12)
    assert fm.expected_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels)) == pytest.approx(
        _loop_ece(probs, labels, 15), abs=1e-12
    )
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    two_column = np.stack([1 - p, p], axis=1)
    assert fm.expected_calibration_error(p, y, n_bins=10) == pytest.approx(
        fm.expected_calibration_error(two_column, y, n_bins=10), abs=1e-12
    )


def test_ece_perfect_confidence_is_zero():
    assert fm.expected_calibration_error([1.0, 0.0, 1.0], [1, 0, 1]) == 0.0


# ---------------------------------------------------------------------------------------------
# image metrics


def test_psnr_closed_form():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    y[1] += 0.5  # MSE 0.25 -> 10 log10(1 / 0.25) = 6.0206 dB
    got = fm.psnr(x, y)
    assert got.shape == (2,)
    torch.testing.assert_close(got, torch.tensor([20.0, 10 * math.log10(4)]), rtol=1e-5, atol=1e-5)
    # data_range scales the peak: 255-range images with an MSE of 25 -> 10 log10(255^2 / 25)
    single = fm.psnr(
        torch.zeros(1, 4, 4, dtype=torch.float64),
        torch.full((1, 4, 4), 5.0, dtype=torch.float64),
        data_range=255,
    )
    assert single.shape == () and single.dtype == torch.float64
    assert float(single) == pytest.approx(10 * math.log10(255**2 / 25))
    assert math.isinf(float(fm.psnr(x[0], x[0])))


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    clean = rng.random((2, 3, 24, 31))
    noisy = np.clip(clean + 0.2 * rng.normal(size=clean.shape), 0, 1)
    got = fm.ssim(torch.from_numpy(clean), torch.from_numpy(noisy))
    got32 = fm.ssim(torch.from_numpy(clean).float(), torch.from_numpy(noisy).float())
    assert got.shape == (2,) and got.dtype == torch.float64 and got32.dtype == torch.float32
    for i in range(2):
        ref = skm.structural_similarity(
            clean[i],
            noisy[i],
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert float(got[i]) == pytest.approx(ref, abs=1e-10)
        assert float(got32[i]) == pytest.approx(ref, abs=1e-4)
    # uint8-range single image, (C, H, W) -> 0-d tensor
    a = (clean[0] * 255).round()
    b = (noisy[0] * 255).round()
    ref = skm.structural_similarity(
        a, b, data_range=255, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    single = fm.ssim(torch.from_numpy(a).to(torch.uint8), torch.from_numpy(b).to(torch.uint8), data_range=255)
    assert single.shape == ()
    assert float(single) == pytest.approx(ref, abs=1e-4)


def test_ssim_identity_is_one():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fm.ssim(x, x), torch.ones(3))


# ---------------------------------------------------------------------------------------------
# the combined dict


def test_verification_metrics_dict():
    scores, labels = _random_trials(2, n=300, decimals=2)
    out = fm.verification_metrics(scores, labels)
    json.dumps(out)  # plain Python numbers only
    assert all(type(v) in (int, float) for v in out.values())
    assert (out["eer"], out["eer_threshold"]) == fm.eer(scores, labels)
    for p in (0.01, 0.05):
        assert (out[f"min_dcf_{p}"], out[f"min_dcf_{p}_threshold"]) == fm.min_dcf(scores, labels, p_target=p)
    assert out["roc_auc"] == fm.roc_auc(scores, labels)
    assert out["average_precision"] == fm.average_precision(scores, labels)
    assert (out["best_accuracy"], out["best_accuracy_threshold"]) == fm.best_accuracy(scores, labels)
    assert out["tar@far=0.01"] == fm.tar_at_far(scores, labels, 0.01)[0]
    assert out["tar@far=0.001"] == fm.tar_at_far(scores, labels, 1e-3)[0]
    assert out["n_target"] == int(labels.sum()) and out["n_nontarget"] == int((labels == 0).sum())


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fm.eer([0.1, 0.2, 0.3], [0, 1]), "differ in length"),
        (lambda: fm.eer([0.1, 0.2, 0.3], [1, 1, 1]), "no non-targets"),
        (lambda: fm.min_dcf([0.1, 0.2], [0, 0]), "no targets"),
        (lambda: fm.roc_auc([0.1, float("nan"), 0.3], [0, 1, 1]), "finite"),
        (lambda: fm.roc_points([0.1, 0.2, 0.3], [0, 2, 1]), "only 0 and 1"),
        (lambda: fm.eer(np.zeros((2, 2)), [0, 1]), "1-D"),
        (lambda: fm.eer([], []), "empty"),
        (lambda: fm.eer(["a", "b"], [0, 1]), "numeric"),
        (lambda: fm.min_dcf([0.1, 0.2], [0, 1], p_target=0.0), "p_target"),
        (lambda: fm.min_dcf([0.1, 0.2], [0, 1], c_fa=0), "positive"),
        (lambda: fm.tar_at_far([0.1, 0.2], [0, 1], 1.5), "far"),
        (lambda: fm.accuracy_at([0.1, 0.2], [0, 1], float("nan")), "NaN"),
        (lambda: fm.kfold_accuracy([0.1, 0.2, 0.3], [0, 1, 1], folds=1), "between 2"),
        (lambda: fm.kfold_accuracy([0.1, 0.2, 0.3], [0, 1, 1], folds=[0, 0, 0]), "two distinct"),
        (lambda: fm.kfold_accuracy([0.1, 0.2, 0.3], [0, 1, 1], folds=[0, 1]), "fold ids"),
        (lambda: fm.expected_calibration_error([0.2, 1.3], [0, 1]), "[0, 1]"),
        (lambda: fm.expected_calibration_error(np.full((2, 3), 1 / 3), [0, 3]), "integers in"),
        (lambda: fm.psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5)), "differ in shape"),
        (lambda: fm.psnr(torch.zeros(4, 4), torch.zeros(4, 4)), "(N, C, H, W)"),
        (lambda: fm.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)), "at least 11x11"),
        (lambda: fm.ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), window_size=4), "odd"),
    ],
)
def test_bad_input_raises_facevox_error(call, message):
    with pytest.raises(FacevoxError) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)
