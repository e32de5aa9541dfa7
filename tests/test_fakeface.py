"""GAN-face detection: data sources, the split file, training, evaluation, prediction and saliency,
on small generated images (real = smooth textures, fake = the same made at half size and upsampled)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from facevox.audit import group_metrics
from facevox.errors import FacevoxError
from facevox.image.transforms import PERTURBATIONS, AugmentSettings, augment, mask_region, resize_square
from facevox.tasks.fakeface.data import make_split, read_source, read_split, split_for
from facevox.tasks.fakeface.spectral import fit_spectral


def texture(rng: np.random.Generator, size: int, upsampled: bool) -> np.ndarray:
    """A smooth random colour texture; ``upsampled``: made at size/2 and enlarged with zero-order hold,
    the periodic trace a generator's up-sampling layers leave."""
    if upsampled:
        small = texture(rng, size // 2, False)
        return np.repeat(np.repeat(small, 2, 0), 2, 1)
    noise = rng.normal(0, 1, (size, size, 3))
    spec = np.fft.fft2(noise, axes=(0, 1))
    f = np.fft.fftfreq(size)
    fall = 1.0 / (np.hypot(f[:, None], f[None, :]) + 1.0 / size)[..., None]  # 1/f, like photos
    img = np.real(np.fft.ifft2(spec * fall, axes=(0, 1)))
    img = (img - img.mean()) / (img.std() + 1e-9) * 40 + 128
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(root, n: int = 12, size: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(("real", "fake")):
        folder = root / name / "nested"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(texture(rng, size, bool(label))).save(folder / f"{name}{i}.png")


def facevox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facevox", *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)


# ------------------------------------------------------------------------------------------ data


def test_folder_source_and_manifest_with_groups(tmp_path):
    make_images(tmp_path / "data", n=3)
    items = read_source(tmp_path / "data")
    assert [it.label for it in items] == [0] * 3 + [1] * 3
    rows = ["path,label,sex", *(f"data/real/nested/real{i}.png,real,{'f' if i else 'm'}" for i in range(3)),
            *(f"data/fake/nested/fake{i}.png,1,f" for i in range(3))]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    items = read_source(tmp_path / "m.csv")
    assert items[0].groups == {"sex": "m"} and items[3].label == 1 and items[0].path.is_file()


@pytest.mark.parametrize(("text", "problem"), [
    ("file,label\na.png,real\n", "needs columns path,label"),
    ("path,label\na.png,maybe\n", "line 2: label 'maybe'"),
    ("path,label\n", "lists no images"),
])
def test_bad_manifests_name_the_problem(tmp_path, text, problem):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(FacevoxError, match=problem) as err:
        read_source(tmp_path / "m.csv")
    assert "m.csv" in str(err.value)


def test_folder_without_fake_is_an_error(tmp_path):
    (tmp_path / "real").mkdir()
    with pytest.raises(FacevoxError, match="missing: fake/"):
        read_source(tmp_path)


def test_split_is_stratified_seeded_and_reused(tmp_path):
    make_images(tmp_path / "data", n=20)
    items = read_source(tmp_path / "data")
    a, b = make_split(items, seed=0), make_split(items, seed=0)
    assert a == b and a != make_split(items, seed=1)
    for label in (0, 1):
        names = [s for s, it in zip(a, items, strict=True) if it.label == label]
        assert (names.count("train"), names.count("val"), names.count("test")) == (14, 2, 4)
    split_file = tmp_path / "runs" / "split.csv"
    first = split_for(str(tmp_path / "data"), split_file, (0.7, 0.1, 0.2), 0)
    text = split_file.read_text()
    assert "../data/real" in text  # relative to the split file: data and split can move together
    again = split_for(str(tmp_path / "data"), split_file, (0.5, 0.25, 0.25), 7)  # exists: read back unchanged
    assert split_file.read_text() == text
    assert [it.path.resolve() for it in again["test"]] == [it.path.resolve() for it in first["test"]]
    assert len(read_split(split_file)["train"]) == 28


# ------------------------------------------------------------------------------------------ transforms


def test_perturbations_and_augmentation():
    rng = np.random.default_rng(0)
    img = texture(rng, 64, False)
    for name, fn in PERTURBATIONS.items():
        out = fn(img)
        assert out.dtype == np.uint8 and out.shape[2] == 3, name
        assert out.shape[:2] == ((32, 32) if name == "downscale2" else (64, 64))
        assert not np.array_equal(out, img) or name == "jpeg95", name
    a = augment(img, 48, np.random.default_rng(5), AugmentSettings())
    b = augment(img, 48, np.random.default_rng(5), AugmentSettings())
    assert a.shape == (48, 48, 3) and np.array_equal(a, b)
    masked = mask_region(img, (0.5, 0.75, 1.0, 1.0))
    assert (masked[48:, 32:] == 128).all() and np.array_equal(masked[:48], img[:48])
    assert resize_square(np.zeros((40, 80, 3), np.uint8), 32).shape == (32, 32, 3)


# ------------------------------------------------------------------------------------------ audit


def test_group_metrics_known_answer():
    scores = [0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9]
    labels = [1, 1, 0, 0, 1, 1, 0, 0]
    sex = ["f", "f", "f", "f", "m", "m", "m", "m"]
    audit = group_metrics(scores, labels, {"sex": sex}, min_count=1)["sex"]
    assert audit["groups"]["f"] == {"n": 4, "n_positive": 2, "accuracy": 1.0, "fpr": 0.0, "fnr": 0.0}
    assert audit["groups"]["m"]["fpr"] == 0.5 and audit["groups"]["m"]["fnr"] == 0.5
    assert audit["gaps"]["accuracy"] == {"gap": 0.5, "worst": "m", "best": "f"}
    assert audit["gaps"]["fnr"]["worst"] == "m"
    assert group_metrics(scores, labels, {"sex": sex}, min_count=5)["sex"]["gaps"] == {}


# ------------------------------------------------------------------------------------------ spectral baseline


def test_spectral_baseline_separates_upsampling_artefacts():
    from facevox.metrics import average_precision
    from facevox.registry import create_model

    rng = np.random.default_rng(0)
    images = [texture(rng, 64, bool(i % 2)) for i in range(80)]
    labels = np.arange(80) % 2
    model = create_model("spectral_logreg", size=64)
    fit_spectral(model, images[:40], labels[:40])
    with torch.no_grad():
        x = torch.from_numpy(np.stack(images[40:])).permute(0, 3, 1, 2).float() / 255
        scores = model(x)[:, 0].numpy()
    assert average_precision(scores, labels[40:]) > 0.95
    assert ((scores > 0) == labels[40:]).mean() > 0.9


# ------------------------------------------------------------------------------------------ command line


TINY = ["--set", "data.load_size=64", "--set", "data.crop_size=56", "--set", "train.epochs=2",
        "--set", "train.batch_size=8", "--set", "train.precision=fp32", "--set", "train.progress=false"]


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    make_images(data, n=12)
    done = facevox("fakeface", "train", "--data", str(data), "--out", str(run), "--set", "model.name=resnet18", *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test: AP" in done.stdout
    for name in ("report.html", "metrics.json", "scores.csv", "saliency.png", "confusion.png"):
        assert (run / "eval" / name).is_file(), name
    model = run / "model"

    done = facevox("fakeface", "eval", "--model", str(model), "--data", str(run / "split.csv"), "--perturb",
                   "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["robustness"]) == {"clean", *PERTURBATIONS}
    assert 0.0 <= metrics["average_precision"] <= 1.0 and metrics["n_real"] == 3 and metrics["n_fake"] == 3

    done = facevox("fakeface", "predict", str(data / "real"), str(data / "fake" / "nested" / "fake0.png"),
                   "--model", str(model))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 13 and all(line.split("\t")[1] in ("real", "fake") for line in lines)
    for suffix in ("json", "csv"):
        done = facevox("fakeface", "predict", str(data), "--model", str(model), "--out", str(tmp_path / f"p.{suffix}"))
        assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "p.json").read_text())
    assert len(rows) == 24 and {"path", "label", "confidence", "p_fake"} == set(rows[0])
    assert all(0.5 <= r["confidence"] <= 1.0 for r in rows)
    assert (tmp_path / "p.csv").read_text().startswith("path,label,confidence,p_fake")

    done = facevox("fakeface", "explain", str(data / "fake" / "nested" / "fake1.png"),
                   str(data / "real" / "nested" / "real1.png"), "--model", str(model), "--out", str(tmp_path / "x"),
                   "--target", "fake")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "x").glob("*.png"))) == 3


