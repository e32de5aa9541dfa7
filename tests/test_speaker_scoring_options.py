"""Speaker scoring options: short clips (--min-seconds and the tiling rule), k-fold accuracy and
identification in speaker eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_line_error, tiny_speaker_folder
from facevox.audio.io import save_wav
from facevox.audio.synth import make_corpus
from facevox.cli import main
from facevox.tasks.speaker.corpus import make_trials, read_corpus, write_trials
from facevox.tasks.speaker.scoring import Chunker, tile_to


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_speaker_folder(tmp_path_factory.mktemp("m") / "sp")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("c") / "corpus", n_speakers=6, utterances=4, seconds=(0.8, 1.0),
                       seed=1, progress=False)


def test_tiling_rule():
    w = np.arange(3, dtype=np.float32)
    assert tile_to(w, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile_to(w, 2) is w  # long enough: unchanged
    chunks = Chunker(window=0, max_len=16000 * 20)(np.ones(4800, np.float32))  # 0.3 s -> 0.5 s
    assert chunks.shape == (1, 8000)


def test_a_short_clip_scores_with_min_seconds(model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    short = save_wav(tmp_path / "short.wav", 0.3 * rng.standard_normal(4800).astype(np.float32))  # 0.3 s
    other = save_wav(tmp_path / "other.wav", 0.3 * rng.standard_normal(16000).astype(np.float32))
    one_line_error(capsys, ["speaker", "verify", short, other, "--model", model], "short.wav", "too short")
    assert main(["speaker", "verify", str(short), str(other), "--model", str(model), "--min-seconds", "0.2",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["score"]
    # the rule: the 0.3 s clip is tiled to 0.5 s, so it scores as that tiled clip does at the default
    tiled = save_wav(tmp_path / "tiled.wav", tile_to(0.3 * np.random.default_rng(0).standard_normal(4800)
                                                     .astype(np.float32), 8000))
    assert main(["speaker", "verify", str(tiled), str(other), "--model", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(got, abs=1e-4)
    with pytest.raises(SystemExit) as stop:
        main(["speaker", "verify", str(short), str(other), "--model", str(model), "--min-seconds", "0"])
    assert stop.value.code == 2 and "--min-seconds: must be a finite number > 0" in capsys.readouterr().err


def test_eval_reports_kfold_accuracy_and_identification(model, corpus, tmp_path, capsys):
    trials = write_trials(tmp_path / "t.txt", make_trials(read_corpus(corpus), mode="all"))
    out = tmp_path / "eval"
    assert main(["speaker", "eval", str(trials), "--audio-root", str(corpus), "--model", str(model), "--no-cache",
                 "--workers", "0", "--identify", str(corpus), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "10-fold accuracy" in printed and "identification: rank-1" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_folds"] == 10 and len(m["kfold_accuracies"]) == 10 and 0 <= m["kfold_accuracy"] <= 1
    ident = m["identification"]
    assert ident["gallery_identities"] == 3 and ident["probes"] == 3 * 3 + 3 * 4 and ident["mated_probes"] == 9
    assert 0 <= ident["rank1"] <= 1 and set(ident["dir"]) == {"0.01", "0.1"}
    assert "Accuracy per fold" in (out / "report.html").read_text()
