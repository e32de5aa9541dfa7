"""The generated-speech detector: make-fakes on a tiny synthetic corpus, the index, the spectral
baseline and a tiny LCNN trained, evaluated (per generator, re-encoded), used to predict and explained,
all through ``facevox.cli.main``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from facevox.cli import main
from facevox.errors import FacevoxError
from facevox.tasks.voice.detector_data import read_index
from facevox.tasks.voice.detector_eval import perturbation
from facevox.tasks.voice.fakes import make_fakes, speaker_splits

TINY_LCNN = ["--set", "data.crop_seconds=1.0", "--set", "data.window_seconds=1.0", "--set", "train.epochs=1",
             "--set", "train.batch_size=8", "--set", "train.precision=fp32", "--set", "model.channels=[4,4,4,4]",
             "--set", "model.hidden=8", "--set", "train.progress=false"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    from facevox.audio.synth import make_corpus

    root = tmp_path_factory.mktemp("voice")
    corpus = make_corpus(root / "corpus", n_speakers=6, utterances=2, seconds=(1.2, 1.4), seed=1, progress=False)
    torch.set_num_threads(1)
    assert main(["voice", "make-fakes", str(corpus), "--out", str(root / "fakes"), "--clip-seconds", "1",
                 "--workers", "0"]) == 0
    return root


def test_index_is_split_by_speaker_and_fakes_match_their_clips(fakes):
    splits = read_index(fakes / "fakes")
    speakers = {s: {c.groups["speaker"] for c in clips} for s, clips in splits.items()}
    assert all(speakers[s] for s in speakers) and not (speakers["train"] & speakers["test"])
    assert not (speakers["val"] & (speakers["train"] | speakers["test"]))
    clips = [c for s in splits.values() for c in s]
    assert {c.groups["generator"] for c in clips} == {"real", "griffinlim", "synth"}
    assert {c.groups["sex"] for c in clips} == {"m", "f"}  # from make_corpus's speakers.csv
    real = {c.groups["source"] + c.groups["speaker"]: c.path for c in clips if c.label == 0}
    for c in clips:
        wave, rate = sf.read(c.path)
        ref, _ = sf.read(real[c.groups["source"] + c.groups["speaker"]])
        assert rate == 16000 and len(wave) == 16000 == len(ref)
        assert np.sqrt(np.mean(wave**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.05)  # loudness matched


def test_speaker_split_is_deterministic_and_fills_every_split():
    names = [f"s{i}" for i in range(10)]
    a, b = speaker_splits(names, (0.7, 0.1, 0.2), 3), speaker_splits(list(reversed(names)), (0.7, 0.1, 0.2), 3)
    assert a == b and sorted(a.values()).count("test") == 2 and "val" in a.values()


def test_spectral_baseline_separates_griffinlim_and_cross_generator_flag(fakes, capsys):
    out = fakes / "run_spectral"
    assert main(["voice", "train", str(fakes / "fakes"), "--recipe", "spectral", "--out", str(out),
                 "--train-generators", "griffinlim", "--set", "data.window_seconds=1.0"]) == 0
    extra = json.loads((out / "model" / "extra.json").read_text())
    assert extra["task"] == "voice-detector" and extra["train_generators"] == ["griffinlim"]
    assert extra["train_clips"] == sum(1 for c in read_index(fakes / "fakes")["train"]
                                       if c.groups["generator"] in ("real", "griffinlim"))
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["per_generator"]) == {"griffinlim", "synth"}  # the held-out generator is scored too
    assert metrics["per_generator"]["griffinlim"]["average_precision"] > 0.9
    assert "speaker" in metrics["groups"] and "sex" in metrics["groups"]
    assert "griffinlim" in capsys.readouterr().out


def test_lcnn_train_eval_perturbed_predict_explain(fakes, tmp_path):
    run = tmp_path / "run"
    assert main(["voice", "train", str(fakes / "fakes" / "index.csv"), "--out", str(run), *TINY_LCNN]) == 0
    model = run / "model"
    assert (model / "model.safetensors").is_file() and "voice-detector" in (model / "model.yaml").read_text()
    ev = tmp_path / "eval"
    assert main(["voice", "eval", str(model), str(fakes / "fakes"), "--out", str(ev), "--generators", "synth",
                 "--perturb", "resample8k"]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert set(m["per_generator"]) == {"synth"} and set(m["robustness"]) == {"none", "resample8k"}
    assert 0 <= m["eer"] <= 1 and (ev / "report.html").is_file() and (ev / "misclassified.csv").is_file()
    wav = next((fakes / "fakes" / "griffinlim").rglob("*.wav"))
    pred = tmp_path / "p.csv"
    assert main(["voice", "predict", str(model), str(wav), str(fakes / "fakes" / "real"), "--out", str(pred)]) == 0
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == 1 + len(list((fakes / "fakes" / "real").rglob("*.wav")))
    assert all(0 <= float(r["p_fake"]) <= 1 and r["label"] in ("real", "fake") for r in rows)
    import facevox

    detector = facevox.load(model, device="cpu")
    p = detector.score_files([wav])
    assert p.shape == (1,) and abs(float(p[0]) - float(rows[0]["p_fake"])) < 1e-5
    ex = tmp_path / "explain"
    assert main(["voice", "explain", str(model), str(wav), "--out", str(ex), "--method", "saliency", "gradcam"]) == 0
    assert (ex / "saliency.png").stat().st_size > 1000
    assert np.load(ex / "gradcam.npy").shape == (257, 101)


def test_melgan_through_a_vocoder_and_its_errors(fakes, tmp_path):
    with pytest.raises(FacevoxError, match="needs a trained vocoder"):
        make_fakes(fakes / "corpus", tmp_path / "x", generators=["melgan"])
    with pytest.raises(FacevoxError, match="unknown generator 'wavenet'"):
        make_fakes(fakes / "corpus", tmp_path / "x", generators=["wavenet"])
    assert not (tmp_path / "x").exists()
    # load_vocoder("griffinlim") stands in for a trained MelGAN folder: the same interface
    r = make_fakes(fakes / "corpus", tmp_path / "m", generators=["melgan"], vocoder="griffinlim", clip_seconds=1.0,
                   max_clips=2, workers=0, progress=False)
    assert r["clips"] == 2 and len(list((tmp_path / "m" / "melgan").rglob("*.wav"))) == 2


@pytest.mark.parametrize("name", ["mp3", "ogg", "resample8k"])
def test_perturbations_keep_the_length(name):
    wave = np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.3
    out = perturbation(name)(wave)
    assert out.shape == wave.shape and np.corrcoef(out, wave)[0, 1] > 0.5


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t.replace(",generator", ",maker"), "needs a generator column"),
    (lambda t: t.replace(",synth,", ",wavenet,", 1), "unknown generator 'wavenet'"),
    (lambda t: t.replace("fake,val,synth", "real,val,synth", 1), "a real clip with generator 'synth'"),
])
def test_bad_index_names_the_file(fakes, tmp_path, edit, problem):
    bad = fakes / "fakes" / "bad_index.csv"
    bad.write_text(edit((fakes / "fakes" / "index.csv").read_text()))
    try:
        with pytest.raises(FacevoxError, match=problem) as err:
            read_index(bad)
        assert "bad_index.csv" in str(err.value)
    finally:
        bad.unlink()