@pytest.mark.slow
def test_cli_spectral_model_and_groups(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    make_images(data, n=10)
    rows = ["path,label,skin"] + [f"data/{c}/nested/{c}{i}.png,{c},{'dark' if i % 2 else 'light'}"
                                  for c in ("real", "fake") for i in range(10)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    done = facevox("fakeface", "train", "--recipe", "spectral", "--data", str(tmp_path / "m.csv"),
                   "--out", str(run), "--set", "data.load_size=64")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics["groups"]["skin"]["groups"]) == {"dark", "light"}
    assert "Per-group results by" in (run / "eval" / "report.html").read_text()
    assert (run / "eval" / "groups.png").is_file()
    done = facevox("fakeface", "explain", str(data / "fake" / "nested" / "fake0.png"), "--model", str(run / "model"),
                   "--out", str(tmp_path / "x"), "--methods", "gradient", "gradcam")
    assert done.returncode == 0, done.stderr  # Grad-CAM is left out for a model without convolutions
    done = facevox("fakeface", "explain", str(data / "fake" / "nested" / "fake0.png"), "--model", str(run / "model"),
                   "--out", str(tmp_path / "y"), "--methods", "gradcam")
    assert done.returncode == 2 and "Grad-CAM needs a CNN" in done.stderr


def test_cli_bad_images(tmp_path):
    data = tmp_path / "data"
    make_images(data, n=4)
    (data / "fake" / "broken.png").write_bytes((data / "fake" / "nested" / "fake0.png").read_bytes()[:200])
    (data / "real" / "empty.jpg").write_bytes(b"")
    done = facevox("fakeface", "train", "--data", str(data), "--out", str(tmp_path / "run"),
                   "--set", "model.name=spectral_logreg", "--set", "data.load_size=64",
                   "--set", "data.split_fractions=[1.0, 0.0, 0.0]")
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()[-1]
    assert err.startswith("facevox: error:") and ("broken.png" in err or "empty.jpg" in err)
    assert not (tmp_path / "run" / "model").exists()

    done = facevox("fakeface", "train", "--data", str(data), "--out", str(tmp_path / "run2"),
                   "--set", "model.name=spectral_logreg", "--set", "data.load_size=64", "--set", "data.skip_bad=true",
                   "--set", "data.split_fractions=[1.0, 0.0, 0.0]")
    assert done.returncode == 0, done.stderr
    assert "skipped 2 bad image(s)" in done.stderr and "truncated" in done.stderr and "empty file" in done.stderr

    model = tmp_path / "run2" / "model"
    done = facevox("fakeface", "predict", str(data), "--model", str(model), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.json").exists()
    done = facevox("fakeface", "predict", str(data), "--model", str(model), "--skip-bad",
                   "--out", str(tmp_path / "p.json"))
    assert done.returncode == 0 and "skipped" in done.stderr
    assert len(json.loads((tmp_path / "p.json").read_text())) == 8
    done = facevox("fakeface", "predict", str(tmp_path / "nope.png"), "--model", str(model))
    assert done.returncode == 2 and "nope.png: file not found" in done.stderr
