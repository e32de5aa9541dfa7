"""One verification layer: threshold at FAR (shared by speaker calibration and TAR@FAR), Cllr, the
few-non-targets warning, and face eval reporting the real fold count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from facevox import metrics as fm
from facevox.cli import main
from facevox.errors import FacevoxError

# ---------------------------------------------------------------------------------------------
# threshold_at_far


def test_threshold_at_far_known_answers():
    non = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    # far 0.1 of 10: one non-target may be accepted, so 0.8 (the 2nd highest) must be rejected
    assert fm.threshold_at_far(non, 0.1) == np.nextafter(0.8, np.inf)
    assert fm.threshold_at_far(non, 0.0) == np.nextafter(0.9, np.inf)
    assert fm.threshold_at_far(non, 0.15) == np.nextafter(0.8, np.inf)
    assert fm.threshold_at_far(non, 0.2) == np.nextafter(0.7, np.inf)
    assert fm.threshold_at_far(non, 1.0) == 0.0  # everything accepted: the lowest score
    assert fm.threshold_at_far([], 0.1) == 0.0
    # ties are rejected together: accepting one 0.5 accepts all three
    assert fm.threshold_at_far([0.5, 0.5, 0.5, 0.1], 0.5) == np.nextafter(0.5, np.inf)


def _brute_threshold(non: np.ndarray, far: float) -> float:
    candidates = np.unique(np.r_[non, np.nextafter(non, np.inf)])
    return float(min(t for t in candidates if np.mean(non >= t) <= far))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("far", [0.0, 1e-3, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0])
def test_threshold_at_far_matches_brute_force(seed, far):
    rng = np.random.default_rng(seed)
    non = np.round(rng.normal(size=int(rng.integers(5, 300))), 1 + seed % 2)  # with ties
    assert fm.threshold_at_far(non, far) == _brute_threshold(non, far)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("far", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_threshold_at_far_and_tar_at_far_choose_the_same_accept_set(seed, far):
    rng = np.random.default_rng(seed)
    labels = rng.random(400) < 0.3
    scores = np.round(rng.normal(size=400) + labels, 1)
    tar, thr = fm.tar_at_far(scores, labels, far)
    t = fm.threshold_at_far(scores[~labels], far)
    assert np.array_equal(scores >= t, scores >= thr) or (math.isinf(thr) and not (scores[~labels] >= t).any())
    assert np.mean(scores[labels] >= t) == pytest.approx(tar, abs=1e-15)


def test_threshold_at_far_errors_name_the_setting():
    with pytest.raises(FacevoxError) as info:
        fm.threshold_at_far([0.1, 0.2], 1.5)
    assert info.value.where == "far" and "[0, 1]" in info.value.problem
    with pytest.raises(FacevoxError) as info:
        fm.threshold_at_far([0.1, 0.2], -0.1, name="scoring.target_far")
    assert str(info.value).startswith("scoring.target_far: ")
    with pytest.raises(FacevoxError, match="finite"):
        fm.threshold_at_far([0.1, float("nan")], 0.1)


def test_speaker_calibration_uses_threshold_at_far():
    from facevox.verification.calibration import fit_calibration

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(50), np.zeros(200)].astype(int)
    scores = rng.normal(size=250) + 2 * labels
    cal = fit_calibration(scores, labels, 0.05)
    assert cal.threshold == fm.threshold_at_far(scores[labels == 0], 0.05)
    with pytest.raises(FacevoxError) as info:
        fit_calibration(scores, labels, 2.0)
    assert info.value.where == "scoring.target_far"


# ---------------------------------------------------------------------------------------------
# cllr


def test_cllr_of_an_uninformative_system_is_exactly_one():
    assert fm.cllr(np.zeros(7), [1, 0, 1, 0, 0, 0, 1]) == 1.0


def test_cllr_of_confident_separated_llrs_approaches_zero():
    labels = np.r_[np.ones(5), np.zeros(8)]
    assert fm.cllr(np.where(labels == 1, 50.0, -50.0), labels) < 1e-20
    assert fm.cllr(np.where(labels == 1, 5.0, -5.0), labels) == pytest.approx(math.log2(1 + math.exp(-5)))
    # confidently wrong is far worse than saying nothing
    assert fm.cllr(np.where(labels == 1, -5.0, 5.0), labels) > 5


@pytest.mark.parametrize("seed", range(3))
def test_cllr_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(200) < 0.4).astype(int)
    llr = rng.normal(scale=3, size=200) + 2 * labels
    tar = [math.log2(1 + math.exp(-v)) for v, y in zip(llr, labels, strict=True) if y == 1]
    non = [math.log2(1 + math.exp(v)) for v, y in zip(llr, labels, strict=True) if y == 0]
    assert fm.cllr(llr, labels) == pytest.approx(0.5 * (sum(tar) / len(tar) + sum(non) / len(non)), rel=1e-12)


def test_cllr_needs_both_classes():
    with pytest.raises(FacevoxError, match="no non-targets"):
        fm.cllr([0.1, 0.2], [1, 1])
    with pytest.raises(FacevoxError, match="no targets"):
        fm.cllr([0.1, 0.2], [0, 0])


# ---------------------------------------------------------------------------------------------
# too few non-targets for a FAR


def test_far_support_warnings():
    assert fm.far_support_warnings(500, [0.001]) == [
        "TAR@FAR=0.001 from 500 non-target trials (fewer than 10/FAR = 10000): not reliable"]
    assert fm.far_support_warnings(10000, [0.001]) == []
    assert fm.far_support_warnings(999, [0.01, 0.001]) == [
        "TAR@FAR=0.01 from 999 non-target trials (fewer than 10/FAR = 1000): not reliable",
        "TAR@FAR=0.001 from 999 non-target trials (fewer than 10/FAR = 10000): not reliable"]
    assert fm.far_support_warnings(5, [0.0]) == []


# ---------------------------------------------------------------------------------------------
# face eval: fold count and warnings (a fake scorer: no model, no images decoded)


class _FakeFaceScorer:
    """Embeds a path by its identity folder (plus noise): same-person pairs score high."""

    name = "fake"
    where = "--backend fake"

    def __init__(self, *args, **kwargs) -> None:
        self.rng = np.random.default_rng(0)

    def embed_files(self, paths, progress: bool = True) -> dict[Path, np.ndarray]:
        out = {}
        for p in dict.fromkeys(paths):
            e = np.zeros(16)
            e[int(Path(p).parent.name.removeprefix("p")) % 16] = 1.0
            e += self.rng.normal(0, 0.3, 16)
            out[p] = e / np.linalg.norm(e)
        return out

    def score(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        return np.sum(ea * eb, axis=-1)


def test_face_eval_prints_the_fold_count_of_the_pairs_file(tmp_path, monkeypatch, capsys):
    from facevox.tasks.face import evaluate
    from facevox.tasks.face.pairs import make_pairs, read_identities, write_pairs

    root = tmp_path / "aligned"
    for p in range(6):
        (root / f"p{p}").mkdir(parents=True)
        for i in range(3):
            (root / f"p{p}" / f"{i + 1}.png").write_bytes(b"")  # never decoded by the fake scorer
    pairs = make_pairs(read_identities(root), folds=2, per_fold=4, seed=0, disjoint=False)
    write_pairs(tmp_path / "pairs.txt", pairs, 2, 4)
    monkeypatch.setattr(evaluate, "FaceScorer", _FakeFaceScorer)
    out = tmp_path / "eval"
    assert main(["face", "eval", str(tmp_path / "pairs.txt"), "--root", str(root), "--model", "x",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "2-fold accuracy" in captured.out and "10-fold" not in captured.out
    assert ("warning: TAR@FAR=0.001 from 8 non-target trials (fewer than 10/FAR = 10000): not reliable"
            in captured.err.splitlines())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_folds"] == 2
    assert metrics["warnings"] == fm.far_support_warnings(8, fm.VERIFICATION_FARS)


def test_face_eval_help_does_not_promise_ten_folds(capsys):
    with pytest.raises(SystemExit):
        main(["face", "--help"])
    assert "10-fold" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# speaker eval: the same warning (a fake scorer)


class _FakeSpeakerScorer:
    name = "fake"
    where = "--model fake"
    kind = "embedding"
    calibration = None

    def __init__(self, *args, **kwargs) -> None:
        pass

    def score_pairs(self, trials, root, cohort_emb, top_k, cache, embeddings):
        labels = np.array([t.label for t in trials], dtype=float)
        return labels + np.linspace(0, 0.5, len(trials)), np.ones(len(trials), dtype=bool)


def test_speaker_eval_warns_about_few_non_targets(tmp_path, monkeypatch, capsys):
    from facevox.tasks.speaker import evaluate
    from facevox.tasks.speaker.corpus import Trial, write_trials

    trials = write_trials(tmp_path / "t.txt", [Trial(i % 2, f"a{i}.wav", f"b{i}.wav") for i in range(40)])
    monkeypatch.setattr(evaluate, "SpeakerScorer", _FakeSpeakerScorer)
    metrics = evaluate.evaluate(trials, tmp_path, tmp_path / "eval")
    err = capsys.readouterr().err
    assert "warning: TAR@FAR=0.01 from 20 non-target trials (fewer than 10/FAR = 1000): not reliable" in err
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["warnings"] == metrics["warnings"] == fm.far_support_warnings(20, fm.VERIFICATION_FARS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_is_monotone_and_its_threshold_never_exceeds_the_far(seed):
    from facevox.verification.calibration import fit_calibration

    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.7, 0.1, 300), rng.normal(0.2, 0.15, 3000)])
    labels = np.concatenate([np.ones(300, int), np.zeros(3000, int)])
    cal = fit_calibration(scores, labels, target_far=0.01)
    grid = np.linspace(-1, 1, 201)
    assert cal.a > 0 and np.all(np.diff(cal.llr(grid)) > 0) and np.all(np.diff(cal.probability(grid)) >= 0)
    assert np.mean(scores[labels == 0] >= cal.threshold) <= 0.01  # never above the target FAR
    assert cal.probability(0.9) > 0.99 and cal.probability(0.0) < 0.01
