"""Fusing a detector with a pretrained face-descriptor probe (``fakeface fuse``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.metrics import average_precision
from facevox.tasks.fakeface.face_probe import FaceProbe, face_descriptors, fit_face_probe
from test_fakeface import facevox, make_images


def _parts(rng: np.random.Generator, cnn_informative: bool, probe_informative: bool):
    labels, logits, desc = {}, {}, {}
    for part, n in (("train", 80), ("val", 40), ("test", 40)):
        y = np.array([0, 1] * (n // 2))
        labels[part] = y
        logits[part] = rng.normal(0, 1, n) + (3.0 * (2 * y - 1) if cnn_informative else 0.0)
        d = rng.normal(0, 1, (n, 8))
        if probe_informative:
            d[:, 0] += 3.0 * (2 * y - 1)
        desc[part] = d
    return logits, desc, labels


@pytest.mark.parametrize(("cnn_good", "probe_good", "weights"), [
    (False, True, {0.0, 0.25}), (True, False, {0.75, 1.0}),
])
def test_the_weight_follows_whichever_part_carries_the_signal(cnn_good, probe_good, weights):
    logits, desc, labels = _parts(np.random.default_rng(0), cnn_good, probe_good)
    probe = fit_face_probe(logits, desc, labels, (0.0, 0.0, 1.0, 1.0))
    assert probe.cnn_weight in weights
    assert average_precision(probe.fuse(logits["test"], desc["test"]), labels["test"]) > 0.9


def test_fused_score_is_the_documented_formula_and_survives_json():
    logits, desc, labels = _parts(np.random.default_rng(1), True, True)
    probe = fit_face_probe(logits, desc, labels, (0.1, 0.2, 0.9, 0.8))
    assert probe.calib_scale > 0
    raw = probe.cnn_weight * logits["test"] / probe.cnn_scale \
        + (1 - probe.cnn_weight) * (desc["test"] @ probe.coef + probe.intercept) / probe.probe_scale
    np.testing.assert_allclose(probe.fuse(logits["test"], desc["test"]), probe.calib_scale * raw + probe.calib_bias)
    again = FaceProbe.from_json(json.loads(json.dumps(probe.to_json())))
    np.testing.assert_allclose(again.fuse(logits["test"], desc["test"]), probe.fuse(logits["test"], desc["test"]))
    assert again.box == (0.1, 0.2, 0.9, 0.8)
    with pytest.raises(FacevoxError, match="face_probe entry"):
        FaceProbe.from_json({"coef": [1.0]})


def test_fitting_needs_both_classes_in_val():
    logits, desc, labels = _parts(np.random.default_rng(2), True, True)
    labels["val"] = np.zeros_like(labels["val"])
    with pytest.raises(FacevoxError, match="'val' split"):
        fit_face_probe(logits, desc, labels, (0.0, 0.0, 1.0, 1.0))


def test_descriptors_are_taken_of_the_box():
    class Recorder:
        def embed(self, crops):
            self.shapes = [c.shape for c in crops]
            return np.zeros((len(crops), 128))

    rec = Recorder()
    out = face_descriptors([np.zeros((100, 200, 3), np.uint8)], (0.25, 0.1, 0.75, 0.6), rec)
    assert out.shape == (1, 128) and rec.shapes == [(50, 100, 3)]


HAVE_DLIB = all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))
NO_DLIB = 'dlib-bin and face-recognition-models are not installed (pip install "facevox[face-baseline]")'


@pytest.mark.skipif(not HAVE_DLIB, reason=NO_DLIB)
def test_loading_the_dlib_backend_keeps_truncated_images_errors():
    # the face_recognition wrapper's import sets PIL's LOAD_TRUNCATED_IMAGES for the whole process;
    # the backend reads dlib's model files without it (and without pkg_resources). In a fresh
    # process, so that no other test's imports count.
    code = ("import sys; from PIL import ImageFile; from facevox.tasks.face.dlib_backend import DlibEmbedder; "
            "DlibEmbedder(); bad = {'face_recognition', 'face_recognition_models', 'pkg_resources'} "
            "& set(sys.modules); assert not bad, bad; assert ImageFile.LOAD_TRUNCATED_IMAGES is False")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr[-2000:]


@pytest.mark.skipif(not HAVE_DLIB, reason=NO_DLIB)
def test_cli_fuse_eval_predict(tmp_path):
    data, run, fused = tmp_path / "data", tmp_path / "run", tmp_path / "fused"
    make_images(data, n=15)
    done = facevox("fakeface", "train", "--data", str(data), "--out", str(run), "--set", "model.name=spectral_logreg")
    assert done.returncode == 0, done.stderr[-2000:]
    done = facevox("fakeface", "fuse", "--model", str(run / "model"), "--split", str(run / "split.csv"),
                   "--out", str(fused))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fused" in done.stdout and "chosen on val" in done.stdout
    extra = json.loads((fused / "extra.json").read_text())
    assert len(extra["face_probe"]["coef"]) == 128 and extra["load_size"] == 256
    metrics = json.loads((fused / "fuse_metrics.json").read_text())
    assert set(metrics) >= {"cnn", "face_probe", "fused", "cnn_weight"}
    assert "Fused with a face-descriptor probe" in (fused / "README.md").read_text()

    done = facevox("fakeface", "eval", "--model", str(fused), "--data", str(run / "split.csv"),
                   "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr[-2000:]
    ap = json.loads((tmp_path / "eval" / "metrics.json").read_text())["average_precision"]
    assert ap == pytest.approx(metrics["fused"]["average_precision"])  # eval scores what fuse measured
    done = facevox("fakeface", "predict", str(data / "fake"), "--model", str(fused))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.strip().splitlines()) == 15

    bad_box = ["--face-box", "0.8", "0", "0.2", "1"]
    for model, out, box, problem in [(fused, tmp_path / "twice", [], "already fused"),
                                     (run / "model", run / "model", [], "its own folder"),
                                     (run / "model", tmp_path / "x", bad_box, "x0 < x1")]:
        done = facevox("fakeface", "fuse", "--model", str(model), "--split", str(run / "split.csv"),
                       "--out", str(out), *box)
        assert done.returncode != 0 and problem in done.stderr, (problem, done.stderr[-500:])
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "twice").exists() and not (tmp_path / "x").exists()
