"""``speaker embed`` / ``face embed`` write a store that ``eval --embeddings`` reuses, with the same results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from facevox.audio.synth import make_corpus
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.tasks.speaker.corpus import make_trials, read_corpus, write_trials

CARD = ModelCard(task="test", data="generated", licence="MIT")


@pytest.fixture(scope="module")
def speaker(tmp_path_factory):
    root = tmp_path_factory.mktemp("spk")
    corpus = make_corpus(root / "corpus", n_speakers=4, utterances=3, seconds=(0.8, 1.2), seed=1, progress=False)
    write_trials(root / "trials.txt", make_trials(read_corpus(corpus), mode="all"))
    torch.manual_seed(0)
    model = facevox.create_model("speaker_embedder", backbone="xvector",
                                 backbone_kwargs={"channels": 8, "embed_dim": 8})
    folder = save_model(root / "model", model, extra={"kind": "embedding"}, card=CARD)
    return root, corpus, folder


def test_speaker_embed_then_eval_reuses_the_store(speaker, tmp_path, monkeypatch, capsys):
    root, corpus, folder = speaker
    monkeypatch.setenv("FACEVOX_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "store"
    assert main(["speaker", "embed", str(corpus), "--model", str(folder), "--out", str(store),
                 "--workers", "0", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "12 of 12 files in the store (12 new)" in out, out
    meta = json.loads((store / "meta.json").read_text())
    assert meta["count"] == 12 and meta["dim"] == 8 and meta["dtype"] == "float32"

    base = ["speaker", "eval", str(root / "trials.txt"), "--audio-root", str(corpus), "--model", str(folder),
            "--workers", "0"]
    assert main([*base, "--no-cache", "--out", str(tmp_path / "plain")]) == 0
    import facevox.tasks.speaker.scoring as scoring

    def refuse(*args, **kwargs):
        raise AssertionError("a stored file was decoded again")

    monkeypatch.setattr(scoring, "extract_waves", refuse)
    assert main([*base, "--embeddings", str(store), "--out", str(tmp_path / "stored")]) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    stored = json.loads((tmp_path / "stored" / "metrics.json").read_text())
    assert stored["eer"] == plain["eer"] and stored["min_dcf_0.01"] == plain["min_dcf_0.01"]
    assert (tmp_path / "stored" / "scores.txt").read_text() == (tmp_path / "plain" / "scores.txt").read_text()
    assert not (tmp_path / "cache").exists()  # --embeddings replaces the default cache

    # the same files again: nothing new; one more file: one new part, the old one untouched
    monkeypatch.undo()
    extra = corpus / "spk000" / "extra.wav"
    extra.write_bytes((corpus / "spk000" / "utt00.wav").read_bytes())
    capsys.readouterr()
    assert main(["speaker", "embed", str(corpus), "--model", str(folder), "--out", str(store), "--workers", "0"]) == 0
    assert "13 of 13 files in the store (1 new)" in capsys.readouterr().out
    assert len(list(store.glob("part-*"))) == 2
    extra.unlink()


def test_speaker_eval_with_as_norm_from_a_store_equals_without(speaker, tmp_path, monkeypatch):
    root, corpus, folder = speaker
    monkeypatch.setenv("FACEVOX_CACHE", str(tmp_path / "cache"))
    base = ["speaker", "eval", str(root / "trials.txt"), "--audio-root", str(corpus), "--model", str(folder),
            "--cohort", str(corpus), "--asnorm-top-k", "3", "--workers", "0"]
    assert main([*base, "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b")]) == 0  # fills the default cache
    assert main([*base, "--out", str(tmp_path / "c")]) == 0  # reads it
    a, c = (np.array([float(x.split()[2]) for x in (tmp_path / n / "scores.txt").read_text().splitlines()])
            for n in ("a", "c"))
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_speaker_embed_list_file_and_bad_files(speaker, tmp_path, capsys):
    _, corpus, folder = speaker
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFFxxxxWAVE")
    listing = tmp_path / "files.txt"
    listing.write_text(f"{corpus / 'spk000' / 'utt00.wav'}\n# a comment\n\nbad.wav\n")
    cmd = ["speaker", "embed", str(listing), "--model", str(folder), "--out", str(tmp_path / "s"), "--workers", "0"]
    capsys.readouterr()
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("facevox: error: ") and "bad.wav" in err, err
    assert main([*cmd, "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "1 of 2 files" in captured.out and "skipped 1 bad audio file(s)" in captured.err
    listing.write_text("notes.pdf\n")
    assert main(cmd) == 2
    assert "line 1: not an audio file extension: notes.pdf" in capsys.readouterr().err


def _faces(root):
    rng = np.random.default_rng(0)
    for p in range(4):
        base = rng.integers(0, 256, (32, 32, 3))
        for i in range(3):
            img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            (root / f"p{p}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / f"p{p}" / f"{i}.png")
    return root


def test_face_embed_then_eval_reuses_the_store(tmp_path, capsys):
    from facevox.tasks.face.pairs import make_pairs, read_identities, write_pairs

    faces = _faces(tmp_path / "faces")
    write_pairs(tmp_path / "pairs.txt", make_pairs(read_identities(faces), 2, 3, 0, None), 2, 3)
    torch.manual_seed(0)
    model = facevox.create_model("mobilefacenet", embed_dim=16, input_size=(32, 32), width=8)
    folder = save_model(tmp_path / "model", model, extra={"input_size": [32, 32], "flip": True}, card=CARD)
    store = tmp_path / "store"
    assert main(["face", "embed", str(faces), "--model", str(folder), "--out", str(store), "--workers", "0"]) == 0
    assert "12 of 12 images" in capsys.readouterr().out
    base = ["face", "eval", str(tmp_path / "pairs.txt"), "--root", str(faces), "--model", str(folder),
            "--identify", str(faces), "--workers", "2", "--batch-size", "5"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--embeddings", str(store), "--out", str(tmp_path / "stored")]) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    stored = json.loads((tmp_path / "stored" / "metrics.json").read_text())
    for key in ("eer", "kfold_accuracy"):
        assert stored[key] == pytest.approx(plain[key], abs=1e-9)
    assert stored["identification"] == plain["identification"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_absent_is_a_one_line_error(speaker, tmp_path, capsys):
    root, corpus, folder = speaker
    for cmd in (["speaker", "embed", str(corpus), "--out", str(tmp_path / "s")],
                ["speaker", "eval", str(root / "trials.txt"), "--audio-root", str(corpus), "--no-cache",
                 "--out", str(tmp_path / "e")]):
        assert main([*cmd, "--model", str(folder), "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err == "facevox: error: --device: CUDA was asked for but no GPU is available\n", err
    assert not (tmp_path / "s").exists() and not (tmp_path / "e").exists()
