"""``--device`` and ``--precision`` on every inference command of fakeface and invert, and fakeface's
DataLoader over files (``--workers``): the same probabilities with 0 and 2 workers and as the
one-image-at-a-time path, bad files still one line naming the file, bad flags one line naming the flag.

Tiny models are saved directly as model folders (a ResNet-18 of width 8 for fakeface, an encoder of
width 8 for the tiny generator of ``test_invert``), so nothing is trained here.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from conftest import one_line_error
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.errors import FacevoxError
from facevox.image.io import load_image
from facevox.image.transforms import PERTURBATIONS
from facevox.precision import bf16_supported
from facevox.tasks.fakeface.data import load_resized, read_source
from facevox.tasks.fakeface.scoring import Detector, ScoringImages, inference_device, inference_precision
from test_invert import HELPER

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only spin

HAVE_BF16 = bf16_supported(torch.device("cpu"))
TINY_GEN = ["--generator", "tiny_flags_gen:tiny", "--nz", "8", "--features", "tiny_flags_gen:features"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """real/ and fake/ with 5 images each, of several sizes (each is resized to the model's 32 px)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    sizes = [(40, 48), (32, 32), (64, 40), (33, 35), (50, 50)]
    for label in ("real", "fake"):
        (root / label).mkdir()
        for i, (h, w) in enumerate(sizes):
            img = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            if label == "fake":
                img = np.repeat(np.repeat(img[::2, ::2], 2, 0), 2, 1)[:h, :w]
            Image.fromarray(np.ascontiguousarray(img)).save(root / label / f"{label}{i}.png")
    return root


@pytest.fixture(scope="module")
def model_ff(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = facevox.create_model("resnet18", num_classes=1, width=8)
    with torch.no_grad():  # the zero-initialised residual branches would make every score nearly the same
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    card = ModelCard(task="GAN-generated face detection (output: P(fake))", data="noise", licence="MIT")
    return save_model(tmp_path_factory.mktemp("ff") / "model", model, card=card,
                      extra={"task": "fakeface", "load_size": 32, "threshold": 0.5, "mask": [0.0, 0.0, 0.25, 0.25]})


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    """The tiny generator and feature network of test_invert as the module ``tiny_flags_gen``."""
    folder = tmp_path_factory.mktemp("helper")
    (folder / "tiny_flags_gen.py").write_text(textwrap.dedent(HELPER))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("tiny_flags_gen", None)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, helper) -> Path:
    torch.manual_seed(0)
    net = facevox.create_model("resnet18", num_classes=8, width=8)
    card = ModelCard(task="GAN inversion: image -> latent z of the generator", data="G(z)", licence="MIT")
    extra = {"task": "invert", "nz": 8, "input_size": [16, 16], "image_size": [16, 16],
             "generator": {"source": "tiny_flags_gen:tiny", "weights": "", "nz": 8, "output_range": [-1.0, 1.0]},
             "features": {"network": "tiny_flags_gen:features", "stages": [], "input_size": 0}}
    return save_model(tmp_path_factory.mktemp("enc") / "model", net, card=card, extra=extra)


def _commands(data: Path, model_ff: Path, encoder: Path, out: Path) -> dict[str, list[str]]:
    img = data / "fake" / "fake0.png"
    return {
        "fakeface-predict": ["fakeface", "predict", str(data), "--model", str(model_ff), "--out", str(out / "p.json"),
                             "--batch-size", "3"],
        "fakeface-eval": ["fakeface", "eval", "--data", str(data), "--model", str(model_ff), "--out", str(out / "ev"),
                          "--batch-size", "3"],
        "fakeface-explain": ["fakeface", "explain", str(img), "--model", str(model_ff), "--out", str(out / "x"),
                             "--methods", "gradient", "gradcam"],
        "invert-run-optim": ["invert", "run", str(img), *TINY_GEN, "--steps", "2", "--out", str(out / "r")],
        "invert-run-hybrid": ["invert", "run", str(img), "--method", "hybrid", "--encoder", str(encoder), *TINY_GEN,
                              "--hybrid-steps", "2", "--out", str(out / "h")],
        "invert-eval": ["invert", "eval", "--methods", "optim", "encoder", "hybrid", "--encoder", str(encoder),
                        "--n", "3", "--steps", "2", "--hybrid-steps", "1", *TINY_GEN, "--out", str(out / "e")],
    }


COMMANDS = ["fakeface-predict", "fakeface-eval", "fakeface-explain", "invert-run-optim", "invert-run-hybrid",
            "invert-eval"]
PRECISIONS = ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(not HAVE_BF16, reason="no native bf16 here")),
              "auto"]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", COMMANDS)
