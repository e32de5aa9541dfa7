"""facevox.load: model folders and backends -> the task's inference object."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

import facevox
from facevox.errors import FacevoxError
from facevox.verification.calibration import Calibration

SR = 16000
TINY_XVECTOR = {"channels": 16, "embed_dim": 8}


def _speaker_folder(tmp_path, calibration=None):
    model = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs=TINY_XVECTOR)
    extra = {"kind": "embedding"}
    if calibration is not None:
        extra["calibration"] = calibration.to_dict()
    return facevox.save_model(tmp_path / "model", model, extra=extra,
                              card=facevox.ModelCard(task="speaker verification", data="none", licence="MIT"))


def _waves(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    a = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    b = (0.3 * np.sin(2 * np.pi * 700 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    pa, pb = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(pa, a, SR)
    sf.write(pb, b, SR)
    return pa, pb, a, b


def test_load_speaker_folder_verifies_and_embeds(tmp_path):
    cal = Calibration(a=4.0, b=-1.0, threshold=0.25, target_far=0.01, n_target=10, n_nontarget=90)
    sv = facevox.load(_speaker_folder(tmp_path, cal), device="cpu")
    assert isinstance(sv, facevox.SpeakerVerifier) and sv.threshold == 0.25
    pa, pb, a, b = _waves(tmp_path)
    score, same, p_same = sv.verify(pa, pb)
    assert -1 <= score <= 1 and same == (score >= 0.25)
    assert p_same == pytest.approx(1 / (1 + np.exp(-(4.0 * score - 1.0))), rel=1e-6)
    # a file and its waveform give the same score; a recording with itself scores 1
    assert sv.verify(a, pb).score == pytest.approx(score, abs=1e-5)
    assert sv.verify(pa, pa).score == pytest.approx(1.0, abs=1e-5)
    emb = sv.embed([pa, pb])
    assert emb.shape == (2, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert float(emb[0] @ emb[1]) == pytest.approx(score, abs=1e-5)
    assert sv.embed(pa).shape == (8,)


def test_load_without_calibration_answers_no_decision(tmp_path):
    sv = facevox.load(_speaker_folder(tmp_path), device="cpu")
    pa, pb, _, _ = _waves(tmp_path)
    d = sv.verify(pa, pb)
    assert d.same is None and d.p_same is None and np.isfinite(d.score)


def test_load_errors(tmp_path):
    with pytest.raises(FacevoxError, match="not a backend"):
        facevox.load(tmp_path / "nothing")
    with pytest.raises(FacevoxError, match="unknown option"):
        facevox.load(_speaker_folder(tmp_path), colour="red")
    sv = facevox.load(tmp_path / "model", device="cpu")
    with pytest.raises(FacevoxError, match="waveform"):
        sv.verify(np.zeros((2, 10), np.float32), np.zeros(SR, np.float32))


def test_face_verifier_identifies_with_a_model_folder(tmp_path):
    from PIL import Image

    model = facevox.create_model("mobilefacenet", embed_dim=16, input_size=(32, 32), width=8)
    folder = facevox.save_model(tmp_path / "face", model, extra={"task": "face", "input_size": [32, 32], "flip": False,
                                                                   "loss": "arcface", "threshold": 0.5},
                                card=facevox.ModelCard(task="face verification", data="none", licence="MIT"))
    rng = np.random.default_rng(1)
    paths = {}
    for name in ("ann", "bob"):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(img).save(paths[name])
    fv = facevox.load(folder, aligned=True, device="cpu")
    assert isinstance(fv, facevox.FaceVerifier) and fv.threshold == 0.5
    d = fv.verify(paths["ann"], paths["ann"])
    assert d.score == pytest.approx(1.0, abs=1e-5) and d.same is True
    top = fv.identify(paths["bob"], {"ann": [paths["ann"]], "bob": [paths["bob"]]}, k=2)
    assert [n for n, _ in top] == ["bob", "ann"] and top[0][1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("resemblyzer"), reason="resemblyzer not installed")
def test_readme_example_resemblyzer(tmp_path):
    pa, pb, _, _ = _waves(tmp_path)
    score, same, p_same = facevox.load("resemblyzer").verify(pa, pb)
    assert -1 <= score <= 1
    assert (same is None) == (p_same is None)


def test_shipped_resemblyzer_calibration_is_sane():
    from facevox.verification.calibration import backend_calibration, backend_card

    card = backend_card("resemblyzer")
    cal = backend_calibration("resemblyzer")
    assert card["similarity"] == "cosine" and "LibriSpeech" in card["fitted_on"]["data"]
    assert cal.a > 0 and -1 < cal.threshold < 1 and cal.target_far == 0.01  # P(same) rises with the score
    assert cal.probability(cal.threshold + 0.1) > cal.probability(cal.threshold) > cal.probability(cal.threshold - 0.1)
    assert card["evaluated_on"]["far_at_threshold"] <= 0.05
    assert backend_card("no-such-backend") is None


def test_shipped_dlib_calibration_is_sane():
    from facevox.verification.calibration import backend_calibration, backend_card

    card, cal = backend_card("dlib"), backend_calibration("dlib")
    assert card["similarity"] == "euclidean" and "ORL" in card["fitted_on"]["data"]
    # the score is minus the Euclidean distance: the threshold is near dlib's own distance of 0.6
    assert cal.a > 0 and -0.8 < cal.threshold < -0.4 and cal.target_far == 0.01
    assert card["evaluated_on"]["far_at_threshold"] <= 0.05 and card["detection_failures"]["count"] >= 0
    assert cal.n_target + cal.n_nontarget == card["fitted_on"]["trials"]


@pytest.mark.skipif(not __import__("importlib").util.find_spec("resemblyzer"), reason="resemblyzer not installed")
def test_speaker_verify_with_no_model_decides(tmp_path, capsys):
    from facevox.cli import main

    pa, pb, _, _ = _waves(tmp_path)
    assert main(["speaker", "verify", str(pa), str(pa)]) == 0
    out = capsys.readouterr().out
    assert "decision same speaker" in out and "P(same) 1.000" in out


@pytest.mark.skipif(not __import__("importlib").util.find_spec("dlib"), reason="dlib not installed")
def test_face_verify_with_no_model_decides(tmp_path, capsys):
    from PIL import Image

    from facevox.cli import main

    rng = np.random.default_rng(0)
    crop = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(crop)
    assert main(["face", "verify", str(crop), str(crop), "--aligned", "--json"]) == 0  # dlib, its shipped calibration
    result = json.loads(capsys.readouterr().out)
    assert result["same"] is True and result["p_same"] > 0.99
    assert result["threshold"] == pytest.approx(-0.5636, abs=1e-3)
