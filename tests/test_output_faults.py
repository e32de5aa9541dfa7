"""Faults on the command line: a decompression bomb among the images of ``fakeface predict`` (an error,
or skipped with --skip-bad), and evaluation outputs that are replaced as one unit or refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.outdir import MARKER
from facevox.registry import create_model
from test_image_io import bomb_png
from test_invert import helper_path, tiny_config  # noqa: F401  (helper_path: a fixture)


def facevox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facevox", *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)


@pytest.fixture
def detector(tmp_path):
    """A tiny fakeface model folder (the spectral baseline at 32 px, untrained) and two good images."""
    model = save_model(tmp_path / "model", create_model("spectral_logreg", size=32),
                       card=ModelCard(task="GAN-generated face detection (output: P(fake))", data="none (a test)",
                                      licence="none"),
                       extra={"task": "fakeface", "classes": ["real", "fake"], "load_size": 32, "threshold": 0.5})
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    return model


def test_predict_refuses_or_skips_a_decompression_bomb(tmp_path, detector, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(60000, 60000))
    images = [str(tmp_path / "a.png"), str(bomb), str(tmp_path / "b.png")]

    done = facevox("fakeface", "predict", *images, "--model", str(detector), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0] == (f"facevox: error: {bomb}: image claims 60000 x 60000 pixels, more than the limit of "
                        "179 megapixels (a decompression bomb or a corrupt header); not decoded")
    assert not (tmp_path / "p.json").exists()

    # the same command in this process (quicker than a second one)
    assert main(["fakeface", "predict", *images, "--model", str(detector), "--skip-bad",
                 "--out", str(tmp_path / "p.json")]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 bad image(s)" in err and "60000 x 60000" in err
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [os.path.basename(r["path"]) for r in rows] == ["a.png", "b.png"]


def test_explain_replaces_its_output_as_a_unit_and_refuses_a_model_folder(tmp_path, detector, capsys):
    out = tmp_path / "explain"
    two = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]

    def explain(images: list[str], folder) -> list[str]:
        return ["fakeface", "explain", *images, "--model", str(detector), "--out", str(folder), "--methods", "gradient"]

    assert main(explain(two, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "000_a_saliency.png", "001_b_saliency.png",
                                                     "saliency.png"]
    # one image now: the figures of the earlier run do not linger beside the new one
    assert main(explain(two[1:], out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "000_b_saliency.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".explain.")]

    before = sorted(p.name for p in detector.iterdir())
    capsys.readouterr()
    assert main(explain(two[:1], detector)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not write as an output" in err[0] and str(detector) in err[0]
    assert sorted(p.name for p in detector.iterdir()) == before


def test_training_data_with_a_bomb_is_an_error_or_skipped_with_data_skip_bad(tmp_path, detector, capsys):
    from facevox.errors import FacevoxError
    from facevox.tasks.fakeface.data import LabelledImage, load_resized

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(60000, 60000))
    items = [LabelledImage(tmp_path / "a.png", 0), LabelledImage(bomb, 1), LabelledImage(tmp_path / "b.png", 1)]
    with pytest.raises(FacevoxError, match="bomb.png: image claims 60000 x 60000 pixels"):
        load_resized(items, 32, skip_bad=False)
    arrays, kept = load_resized(items, 32, skip_bad=True)  # what data.skip_bad=true does in fakeface train
    assert [it.path.name for it in kept] == ["a.png", "b.png"] and all(a.shape == (32, 32, 3) for a in arrays)
    assert "skipped 1 bad image(s)" in capsys.readouterr().err


@pytest.mark.usefixtures("helper_path")  # the tiny generator of test_invert
def test_invert_run_replaces_its_output_as_a_unit(tmp_path, monkeypatch):
    import errno

    from facevox.errors import FacevoxError
    from facevox.image import io as image_io
    from facevox.tasks.invert.evaluate import run_inversion

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"face{i}.png")
    faces = [tmp_path / f"face{i}.png" for i in range(3)]
    out = tmp_path / "inv"
    cfg = tiny_config(steps=2)
    cfg.features.network, cfg.features.stages = "tiny_invert_gen:features", ["0", "2"]  # not a ResNet: quicker
    run_inversion(cfg, "optim", faces, out)
    assert len(list((out / "reconstructions").iterdir())) == 3 and (out / MARKER).is_file()
    run_inversion(cfg, "optim", faces[:1], out)  # fewer images: no reconstruction of the first run is left
    assert [p.name for p in (out / "reconstructions").iterdir()] == ["0000_face0.png"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full_disk(path, image):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(image_io, "save_image", full_disk)
    with pytest.raises(FacevoxError, match="cannot write the output: No space left on device") as err:
        run_inversion(cfg, "optim", faces, out)
    assert str(err.value).startswith(str(out))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".inv.")]
