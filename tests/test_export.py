"""facevox export: ONNX (run by onnxruntime) and TorchScript files of tiny speaker, face and fakeface
models match the torch model, and facevox.load(FILE) scores as the folder does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from conftest import one_line_error
from facevox.cli import main
from facevox.errors import FacevoxError
from facevox.verification.calibration import Calibration

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SR = 16000
CAL = Calibration(a=4.0, b=-1.0, threshold=0.25, target_far=0.01, n_target=10, n_nontarget=90)


def _card(task: str) -> facevox.ModelCard:
    return facevox.ModelCard(task=task, data="noise", licence="MIT")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny model folders: a speaker embedder with its fbank (STFT) front end inside, a face
    embedder, a GAN-face detector and an invert encoder (which cannot be exported)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    speaker = facevox.create_model("speaker_embedder", backbone="xvector", features="fbank", n_mels=24,
                                   backbone_kwargs={"channels": 8, "embed_dim": 4})
    face = facevox.create_model("sphere20", embed_dim=8, input_size=(16, 16), width=4)
    fake = facevox.create_model("resnet18", num_classes=1, width=4)
    return {
        "speaker": facevox.save_model(root / "sp", speaker, card=_card("speaker verification"),
                                      extra={"kind": "embedding", "calibration": CAL.to_dict()}),
        "face": facevox.save_model(root / "fc", face, card=_card("face verification"),
                                   extra={"task": "face", "input_size": [16, 16], "flip": True, "threshold": 0.3}),
        "fakeface": facevox.save_model(root / "ff", fake, card=_card("GAN-generated face detection"),
                                       extra={"task": "fakeface", "load_size": 32, "threshold": 0.5}),
    }


def _waves() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    a = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    b = (0.3 * rng.standard_normal(23456)).astype(np.float32)  # another length: the time axis is dynamic
    return a, b


def _images(tmp_path: Path, size: int) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _onnx_out(path: Path, x: np.ndarray) -> np.ndarray:
    from facevox.export import OnnxModel

    return OnnxModel(path)(x)


def _torch_out(folder: Path, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return facevox.load_model(folder)(torch.from_numpy(x)).numpy()


@pytest.mark.slow
def test_speaker_onnx_with_stft_front_end(models, tmp_path, capsys, one_thread):
    out = tmp_path / "sp.onnx"
    assert main(["export", str(models["speaker"]), "--format", "onnx", "--out", str(out)]) == 0
    assert "max |exported - torch|" in capsys.readouterr().out
    side = json.loads(Path(f"{out}.json").read_text())
    assert side["format"] == "onnx" and side["task"] == "speaker" and side["max_abs_diff"] < 1e-4
    assert side["input"]["sample_rate"] == SR and side["input"]["time"] == "dynamic" and side["opset"] >= 17
    assert side["extra"]["calibration"]["threshold"] == 0.25 and side["source"] == str(models["speaker"].resolve())
    x = (0.1 * np.random.default_rng(3).standard_normal((3, 11111))).astype(np.float32)  # another batch and length
    assert np.abs(_onnx_out(out, x) - _torch_out(models["speaker"], x)).max() < 1e-4
    a, b = _waves()
    ref, got = facevox.load(models["speaker"], device="cpu"), facevox.load(out)
    assert isinstance(got, facevox.SpeakerVerifier) and got.threshold == ref.threshold == 0.25
    d_ref, d_got = ref.verify(a, b), got.verify(a, b)
    assert d_got.score == pytest.approx(d_ref.score, abs=1e-4) and d_got.same == d_ref.same
    assert d_got.p_same == pytest.approx(d_ref.p_same, abs=1e-4)
    assert np.abs(got.embed([a, b]) - ref.embed([a, b])).max() < 1e-4


@pytest.mark.slow
def test_face_onnx_verify_and_identify(models, tmp_path, one_thread):
    from facevox.export import export_model

    out = tmp_path / "fc.onnx"
    side = export_model(models["face"], out, "onnx", quiet=True)
    assert side["input"]["shape"] == [2, 3, 16, 16] and side["max_abs_diff"] < 1e-4
    x = np.random.default_rng(4).random((5, 3, 16, 16), dtype=np.float32)
    assert np.abs(_onnx_out(out, x) - _torch_out(models["face"], x)).max() < 1e-4
    pa, pb = _images(tmp_path, 16)
    ref, got = facevox.load(models["face"], aligned=True, device="cpu"), facevox.load(out, aligned=True)
    assert isinstance(got, facevox.FaceVerifier) and got.threshold == 0.3
    assert got.verify(pa, pb).score == pytest.approx(ref.verify(pa, pb).score, abs=1e-4)
    assert got.identify(pb, {"a": [pa], "b": [pb]})[0][0] == "b"


@pytest.mark.slow
def test_fakeface_onnx_predicts_as_the_folder(models, tmp_path, one_thread):
    from facevox.export import export_model

    out = tmp_path / "ff.onnx"
    side = export_model(models["fakeface"], out, "onnx", quiet=True)
    assert side["input"]["shape"] == [2, 3, 32, 32] and side["extra"]["threshold"] == 0.5
    x = np.random.default_rng(5).random((4, 3, 32, 32), dtype=np.float32)
    assert np.abs(_onnx_out(out, x) - _torch_out(models["fakeface"], x)).max() < 1e-4
    paths = _images(tmp_path, 40)
    ref, got = facevox.load(models["fakeface"], device="cpu"), facevox.load(out)
    assert isinstance(got, facevox.FakeFaceDetector)
    for r, g in zip(ref.predict(paths), got.predict(paths), strict=True):
        assert g["label"] == r["label"] and g["p_fake"] == pytest.approx(r["p_fake"], abs=1e-4)
    with pytest.raises(FacevoxError, match="saliency maps need the model folder"):
        got.explain(paths[:1], tmp_path / "maps")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("task", ["speaker", "face", "fakeface"])
def test_torchscript_matches(models, tmp_path, task, one_thread):
    from facevox.export import export_model

    out = tmp_path / f"{task}.pt"
    side = export_model(models[task], out, "torchscript", quiet=True)
    assert side["format"] == "torchscript" and side["max_abs_diff"] < 1e-4
    shape = side["input"]["shape"]
    x = np.random.default_rng(6).random(shape, dtype=np.float32) * (0.2 if task == "speaker" else 1.0)
    with torch.no_grad():
        got = torch.jit.load(str(out))(torch.from_numpy(x)).numpy()
    assert np.abs(got - _torch_out(models[task], x)).max() < 1e-4
    if task == "speaker":  # loading a TorchScript file runs code stored in it: facevox.load refuses it
        with pytest.raises(facevox.FacevoxError, match="ONNX exports only"):
            facevox.load(out)


def test_bad_exports_are_one_line(models, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    one_line_error(capsys, ["export", models["face"], "--format", "tflite", "--out", out], "unknown format",
                   "--format", out=out)
    one_line_error(capsys, ["export", models["face"], "--out", tmp_path / "missing" / "x.onnx"], "does not exist",
                   "missing", out=tmp_path / "missing")
    one_line_error(capsys, ["export", tmp_path / "nothing", "--out", out], "model folder not found", out=out)
    torch.manual_seed(0)
    inv = facevox.save_model(tmp_path / "inv", facevox.create_model("mlp", in_dim=4, hidden=8, out_dim=2),
                             card=_card("GAN inversion encoder"), extra={"task": "invert"})
    one_line_error(capsys, ["export", inv, "--out", out], "inv", "export needs", out=out)
    pair = facevox.save_model(tmp_path / "pair", facevox.create_model("speaker_pair"), card=_card("speaker"),
                              extra={"kind": "pair"})
    one_line_error(capsys, ["export", pair, "--out", out], "pair", "cannot be exported", out=out)
    assert not list(tmp_path.glob(".x.onnx*")), "a temporary file was left"


def test_an_exported_file_without_sidecar_is_one_line(models, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"not onnx")
    with pytest.raises(facevox.FacevoxError, match="bare.onnx.json"):
        facevox.load(bare)
