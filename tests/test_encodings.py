"""Bytes that are not UTF-8 in trial lists, pairs and score files, manifests, model folders and
file names: a one-line error naming the file (or, for a file named directly, just working),
never a UnicodeDecodeError or UnicodeEncodeError traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from conftest import one_line_error
from facevox.audio.io import save_wav
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.errors import FacevoxError
from facevox.textfile import read_text

BAD = b"\xff\xfe"  # never valid UTF-8
BAD_NAME = os.fsdecode(b"\xff\xfe.wav")  # a valid Linux file name all the same

TINY_XVECTOR = {"channels": 8, "embed_dim": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny speaker corpus, real/fake images, and a speaker, fakeface and face model folder."""
    root = tmp_path_factory.mktemp("enc")
    rng = np.random.default_rng(0)
    for s in ("spk1", "spk2"):
        for u in ("u1", "u2"):
            save_wav(root / "corpus" / s / f"{u}.wav", 0.3 * rng.standard_normal(16000).astype(np.float32))
    for c in ("real", "fake"):
        (root / "images" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "images" / c / f"{i}.png")
    torch.manual_seed(0)
    card = ModelCard(task="speaker verification (embedding model)", data="noise", licence="MIT")
    sp = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs=TINY_XVECTOR)
    ff = facevox.create_model("resnet18", num_classes=1, width=8)
    fc = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    return {
        "root": root, "corpus": root / "corpus", "images": root / "images",
        "speaker": save_model(root / "sp", sp, card=card, config={"note": "x"}, extra={"kind": "embedding"}),
        "fakeface": save_model(root / "ff", ff, card=ModelCard(task="fakeface", data="x", licence="x"),
                               extra={"load_size": 32, "threshold": 0.5}),
        "face": save_model(root / "fc", fc, card=ModelCard(task="face", data="x", licence="x"),
                           extra={"input_size": [16, 16], "flip": False}),
    }


def test_read_text_names_the_byte_and_offset(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"1 a.wav b.wav\n0 " + BAD + b".wav c.wav\n")
    with pytest.raises(FacevoxError, match=r"not UTF-8 text \(byte 0xff at offset 16\)") as info:
        read_text(path)
    assert info.value.where == str(path)
    path.write_bytes("\ufeffpath,speaker\n".encode())  # a byte-order mark is dropped
    assert read_text(path) == "path,speaker\n"


def test_trial_list(capsys, world, tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_bytes(b"1 spk1/u1.wav spk1/u2.wav\n0 spk1/u1.wav spk2/" + BAD + b".wav\n")
    out = tmp_path / "out"
    one_line_error(capsys, ["speaker", "eval", trials, "--audio-root", world["corpus"], "--model", world["speaker"],
                            "--out", out, "--no-cache"], f"{trials}: not UTF-8 text (byte 0xff at offset 45)", out=out)


def test_score_file(capsys, tmp_path):
    scores = tmp_path / "scores.txt"
    scores.write_bytes(b"0.9 1\n0.1 0 # caf\xe9\n")
    out = tmp_path / "out"
    one_line_error(capsys, ["eval-scores", scores, "--out", out], f"{scores}: not UTF-8 text (byte 0xe9", out=out)


def test_face_pairs_file(capsys, world, tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_bytes(b"1\t1\nreal\t1\t2\n" + BAD + b"\t1\tfake\t1\n")
    out = tmp_path / "out"
    one_line_error(capsys, ["face", "eval", pairs, "--root", world["images"], "--model", world["face"], "--out", out],
                   f"{pairs}: not UTF-8 text (byte 0xff at offset 13)", out=out)


def test_speaker_manifest(capsys, world, tmp_path):
    manifest = world["corpus"] / "bad.csv"
    manifest.write_bytes(b"path,speaker\nspk1/u1.wav,J\xf6rg\n")
    out = tmp_path / "t.txt"
    one_line_error(capsys, ["speaker", "trials", manifest, "--out", out], f"{manifest}: not UTF-8 text", out=out)
    manifest.write_bytes("\ufeffpath,speaker\nspk1/u1.wav,a\nspk2/u1.wav,b\n".encode())  # a BOM is fine
    assert main(["speaker", "trials", str(manifest), "--out", str(out)]) == 0
    assert out.read_text() == "0 spk1/u1.wav spk2/u1.wav\n"
    manifest.unlink()


def test_fakeface_manifest_and_split_file(capsys, world, tmp_path):
    out = tmp_path / "out"
    manifest = world["root"] / "m.csv"
    manifest.write_bytes(b"path,label,skin\nimages/real/0.png,real,caf\xe9\nimages/fake/0.png,fake,x\n")
    one_line_error(capsys, ["fakeface", "eval", "--data", manifest, "--model", world["fakeface"], "--out", out],
                   f"{manifest}: not UTF-8 text (byte 0xe9", out=out)
    manifest.write_bytes(b"path,label,split\nimages/real/0.png,real,test\n\xff")
    one_line_error(capsys, ["fakeface", "eval", "--data", manifest, "--model", world["fakeface"], "--out", out],
                   f"{manifest}: not UTF-8 text (byte 0xff", out=out)
    manifest.unlink()


@pytest.mark.parametrize("name", ["README.md", "model.yaml", "extra.json", "config.yaml", "metrics.json"])
def test_model_folder_text_files(capsys, world, tmp_path, name):
    import shutil

    folder = Path(shutil.copytree(world["speaker"], tmp_path / "m"))
    (folder / name).write_bytes((folder / name).read_bytes() + b"\n# \xff\n")
    wav = world["corpus"] / "spk1" / "u1.wav"
    one_line_error(capsys, ["speaker", "verify", wav, wav, "--model", folder],
                   f"{folder / name}: not UTF-8 text (byte 0xff at offset")


def test_a_wav_named_in_bytes_that_are_not_utf8(capsys, world, tmp_path):
    corpus = tmp_path / "corpus"
    import shutil

    shutil.copytree(world["corpus"], corpus)
    odd = corpus / "spk2" / BAD_NAME
    shutil.copy(world["corpus"] / "spk2" / "u1.wav", odd)
    out = tmp_path / "trials.txt"
    line = one_line_error(capsys, ["speaker", "trials", corpus, "--out", out], "file name is not UTF-8", out=out)
    assert "spk2/\\xff\\xfe.wav" in line
    # named directly it is just a file: verify reads it and prints the score
    assert main(["speaker", "verify", str(odd), str(corpus / "spk2" / "u1.wav"), "--model", str(world["speaker"])]) == 0
    assert capsys.readouterr().out.startswith("score 1.0000")
    one_line_error(capsys, ["speaker", "verify", str(corpus / BAD_NAME), str(odd), "--model", world["speaker"]],
                   "\\xff\\xfe.wav: file not found")


def test_image_names_that_are_not_utf8(capsys, world, tmp_path):
    import shutil

    images = Path(shutil.copytree(world["images"], tmp_path / "images"))
    shutil.copy(images / "real" / "0.png", images / "real" / os.fsdecode(b"\xff.png"))
    one_line_error(capsys, ["fakeface", "predict", images, "--model", world["fakeface"]], "real/\\xff.png",
                   "file name is not UTF-8")
    out = tmp_path / "pairs.txt"
    one_line_error(capsys, ["face", "pairs", images, "--out", out, "--folds", "1", "--per-fold", "1"],
                   "file name is not UTF-8", out=out)
    split = tmp_path / "split.csv"
    one_line_error(capsys, ["fakeface", "train", "--data", images, "--split", split, "--out", tmp_path / "run",
                            "--set", "model.name=spectral_logreg"], "file name is not UTF-8", out=split)
