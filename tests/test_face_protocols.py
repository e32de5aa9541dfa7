"""Standard face-verification protocols in ``facevox face eval``: LFW pairs files with either header
(``folds n`` / View 1's ``n``), no silent fallback to another photo for a missing LFW image, and
InsightFace validation ``.bin`` files read with a restricted unpickler."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from conftest import one_line_error
from facevox.cli import main
from facevox.errors import FacevoxError
from facevox.tasks.face.insightface_bin import read_bin
from facevox.tasks.face.pairs import SkippedPair, read_pairs


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    return facevox.save_model(tmp_path_factory.mktemp("m") / "model", net,
                              extra={"task": "face", "input_size": [16, 16], "flip": False, "loss": "arcface"},
                              card=facevox.ModelCard(task="face verification", data="none", licence="MIT"))


def person(rng, base, size=20):
    img = np.roll(base, int(rng.integers(-2, 3)), axis=1) + rng.normal(0, 20, base.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def lfw_tree(root, people=4, per=3):
    rng = np.random.default_rng(0)
    for p in range(people):
        name = f"Person_{p}"
        (root / name).mkdir(parents=True)
        base = rng.integers(0, 255, (20, 20, 3)).astype(float)
        for i in range(1, per + 1):
            Image.fromarray(person(rng, base)).save(root / name / f"{name}_{i:04d}.png")


def run(capsys, *args) -> str:
    code = main([str(a) for a in args])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    return stdout


FOLD = ("Person_0\t1\t2\nPerson_1\t1\t3\nPerson_0\t1\tPerson_1\t2\nPerson_2\t1\tPerson_3\t1\n",
        "Person_2\t1\t2\nPerson_3\t2\t3\nPerson_0\t3\tPerson_2\t2\nPerson_1\t1\tPerson_3\t3\n")


def test_one_number_header_is_one_fold(tmp_path, capsys, model):
    lfw_tree(tmp_path / "faces")
    (tmp_path / "dev.txt").write_text("2\n" + FOLD[0])  # pairsDevTest.txt layout: n, n same, n different
    pairs = read_pairs(tmp_path / "dev.txt", tmp_path / "faces")
    assert [p.fold for p in pairs] == [0] * 4 and [p.same for p in pairs] == [True, True, False, False]
    out = run(capsys, "face", "eval", tmp_path / "dev.txt", "--root", tmp_path / "faces", "--model", model,
              "--out", tmp_path / "e", "--workers", "0")
    assert "1-fold accuracy" in out and "same fold" in out and "10-fold" not in out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n_folds"] == 1 and m["pairs_file_folds"] == 1 and m["protocol"].startswith("1-fold")
    assert "same fold" in m["protocol"] and m["kfold_std"] == 0.0
    html = (tmp_path / "e" / "report.html").read_text()
    assert "single fold" in html and "10-fold" not in html
    (tmp_path / "bad.txt").write_text("2\n" + FOLD[0] + FOLD[1])  # says one fold of 4, holds 8
    with pytest.raises(FacevoxError, match="header says 1 fold x 4 pairs = 4, file has 8"):
        read_pairs(tmp_path / "bad.txt", tmp_path / "faces")


def test_two_fold_file(tmp_path, capsys, model):
    lfw_tree(tmp_path / "faces")
    (tmp_path / "pairs.txt").write_text("2 2\n" + FOLD[0] + FOLD[1])
    assert [p.fold for p in read_pairs(tmp_path / "pairs.txt", tmp_path / "faces")] == [0] * 4 + [1] * 4
    out = run(capsys, "face", "eval", tmp_path / "pairs.txt", "--root", tmp_path / "faces", "--model", model,
              "--out", tmp_path / "e", "--workers", "0")
    assert "2-fold accuracy" in out and "same fold" not in out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n_folds"] == 2 and m["protocol"].startswith("2-fold") and "other folds" in m["protocol"]


def test_missing_lfw_image_is_an_error_never_another_photo(tmp_path, capsys, model):
    lfw_tree(tmp_path / "faces")
    (tmp_path / "faces" / "Person_1" / "Person_1_0002.png").unlink()  # Person_1 has _0001 and _0003
    text = "2 2\n" + FOLD[0] + FOLD[1]  # line 4 names Person_1 image 2
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(FacevoxError, match=r"pairs.txt: line 4: no image Person_1_0002\.\*"):
        read_pairs(tmp_path / "pairs.txt", tmp_path / "faces")
    one_line_error(capsys, ["face", "eval", tmp_path / "pairs.txt", "--root", tmp_path / "faces", "--model", model,
                            "--out", tmp_path / "e"], "pairs.txt: line 4", "Person_1_0002", out=tmp_path / "e")
    # image 3 of a folder with 2 files: still no fallback to a count-based rule
    (tmp_path / "faces" / "Person_1" / "Person_1_0001.png").rename(tmp_path / "faces" / "Person_1" / "extra.png")
    with pytest.raises(FacevoxError, match="no image Person_1_0001"):
        read_pairs(tmp_path / "pairs.txt", tmp_path / "faces")
    skipped: list[SkippedPair] = []
    pairs = read_pairs(tmp_path / "pairs.txt", tmp_path / "faces", skipped=skipped)
    assert len(pairs) == 5 and [(s.line, s.missing) for s in skipped] == [
        (3, "Person_1_0001"), (4, "Person_1_0002"), (9, "Person_1_0001")]
    out = run(capsys, "face", "eval", tmp_path / "pairs.txt", "--root", tmp_path / "faces", "--model", model,
              "--out", tmp_path / "e", "--workers", "0", "--skip-missing")
    assert "3 pairs left out" in out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert [s["line"] for s in m["skipped_pairs"]] == [3, 4, 9] and m["n_folds"] == 2


def test_orl_style_folders_keep_the_index_rule(tmp_path):
    (tmp_path / "faces" / "s1").mkdir(parents=True)
    for i in (1, 2, 10):
        Image.new("RGB", (8, 8)).save(tmp_path / "faces" / "s1" / f"{i}.png")
    (tmp_path / "p.txt").write_text("1\ns1\t2\t3\ns1\t1\ts1\t2\n")
    assert [p.b.name for p in read_pairs(tmp_path / "p.txt", tmp_path / "faces")] == ["10.png", "2.png"]


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def bin_data(pairs=20):
    """(bins, issame_list) as InsightFace stores them: pair i is images 2i and 2i+1."""
    rng = np.random.default_rng(1)
    bases = [rng.integers(0, 255, (20, 20, 3)).astype(float) for _ in range(6)]
    bins, same = [], []
    for i in range(pairs):
        s = i % 2 == 0
        a, b = (i % 6, i % 6) if s else (i % 6, (i + 1) % 6)
        bins += [png(person(rng, bases[a])), png(person(rng, bases[b]))]
        same.append(s)
    return bins, same


def python2_pickle(bins: list[bytes], same: list[bool]) -> bytes:
    """``pickle.dump((bins, same), f, 2)`` as Python 2 writes it (bytes are ``str``: BINSTRING opcodes),
    how InsightFace's original files were made."""
    images = b"".join(b"T" + len(b).to_bytes(4, "little") + b for b in bins)
    labels = b"".join(b"\x88" if v else b"\x89" for v in same)
    return b"\x80\x02](" + images + b"e](" + labels + b"e\x86."


