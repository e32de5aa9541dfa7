"""Face verification task: pairs files, the 10-fold protocol, identification metrics."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facevox.errors import FacevoxError
from facevox.metrics import kfold_accuracy
from facevox.tasks.face.pairs import make_pairs, read_identities, read_pairs, write_pairs
from facevox.verification.identification import dir_at_far, rank_k_accuracy, templates


def make_tree(root, people: int = 4, per: int = 4, lfw_names: bool = False) -> None:
    rng = np.random.default_rng(0)
    for p in range(people):
        name = f"person{p}"
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, per + 1):
            fname = f"{name}_{i:04d}.png" if lfw_names else f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / fname)


def test_lfw_pairs_file_round_trip(tmp_path):
    make_tree(tmp_path / "faces", people=4, per=4, lfw_names=True)
    (tmp_path / "pairs.txt").write_text("2\t1\nperson0\t1\t2\nperson0\t1\tperson1\t3\n"
                                        "person2\t2\t4\nperson2\t1\tperson3\t4\n")
    pairs = read_pairs(tmp_path / "pairs.txt", tmp_path / "faces")
    assert [(p.a.name, p.b.name, p.same, p.fold) for p in pairs] == [
        ("person0_0001.png", "person0_0002.png", True, 0), ("person0_0001.png", "person1_0003.png", False, 0),
        ("person2_0002.png", "person2_0004.png", True, 1), ("person2_0001.png", "person3_0004.png", False, 1)]


def test_index_means_natural_order_without_lfw_names(tmp_path):
    make_tree(tmp_path / "faces", people=2, per=11)
    ids = read_identities(tmp_path / "faces")
    assert [f.name for f in ids["person0"]][8:] == ["9.png", "10.png", "11.png"]
    (tmp_path / "p.txt").write_text("1 1\nperson0 2 10\nperson0 11 person1 1\n")
    pairs = read_pairs(tmp_path / "p.txt", tmp_path / "faces")
    assert (pairs[0].a.name, pairs[0].b.name, pairs[1].a.name) == ("2.png", "10.png", "11.png")


@pytest.mark.parametrize(("text", "problem"), [
    ("x y\n", "line 1 must be 'folds n'"),
    ("1 1\nperson0 1 2\n", "file has 1"),
    ("1 1\nperson0 1 person1 2\nperson0 1 2\n", "a different pair where the format expects the other"),
    ("1 1\nperson0 1 9\nperson0 1 person1 2\n", "has 4 images, no image 9"),
    ("1 1\nnobody 1 2\nperson0 1 person1 2\n", "no images of 'nobody'"),
])
def test_bad_pairs_files(tmp_path, text, problem):
    make_tree(tmp_path / "faces")
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(FacevoxError, match=problem):
        read_pairs(tmp_path / "p.txt", tmp_path / "faces")


def test_make_pairs_layout_and_disjoint_folds(tmp_path):
    make_tree(tmp_path / "faces", people=8, per=4)
    ids = read_identities(tmp_path / "faces")
    pairs = make_pairs(ids, folds=4, per_fold=3, seed=1)
    assert len(pairs) == 4 * 6
    for f in range(4):
        block = pairs[6 * f : 6 * f + 6]
        assert all(a == b for a, _, b, _ in block[:3]) and all(a != b for a, _, b, _ in block[3:])
    people = [{a for a, _, _, _ in pairs[6 * f : 6 * f + 6]} | {b for _, _, b, _ in pairs[6 * f : 6 * f + 6]}
              for f in range(4)]
    assert all(not (people[i] & people[j]) for i in range(4) for j in range(i + 1, 4))  # LFW View 2
    assert make_pairs(ids, folds=4, per_fold=3, seed=1) == pairs
    write_pairs(tmp_path / "p.txt", pairs, 4, 3)
    back = read_pairs(tmp_path / "p.txt", tmp_path / "faces")
    assert len(back) == 24 and sum(p.same for p in back) == 12 and back[-1].fold == 3
    pooled = make_pairs(ids, folds=10, per_fold=3)  # 8 people < 2 per fold: pairs are pooled
    assert len(pooled) == 60 and len(set(pooled)) == 60
    with pytest.raises(FacevoxError, match="fewer than"):
        make_pairs(ids, folds=10, per_fold=30)


def test_ten_fold_protocol_hand_computed():
    # two folds of four trials; each fold's threshold is the best-accuracy threshold (midway between
    # adjacent scores, the highest among ties) of the other fold.
    # fold 1 (0.6 s, 0.5 s, 0.4 d, 0.1 d) separates at (0.5 + 0.4) / 2 = 0.45; fold 0 at 0.45:
    #   0.9 s ok, 0.3 s missed, 0.45 d accepted (>=), 0.2 d ok -> 2/4.
    # fold 0 (0.9 s, 0.45 d, 0.3 s, 0.2 d): 3/4 at best, first reached at (0.9 + 0.45) / 2 = 0.675; fold 1 at 0.675:
    #   0.6 s missed, 0.5 s missed, 0.4 d ok, 0.1 d ok -> 2/4.
    scores = np.array([0.9, 0.3, 0.45, 0.2, 0.6, 0.5, 0.4, 0.1])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    res = kfold_accuracy(scores, labels, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert res.thresholds.tolist() == pytest.approx([0.45, 0.675])
    assert res.accuracies.tolist() == [0.5, 0.5] and res.mean == 0.5 and res.std == 0.0
    # moving a fold-1 score moves fold 0's threshold: 0.5 -> 0.7 gives (0.6 + 0.4) / 2 = 0.5, which now
    # rejects fold 0's 0.45 d: 3/4
    scores[5] = 0.7
    res = kfold_accuracy(scores, labels, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert res.thresholds[0] == pytest.approx(0.5) and res.accuracies[0] == 0.75


def test_identification_metrics_known_answers():
    gallery = ["a", "b"]
    #            a     b
    scores = np.array([[0.9, 0.1],   # probe a: right, best 0.9
                       [0.2, 0.3],   # probe a: wrong (b wins)
                       [0.1, 0.6],   # probe b: right, best 0.6
                       [0.7, 0.2],   # probe c (not enrolled): best 0.7
                       [0.1, 0.4]])  # probe c: best 0.4
    probes = ["a", "a", "b", "c", "c"]
    assert rank_k_accuracy(scores[:3], probes[:3], gallery, k=1) == pytest.approx(2 / 3)
    assert rank_k_accuracy(scores[:3], probes[:3], gallery, k=2) == 1.0
    # FAR 0: threshold just above 0.7 -> only probe 0 (0.9) is detected and right: DIR 1/3
    d, t = dir_at_far(scores, probes, gallery, 0.0)
    assert d == pytest.approx(1 / 3) and 0.7 < t < 0.7001
    # FAR 0.5: one non-mated alarm allowed -> threshold just above 0.4: probes 0 and 2 -> 2/3
    assert dir_at_far(scores, probes, gallery, 0.5)[0] == pytest.approx(2 / 3)
    assert dir_at_far(scores, probes, gallery, 1.0)[0] == pytest.approx(2 / 3)  # rank-1 caps it
    with pytest.raises(FacevoxError, match="non-enrolled"):
        dir_at_far(scores[:3], probes[:3], gallery, 0.1)
    t, names = templates(np.array([[1.0, 0], [0, 2.0], [3.0, 0]]), ["x", "y", "x"])
    assert names == ["x", "y"] and np.allclose(t, [[1, 0], [0, 1]])