def test_every_inference_command_takes_device_and_precision(capsys, data, model_ff, encoder, tmp_path, name,
                                                            precision):
    argv = _commands(data, model_ff, encoder, tmp_path)[name] + ["--device", "cpu", "--precision", precision]
    assert main(argv) == 0, capsys.readouterr().err
    if name == "fakeface-predict":
        rows = json.loads((tmp_path / "p.json").read_text())
        assert len(rows) == 10 and all(0.0 <= r["p_fake"] <= 1.0 for r in rows)
    if name.startswith("invert-run"):
        summary = json.loads((tmp_path / ("r" if name.endswith("optim") else "h") / "inversion.json").read_text())
        want = "bf16 autocast" if precision == "bf16" or (precision == "auto" and HAVE_BF16) else "fp32"
        assert summary["device"] == "cpu" and summary["precision"] == want
        assert np.isfinite(summary["psnr"])
    if name == "invert-eval":
        doc = json.loads((tmp_path / "e" / "results.json").read_text())
        assert set(doc["methods"]) == {"optim", "encoder", "hybrid"} and doc["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: --device cuda is valid")
@pytest.mark.parametrize("name", [*COMMANDS, "fakeface-fuse"])
def test_device_cuda_without_a_gpu_is_one_line(capsys, data, model_ff, encoder, tmp_path, name):
    argv = _fuse(data, model_ff, tmp_path) if name == "fakeface-fuse" else _commands(data, model_ff, encoder,
                                                                                    tmp_path)[name]
    line = one_line_error(capsys, argv + ["--device", "cuda"], "--device", "no GPU")
    assert "Traceback" not in line
    assert not any(tmp_path.iterdir()), "something was written"


@pytest.mark.parametrize(("device", "problem"), [("cuda:99", "GPU"), ("bogus", "not a device name: 'bogus'")])
@pytest.mark.parametrize("name", ["fakeface-predict", "fakeface-explain", "invert-run-optim", "fakeface-fuse"])
def test_bad_device_names_the_flag(capsys, data, model_ff, encoder, tmp_path, name, device, problem):
    argv = _fuse(data, model_ff, tmp_path) if name == "fakeface-fuse" else _commands(data, model_ff, encoder,
                                                                                    tmp_path)[name]
    line = one_line_error(capsys, argv + ["--device", device], problem)
    assert line.startswith("facevox: error: --device: ")


def _fuse(data: Path, model_ff: Path, tmp_path: Path) -> list[str]:
    split = tmp_path.parent / f"{tmp_path.name}_split.csv"  # outside tmp_path, which must stay empty
    split.write_text("path,label,split\n" + "".join(f"{p},{p.parent.name},test\n" for p in sorted(data.rglob("*.png"))))
    return ["fakeface", "fuse", "--model", str(model_ff), "--split", str(split), "--out", str(tmp_path / "fused")]


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_negative_workers_is_an_argparse_line(capsys, data, model_ff, tmp_path, command):
    argv = _commands(data, model_ff, tmp_path, tmp_path)[f"fakeface-{command}"] + ["--workers", "-1"]
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"facevox fakeface {command}: error: argument --workers: must be an integer >= 0, got '-1'"


def test_helpers_resolve_and_refuse():
    assert inference_device("cpu") == torch.device("cpu")
    assert inference_precision("fp32", torch.device("cpu")) is None
    assert inference_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert inference_precision("auto", torch.device("cpu")) is (torch.bfloat16 if HAVE_BF16 else None)
    with pytest.raises(FacevoxError, match="--precision: precision must be one of fp32, bf16, auto, got 'fp16'"):
        inference_precision("fp16", torch.device("cpu"))
    with pytest.raises(FacevoxError, match="--device: "):
        inference_device("cuda:12345")


# ------------------------------------------------------------------------------------------ workers


def _predict(capsys, data, model_ff, out, workers, *extra):
    argv = ["fakeface", "predict", str(data), "--model", str(model_ff), "--out", str(out), "--batch-size", "3",
            "--device", "cpu", "--workers", str(workers), *extra]
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(out.read_text())


def test_predict_gives_the_same_probabilities_with_and_without_workers(capsys, data, model_ff, tmp_path):
    serial = _predict(capsys, data, model_ff, tmp_path / "a.json", 0)
    parallel = _predict(capsys, data, model_ff, tmp_path / "b.json", 2)
    assert serial == parallel  # bit for bit: the same batches, in the same order
    # the path of before: every image decoded in this process, then Detector.probs (resize + mask) on it
    det = Detector.load(str(model_ff), batch_size=3, device="cpu")
    files = [Path(r["path"]) for r in serial]
    old = det.probs([load_image(f) for f in files])
    assert np.abs(np.array([r["p_fake"] for r in serial]) - old).max() <= 1e-6
    assert len(set(np.round(old, 6))) > 1  # not a constant: the comparison can fail


@pytest.mark.skipif(not HAVE_BF16, reason="no native bf16 here")
def test_predict_in_bf16_is_close_to_fp32_but_not_the_same(capsys, data, model_ff, tmp_path):
    fp32 = _predict(capsys, data, model_ff, tmp_path / "a.json", 0)
    bf16 = _predict(capsys, data, model_ff, tmp_path / "b.json", 2, "--precision", "bf16")
    diff = np.abs(np.array([r["p_fake"] for r in fp32]) - np.array([r["p_fake"] for r in bf16]))
    assert diff.max() > 0  # autocast did run
    assert diff.max() < 0.05


