"""``facevox face``: align (resize path), train, pairs, eval with identification, verify, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def facevox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facevox", *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)


def make_people(root, people: int = 8, per: int = 5, size: int = 40) -> None:
    """Each 'person' is a fixed random pattern; their photos are noisy, shifted copies of it."""
    rng = np.random.default_rng(0)
    for p in range(people):
        base = rng.integers(0, 255, (size, size, 3)).astype(float)
        (root / f"p{p}").mkdir(parents=True, exist_ok=True)
        for i in range(per):
            img = np.roll(base, rng.integers(-2, 3), axis=1) + rng.normal(0, 20, base.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"p{p}" / f"{i + 1}.png")


@pytest.mark.slow
def test_face_cli_end_to_end(tmp_path):
    make_people(tmp_path / "photos")
    aligned = tmp_path / "aligned"
    done = facevox("face", "align", str(tmp_path / "photos"), "--out", str(aligned), "--aligned", "--size", "32", "32")
    assert done.returncode == 0, done.stderr
    assert Image.open(aligned / "p0" / "1.png").size == (32, 32)

    done = facevox("face", "pairs", str(aligned), "--out", str(tmp_path / "pairs.txt"), "--folds", "2",
                   "--per-fold", "5", "--disjoint", "yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pairs.txt").read_text().startswith("2\t5\n")

    model = tmp_path / "run" / "model"
    done = facevox("face", "train", "--recipe", "mobilefacenet_sphereface2", "--data", str(aligned),
                   "--out", str(tmp_path / "run"), "--set", "data.input_size=[32, 32]",
                   "--set", "model.backbone_kwargs={width: 8}", "--set", "model.embed_dim=16",
                   "--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "train.precision=fp32",
                   "--set", "train.progress=false", "--set", "data.calib_identities=2",
                   "--set", "scoring.target_far=0.1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (model / "model.safetensors").is_file()
    extra = json.loads((model / "extra.json").read_text())
    assert len(extra["calib_identities"]) == 2 and extra["train_identities"] == 6
    held = json.loads((model / "metrics.json").read_text())  # what it scored on its 2 held-out people
    assert held["held_out_classes"] == 2 and held["held_out_target_trials"] == 20 and 0 <= held["held_out_eer"] <= 1

    done = facevox("face", "eval", str(tmp_path / "pairs.txt"), "--root", str(aligned), "--model", str(model),
                   "--identify", str(aligned), "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr
    assert "2-fold accuracy" in done.stdout and "10-fold" not in done.stdout and "rank-1" in done.stdout
    assert "warning: TAR@FAR=0.001 from 10 non-target trials (fewer than 10/FAR = 10000): not reliable" in done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert any(w.startswith("TAR@FAR=0.01 from 10 non-target") for w in metrics["warnings"])
    assert metrics["n_folds"] == 2 and 0 <= metrics["kfold_accuracy"] <= 1
    assert set(metrics["identification"]) >= {"rank1", "dir", "gallery_identities"}
    assert "Accuracy per fold" in (tmp_path / "eval" / "report.html").read_text()
    assert "rank5" not in metrics["identification"]  # 4 enrolled: rank-5 would be trivially 1

    make_people(tmp_path / "cohort", people=3, per=2)  # AS-norm against people not in the pairs
    done = facevox("face", "eval", str(tmp_path / "pairs.txt"), "--root", str(aligned), "--model", str(model),
                   "--cohort", str(tmp_path / "cohort"), "--asnorm-top-k", "2", "--out", str(tmp_path / "eval-as"))
    assert done.returncode == 0, done.stderr
    normed = json.loads((tmp_path / "eval-as" / "metrics.json").read_text())
    assert normed["asnorm"] == {"cohort": str(tmp_path / "cohort"), "cohort_identities": 3, "top_k": 2}
    assert normed["eer"] != metrics["eer"] or normed["roc_auc"] != metrics["roc_auc"]
    done = facevox("face", "eval", str(tmp_path / "pairs.txt"), "--root", str(aligned), "--model", str(model),
                   "--cohort", str(tmp_path / "cohort"), "--out", str(tmp_path / "eval-bad"))
    assert done.returncode == 2 and "AS-norm needs both a cohort folder and a top k" in done.stderr

    a, b = aligned / "p0" / "1.png", aligned / "p0" / "2.png"
    done = facevox("face", "verify", str(a), str(b), "--model", str(model), "--aligned", "--threshold", "0.1",
                   "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert -1.0 <= result["score"] <= 1.0 and result["same"] == (result["score"] >= 0.1)
    done = facevox("face", "verify", str(a), str(b), "--model", str(model), "--aligned")  # the stored threshold
    assert done.returncode == 0, done.stderr
    assert "decision:" in done.stdout and f"threshold {extra['threshold']:.4f}" in done.stdout


def test_face_cli_errors(tmp_path):
    make_people(tmp_path / "photos", people=2, per=2)
    Image.new("RGB", (64, 64), "white").save(tmp_path / "blank.png")
    done = facevox("face", "verify", str(tmp_path / "blank.png"), str(tmp_path / "photos" / "p0" / "1.png"),
                   "--backend", "dlib", "--detector", "haar")
    assert done.returncode == 2 and "blank.png" in done.stderr and "no face found" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = facevox("face", "eval", str(tmp_path / "nope.txt"), "--root", str(tmp_path / "photos"), "--backend", "dlib")
    assert done.returncode == 2 and "nope.txt: pairs file not found" in done.stderr
    done = facevox("face", "train", "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                   "--set", "model.backbone=resnet_nope")
    assert done.returncode == 2 and "unknown model 'resnet_nope'" in done.stderr
    assert not (tmp_path / "run").exists()
    done = facevox("face", "train", "--data", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                   "--set", "data.calib_identities=1")
    assert done.returncode == 2 and "data.calib_identities" in done.stderr
    assert not (tmp_path / "run").exists()