@pytest.mark.parametrize("variant", ["protocol4", "protocol2", "numpy-labels", "python2"])
def test_insightface_bin_is_scored_in_ten_folds(tmp_path, capsys, model, variant):
    bins, same = bin_data()
    obj = (bins, np.array(same)) if variant == "numpy-labels" else (bins, same)
    protocol = 2 if variant == "protocol2" else 4
    data = python2_pickle(bins, same) if variant == "python2" else pickle.dumps(obj, protocol=protocol)
    (tmp_path / "lfw.bin").write_bytes(data)
    images, labels = read_bin(tmp_path / "lfw.bin")
    assert images == bins and labels.tolist() == same
    out = run(capsys, "face", "eval", tmp_path / "lfw.bin", "--model", model, "--out", tmp_path / "e",
              "--workers", "0", "--batch-size", "7")
    assert "10-fold accuracy" in out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n_folds"] == 10 and 0 <= m["kfold_accuracy"] <= 1 and m["source"] == "insightface-bin"
    assert {"eer", "tar_at_far_0.001"} <= set(m)


class Planted:
    def __reduce__(self):
        return os.system, ("touch PLANTED",)


def test_insightface_bin_refuses_python_objects(tmp_path, capsys, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bins, same = bin_data(10)
    (tmp_path / "evil.bin").write_bytes(pickle.dumps((bins, [Planted()] + same[1:])))
    one_line_error(capsys, ["face", "eval", tmp_path / "evil.bin", "--model", model, "--out", tmp_path / "e"],
                   "evil.bin", "refuses to load Python objects", "system", out=tmp_path / "e")
    assert not (tmp_path / "PLANTED").exists()
    (tmp_path / "eval.bin").write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(FacevoxError, match="builtins.eval; facevox refuses to load Python objects"):
        read_bin(tmp_path / "eval.bin")
    (tmp_path / "codec.bin").write_bytes(b"c_codecs\nencode\n(Vx\nVrot13\ntR.")  # the allowed global, misused
    with pytest.raises(FacevoxError, match="latin-1"):
        read_bin(tmp_path / "codec.bin")


def test_insightface_bin_bad_files(tmp_path, capsys, model):
    bins, same = bin_data(10)
    data = pickle.dumps((bins, same))
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    one_line_error(capsys, ["face", "eval", tmp_path / "cut.bin", "--model", model, "--out", tmp_path / "e"],
                   "cut.bin", "truncated", out=tmp_path / "e")
    (tmp_path / "odd.bin").write_bytes(pickle.dumps((bins[:-1], same)))
    with pytest.raises(FacevoxError, match="19 images for 10 pairs"):
        read_bin(tmp_path / "odd.bin")
    (tmp_path / "junk.bin").write_bytes(pickle.dumps((bins[:-1] + [b"not an image"], same)))
    one_line_error(capsys, ["face", "eval", tmp_path / "junk.bin", "--model", model, "--out", tmp_path / "e",
                            "--workers", "0"], "junk.bin: image 19 (pair 10)", "cannot decode", out=tmp_path / "e")
    one_line_error(capsys, ["face", "eval", tmp_path / "junk.bin", "--model", model, "--root", tmp_path],
                   "--root", "not used with an InsightFace .bin")
