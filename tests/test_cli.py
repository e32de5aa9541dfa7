"""The command line, driven end to end in a subprocess like a user would."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest


def facevox(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facevox", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=300,
    )


def test_help_lists_task_groups():
    done = facevox("--help")
    assert done.returncode == 0
    for group in ("speaker", "fakeface", "face", "invert", "list", "demo"):
        assert group in done.stdout


def test_list_models():
    done = facevox("list", "losses")
    assert done.returncode == 0 and "arcface" in done.stdout and "models" not in done.stdout


def test_user_errors_are_one_line_with_status_2(tmp_path):
    for args in (
        ["demo", "--recipe", str(tmp_path / "missing.yaml")],
        ["demo", "--out", str(tmp_path / "d"), "--set", "speaker.train.lr=fast"],
        ["demo", "--out", str(tmp_path / "d"), "--set", "speaker.model.backbone=nope"],
        ["eval-scores", str(tmp_path / "none.txt")],
        ["list", "gadgets"],
    ):
        done = facevox(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()


def test_eval_scores_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        f"a{i} b{i} {rng.normal(2 if i % 5 == 0 else 0):.4f} {'target' if i % 5 == 0 else 'nontarget'}"
        for i in range(500)
    ]
    (tmp_path / "scores.txt").write_text("\n".join(lines) + "\n")
    done = facevox("eval-scores", str(tmp_path / "scores.txt"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "EER" in done.stdout and "100 target / 400 non-target" in done.stdout
    for name in ("metrics.json", "roc.png", "det.png", "report.html"):
        assert (tmp_path / "out" / name).is_file()


TINY_DEMO = [
    "corpus.train_speakers=8", "corpus.train_utterances=4", "corpus.test_speakers=4", "corpus.test_utterances=3",
    "corpus.seconds=[1.0, 1.5]", "speaker.data.calib_speakers=2", "speaker.data.crops_per_epoch=64",
    "speaker.data.crop_seconds=1.0", "speaker.model.backbone_kwargs={channels: 32, embed_dim: 32}",
    "speaker.train.epochs=2", "speaker.train.precision=fp32", "speaker.train.batch_size=16",
]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    done = facevox("demo", "--out", str(out), *[a for kv in TINY_DEMO for a in ("--set", kv)])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "EER" in done.stdout and "report:" in done.stdout
    import facevox as fv

    model = fv.load_model(out / "speaker" / "model")
    assert model.facevox_spec["name"] == "speaker_embedder"
    assert "calibration" in model.facevox_extra
    assert (out / "speaker" / "eval" / "report.html").is_file()
    assert "epochs: 2" in (out / "speaker" / "config.yaml").read_text()
