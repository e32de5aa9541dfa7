"""``facevox speaker attack`` and ``facevox fakeface attack`` end to end on generated audio and images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from conftest import one_line_error, tiny_speaker_folder
from facevox.audio.synth import make_corpus
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.inference_spec import FakeFaceSpec


@pytest.fixture(scope="module")
def speaker_model(tmp_path_factory) -> Path:
    return tiny_speaker_folder(tmp_path_factory.mktemp("m") / "sp", embed_dim=8)


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = facevox.create_model("resnet18", num_classes=1, width=8)
    return save_model(tmp_path_factory.mktemp("m") / "ff", net, extra=FakeFaceSpec(load_size=32).to_extra(),
                      card=ModelCard(task="GAN-generated face detection", data="noise", licence="MIT"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("c") / "corpus", n_speakers=3, utterances=3, seconds=(0.6, 0.8),
                       seed=2, progress=False)


def test_speaker_attack_identification_end_to_end(speaker_model, corpus, tmp_path, capsys):
    out = tmp_path / "att"
    assert main(["speaker", "attack", str(corpus), "--model", str(speaker_model), "--attack", "fgsm", "pgd",
                 "foolhd", "--snr-db", "10", "30", "--pgd-steps", "3", "--foolhd-steps", "3", "--seconds", "0.5",
                 "--examples", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "foolhd" in printed and "success" in printed and "report:" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["attack"], r["budget"]) for r in summary} == {("fgsm", 10.0), ("fgsm", 30.0), ("pgd", 10.0),
                                                            ("pgd", 30.0), ("foolhd", None)}
    for r in summary:
        assert r["n"] == 6 and 0 <= r["success_rate"] <= 1
        if r["budget"] is not None:  # the budget holds: SNR at least the budget
            assert r["snr_db"] >= r["budget"] - 1e-3
    pgd10 = next(r for r in summary if r["attack"] == "pgd" and r["budget"] == 10.0)
    pgd30 = next(r for r in summary if r["attack"] == "pgd" and r["budget"] == 30.0)
    assert pgd10["adversarial_accuracy"] <= pgd30["adversarial_accuracy"] + 1e-9  # more budget, more harm
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 6
    for name in ("report.html", "accuracy.png", "metrics.json"):
        assert (out / name).is_file()
    assert list((out / "examples").glob("*_adversarial.wav"))


def test_speaker_attack_verification(speaker_model, corpus, tmp_path, capsys):
    out = tmp_path / "ver"
    assert main(["speaker", "attack", str(corpus), "--model", str(speaker_model), "--mode", "verification",
                 "--attack", "pgd", "--snr-db", "20", "--pgd-steps", "2", "--seconds", "0.5", "--threshold", "0.5",
                 "--no-perceptual", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "verification" and m["threshold"] == 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["n"] == 3 * 4  # each speaker: its 2 probes (targets) and the next speaker's 2 (non-targets)


def _images(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def test_fakeface_attack_end_to_end(detector, tmp_path, capsys):
    data, out = _images(tmp_path / "data"), tmp_path / "att"
    assert main(["fakeface", "attack", str(data), "--model", str(detector), "--eps", "2/255", "8/255",
                 "--pgd-steps", "3", "--out", str(out)]) == 0
    assert "AP clean" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["average_precision"]) == {"clean", "pgd@2/255", "pgd@8/255"}
    summary = json.loads((out / "summary.json").read_text())
    for r in summary:
        assert r["linf"] <= r["budget"] + 1e-6 and r["n"] == 12
    assert (out / "examples.png").is_file() or not summary[-1]["success_rate"]


def test_attack_bad_inputs_are_one_line(speaker_model, detector, corpus, tmp_path, capsys):
    one_line_error(capsys, ["speaker", "attack", corpus, "--model", detector, "--out", tmp_path / "x"],
                   "this is a fakeface model folder")
    one_line_error(capsys, ["speaker", "attack", corpus, "--model", speaker_model, "--mode", "verification",
                            "--attack", "foolhd", "--out", tmp_path / "y"], "FoolHD attacks speaker identification")
    one_line_error(capsys, ["fakeface", "attack", corpus, "--model", detector, "--eps", "4/0",
                            "--out", tmp_path / "z"], "--eps")
    for args in (["speaker", "attack", str(corpus), "--model", str(speaker_model), "--snr-db", "0"],
                 ["speaker", "attack", str(corpus), "--model", str(speaker_model), "--attack", "cw"]):
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error" in err[0]
