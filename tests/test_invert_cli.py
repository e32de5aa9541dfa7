"""``facevox invert``: train-encoder, run (every method) and eval driven end to end in a subprocess, with
a user generator given as package.module:factory from a helper module put on PYTHONPATH."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from test_invert import HELPER

GEN = ["--generator", "tiny_invert_gen:tiny", "--nz", "8", "--device", "cpu"]
TINY_TRAIN = ["encoder.width=8", "encoder.samples_per_epoch=32", "train.batch_size=8", "train.max_steps=4",
              "train.precision=fp32", "train.warmup_steps=0"]


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("helper")
    (folder / "tiny_invert_gen.py").write_text(textwrap.dedent(HELPER))
    return folder


def facevox(helper, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(helper), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "facevox", "invert", *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path), timeout=300)


@pytest.fixture(scope="module")
def encoder(helper, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    done = facevox(helper, "train-encoder", *GEN, "--out", str(out), *[a for kv in TINY_TRAIN for a in ("--set", kv)])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model:" in done.stdout and "held-out: latent error" in done.stdout
    return out / "model"


def photos(folder, sizes=((20, 24), (40, 40), (16, 16))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"face{i}.png")
    return folder


def test_train_encoder_writes_a_model_folder(encoder):
    extra = json.loads((encoder / "extra.json").read_text())
    assert extra["generator"] == {"source": "tiny_invert_gen:tiny", "weights": "", "nz": 8,
                                  "output_range": [-1.0, 1.0]}
    assert extra["loss_weights"] == {"z": 1.0, "pixel": 1.0, "perceptual": 1.0}
    for name in ("model.yaml", "model.safetensors", "config.yaml", "README.md", "metrics.json"):
        assert (encoder / name).is_file()


@pytest.mark.parametrize("method", ["optim", "encoder", "hybrid"])
def test_run_each_method(helper, encoder, tmp_path, method):
    images = photos(tmp_path / "imgs")
    out = tmp_path / "out"
    # the encoder's extra.json names its generator, but user code runs only where the user names it: --generator
    args = ["--encoder", str(encoder), "--hybrid-steps", "3", *GEN] if method != "optim" else [*GEN, "--steps", "5"]
    done = facevox(helper, "run", "--method", method, str(images), "--out", str(out), *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PSNR" in done.stdout
    latents = np.load(out / "latents.npy")
    assert latents.shape == (3, 8) and latents.dtype == np.float32 and np.isfinite(latents).all()
    rows = list(csv.DictReader((out / "latents.csv").open()))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["face0.png", "face1.png", "face2.png"]
    assert {"row", "psnr", "ssim", "perceptual"} <= set(rows[0])
    assert (out / "grid.png").is_file() and len(list((out / "reconstructions").glob("*.png"))) == 3
    summary = json.loads((out / "inversion.json").read_text())
    assert summary["method"] == method and summary["n_images"] == 3 and summary["seconds"] > 0


def test_eval_compares_all_methods(helper, encoder, tmp_path):
    out = tmp_path / "eval"
    done = facevox(helper, "eval", "--encoder", str(encoder), "--n", "6", "--steps", "5", "--hybrid-steps", "3",
                   "--out", str(out), *GEN)
    assert done.returncode == 0, done.stderr[-2000:]
    table = (out / "table.md").read_text()
    assert "FD (random-resnet18)" in table and "FID" not in table and "latent error" in table
    assert table.count("\n") == 2 + 3  # header, rule, three methods
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["methods"]) == {"optim", "encoder", "hybrid"}
    assert doc["methods"]["optim"]["latent_error"] > 0.1  # its random starts are not the targets' latents
    for m in doc["methods"].values():
        assert {"psnr", "ssim", "perceptual", "fd", "latent_error", "seconds", "seconds_per_image"} <= set(m)
    assert doc["feature_network"] == "random-resnet18" and "untrained" in doc["feature_network_description"]
    html = (out / "report.html").read_text()
    assert "grid.png" in html and "FD (random-resnet18)" in html and (out / "grid.png").is_file()
    assert "report:" in done.stdout


def test_weights_that_do_not_fit_are_one_line_with_status_2(helper, tmp_path):
    images = photos(tmp_path / "imgs", sizes=((16, 16),))
    foreign = tmp_path / "foreign.pt"
    torch.save(torch.nn.Linear(8, 16).state_dict(), foreign)
    done = facevox(helper, "run", str(images), *GEN, "--weights", str(foreign), "--out", str(tmp_path / "a"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{foreign}: weights do not fit the generator" in done.stderr  # the one line names the file
    assert not (tmp_path / "a").exists()


def test_generator_code_named_only_by_a_model_folder_is_not_run(helper, encoder, tmp_path):
    # extra.json says tiny_invert_gen:tiny; importing it because a (possibly downloaded) folder says so
    # would run a module the user never named
    done = facevox(helper, "run", "--method", "encoder", str(photos(tmp_path / "imgs")), "--encoder", str(encoder),
                   "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert done.stderr.count("\n") == 1 and "--generator tiny_invert_gen:tiny" in done.stderr