def test_score_files_keeps_order_and_skips_bad_files_like_before(data, model_ff, tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(data, folder)
    good = (folder / "fake" / "fake1.png").read_bytes()
    (folder / "fake" / "fake1.png").write_bytes(good[: len(good) // 3])  # truncated, in the middle of a batch
    (folder / "real" / "real3.png").write_bytes(b"")
    items = read_source(folder)
    det = Detector.load(str(model_ff), batch_size=4, device="cpu")
    paths = [it.path for it in items]
    runs = [det.score_files(paths, workers=w, skip_bad=True) for w in (0, 2)]
    for kept, _, bad in runs:
        assert [paths[i].name for i in kept] == [f.name for f in paths if f.name not in ("fake1.png", "real3.png")]
        assert sorted(b.name for b, _ in bad) == ["fake1.png", "real3.png"]
    assert np.array_equal(runs[0][1], runs[1][1]) and np.array_equal(runs[0][0], runs[1][0])
    arrays, kept_items = load_resized(items, 32, skip_bad=True, mask=det.mask)  # the eval path of before
    assert np.abs(det.probs(arrays) - runs[0][1]).max() <= 1e-6
    assert len(kept_items) == 8
    with pytest.raises(FacevoxError, match="real3.png: empty file"):
        det.score_files(paths, workers=2)  # the first bad file in order, raised in this process


def test_a_bad_file_read_in_a_worker_is_one_line_naming_it(capsys, data, model_ff, tmp_path):
    folder = tmp_path / "d"
    shutil.copytree(data, folder)
    (folder / "real" / "real2.png").write_bytes(b"not a png")
    out = tmp_path / "p.json"
    one_line_error(capsys, ["fakeface", "predict", folder, "--model", model_ff, "--workers", "2", "--out", out],
                   "real2.png", out=out)
    rows = _predict(capsys, folder, model_ff, out, 2, "--skip-bad")
    assert len(rows) == 9 and "real2.png" in capsys.readouterr().err


def test_eval_scores_and_perturbations_are_the_same_with_and_without_workers(capsys, data, model_ff, tmp_path):
    docs = []
    for w in (0, 2):
        out = tmp_path / f"ev{w}"
        argv = ["fakeface", "eval", "--data", str(data), "--model", str(model_ff), "--out", str(out), "--perturb",
                "--batch-size", "4", "--device", "cpu", "--workers", str(w)]
        assert main(argv) == 0, capsys.readouterr().err
        rows = list(csv.DictReader((out / "scores.csv").open()))
        docs.append((rows, json.loads((out / "metrics.json").read_text())["robustness"]))
        assert (out / "saliency.png").is_file() and (out / "report.html").is_file()
    assert docs[0] == docs[1]
    det = Detector.load(str(model_ff), batch_size=4, device="cpu")
    arrays, items = load_resized(read_source(data), 32, skip_bad=False, mask=det.mask)
    old = det.probs(arrays)
    assert [r["path"] for r in docs[0][0]] == [str(it.path) for it in items]
    assert np.abs(np.array([float(r["p_fake"]) for r in docs[0][0]]) - old).max() <= 1e-6
    for name in ("jpeg50", "downscale2"):  # perturbed in the workers as before: after resizing, then resized back
        _, perturbed, _ = det.score_files([it.path for it in items], workers=2, perturb=name)
        assert np.abs(perturbed - det.probs([PERTURBATIONS[name](a) for a in arrays])).max() <= 1e-6


def test_scoring_images_hold_paths_in_one_array(data):
    ds = ScoringImages(sorted(data.rglob("*.png")), 32, None, "jpeg50")
    assert isinstance(ds.paths, np.ndarray) and ds.paths.dtype.kind == "S" and len(ds) == 10
    index, image, problem, where = ds[3]
    assert index == 3 and image.shape == (32, 32, 3) and image.dtype == np.uint8 and problem == "" and where is None
    with pytest.raises(FacevoxError, match="unknown perturbation"):
        ScoringImages([], 32, None, "jpeg10")


# ------------------------------------------------------------------------------------------ gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_scores_explains_and_inverts_like_the_cpu(capsys, data, model_ff, encoder, tmp_path, precision):
    cpu = _predict(capsys, data, model_ff, tmp_path / "cpu.json", 2)
    argv = ["fakeface", "predict", str(data), "--model", str(model_ff), "--out", str(tmp_path / "gpu.json"),
            "--batch-size", "3", "--device", "cuda", "--precision", precision, "--workers", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert np.abs(np.array([r["p_fake"] for r in cpu]) - np.array([r["p_fake"] for r in gpu])).max() < 0.05
    commands = _commands(data, model_ff, encoder, tmp_path)
    for name in ("fakeface-eval", "fakeface-explain", "invert-run-hybrid", "invert-eval"):
        assert main(commands[name] + ["--device", "cuda", "--precision", precision]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "h" / "inversion.json").read_text())
    assert summary["device"].startswith("cuda") and np.isfinite(summary["psnr"])
