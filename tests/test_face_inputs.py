"""Inputs that do not look like aligned crops (warned about, or refused with --refuse-unaligned) and
``face align --fallback center`` for photos with no face found; all on generated images."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

import facevox
from conftest import one_line_error
from facevox.cli import main

pytest.importorskip("cv2")


def _model(tmp_path):
    model = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    return facevox.save_model(tmp_path / "model", model, extra={"task": "face", "input_size": [16, 16], "flip": False},
                              card=facevox.ModelCard(task="face verification", data="none", licence="MIT"))


def _people(tmp_path, side: int):
    rng = np.random.default_rng(0)
    root = tmp_path / f"people{side}"
    for p in range(2):
        for i in range(2):
            (root / f"p{p}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"p{p}" / f"{i + 1}.png")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\np0\t1\t2\np0\t1\tp1\t1\n")
    return root, pairs


def test_oversized_photos_are_warned_about_and_recorded(tmp_path, capsys, one_thread):
    root, pairs = _people(tmp_path, 250)
    args = ["face", "eval", pairs, "--root", root, "--model", _model(tmp_path), "--workers", "0", "--device", "cpu"]
    assert main([str(a) for a in [*args, "--out", tmp_path / "eval"]]) == 0
    err = capsys.readouterr().err
    lines = [w for w in err.splitlines() if "do not look like aligned face crops" in w]
    assert len(lines) == 1 and "3 of 3 images" in lines[0] and "250x250" in lines[0] and "face align" in lines[0]
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert any("3 of 3 images do not look like aligned" in w for w in m["warnings"])


def test_refuse_unaligned_is_one_line(tmp_path, capsys, one_thread):
    root, pairs = _people(tmp_path, 250)
    one_line_error(capsys, ["face", "eval", pairs, "--root", root, "--model", _model(tmp_path), "--workers", "0",
                            "--device", "cpu", "--refuse-unaligned", "--out", tmp_path / "eval"],
                   "250x250", "do not look like aligned", "face align")
    assert not (tmp_path / "eval").exists()


def test_crops_of_the_model_size_pass_quietly(tmp_path, capsys, one_thread):
    root, pairs = _people(tmp_path, 20)  # 20 <= 1.5 x 16
    assert main([str(a) for a in ["face", "eval", pairs, "--root", root, "--model", _model(tmp_path), "--workers",
                                  "0", "--device", "cpu", "--refuse-unaligned", "--out", tmp_path / "eval"]]) == 0
    assert "aligned face crops" not in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib not installed")
def test_dlib_check_counts_size_aspect_and_small_faces():
    pytest.importorskip("face_recognition_models")
    from facevox.tasks.face.crop_check import DLIB_CROP, CropCheck

    blank = np.zeros((112, 112, 3), np.uint8)
    check = CropCheck()
    check.add([("ok.png", blank, (112, 112)), ("wide.png", None, (112, 200)), ("big.png", None, (250, 250)),
               ("gone.png", None, None)], DLIB_CROP, detect=True)
    assert (check.checked, check.unaligned, check.first) == (3, 2, "wide.png")  # no face found: size rule stands
    assert "2 of 3 images" in check.message() and "wide.png: 200x112" in check.message()


def test_align_fallback_center_writes_a_crop_for_a_blank_photo(tmp_path, capsys):
    photos = tmp_path / "photos" / "ann"
    photos.mkdir(parents=True)
    img = np.zeros((250, 200, 3), np.uint8)
    img[75:175, 50:150] = 200  # the centred box (120x120 of 250x200) is mostly this square
    Image.fromarray(img).save(photos / "blank.png")
    out = tmp_path / "aligned"
    assert main(["face", "align", str(tmp_path / "photos"), "--out", str(out), "--detector", "haar",
                 "--fallback", "center"]) == 0
    assert "1 fallback centre crop" in capsys.readouterr().err
    crop = np.asarray(Image.open(out / "ann" / "blank.png"))
    assert crop.shape == (112, 112, 3) and crop[56, 56, 0] == 200 and crop[2, 56, 0] == 0
    with open(out / "align_report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"path": "ann/blank.png", "status": "fallback_center", "faces": "0", "method": "center-box"}]
