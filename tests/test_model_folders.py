"""Model folders of the wrong task, with damaged extra.json / model.yaml / config.yaml, or with
NaN weights, and scores that are not finite: each is one line on stderr, status 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import facevox
from conftest import one_line_error
from facevox.audio.io import save_wav
from facevox.checkpoint import ModelCard, load_weights, read_model_folder, save_model, task_of
from facevox.cli import main
from facevox.errors import FacevoxError

CARDS = {
    "speaker": ModelCard(task="speaker verification (embedding model)", data="noise", licence="MIT"),
    "fakeface": ModelCard(task="GAN-generated face detection (output: P(fake))", data="noise", licence="MIT"),
    "face": ModelCard(task="face verification embeddings (arcface loss)", data="noise", licence="MIT"),
}

TINY_XVECTOR = {"channels": 8, "embed_dim": 4}


def _speaker(path: Path, extra: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs=TINY_XVECTOR)
    return save_model(path, model, card=CARDS["speaker"], extra={"kind": "embedding", **(extra or {})})


def _fakeface(path: Path, extra: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = facevox.create_model("resnet18", num_classes=1, width=8)
    return save_model(path, model, card=CARDS["fakeface"],
                      extra={"task": "fakeface", "load_size": 32, "threshold": 0.5, **(extra or {})})


def _face(path: Path, extra: dict | None = None) -> Path:
    torch.manual_seed(0)
    model = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    return save_model(path, model, card=CARDS["face"],
                      extra={"task": "face", "input_size": [16, 16], "flip": False, "threshold": 0.3, **(extra or {})})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"speaker": _speaker(root / "sp"), "fakeface": _fakeface(root / "ff"), "face": _face(root / "fc")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    out = {}
    for name in ("a", "b"):
        out[f"{name}.wav"] = save_wav(root / f"{name}.wav", 0.3 * rng.standard_normal(16000).astype(np.float32))
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"{name}.png")
        out[f"{name}.png"] = root / f"{name}.png"
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / folder.name))


# ------------------------------------------------------------------------------------------ the task


def test_saved_folders_record_their_task(models):
    for task, folder in models.items():
        assert yaml.safe_load((folder / "model.yaml").read_text())["task"] == task
        assert read_model_folder(folder).task == task
    assert [task_of(t) for t in ("GAN inversion: image -> latent z", "face verification", "speaker", "x")] == \
        ["invert", "face", "speaker", None]


@pytest.mark.parametrize(("command", "holds", "needs"), [
    (["speaker", "verify", "a.wav", "b.wav"], "fakeface", "speaker verify needs a speaker model"),
    (["speaker", "verify", "a.wav", "b.wav"], "face", "speaker verify needs a speaker model"),
    (["fakeface", "predict", "a.png"], "speaker", "fakeface predict needs a fakeface model"),
    (["fakeface", "predict", "a.png"], "face", "fakeface predict needs a fakeface model"),
    (["fakeface", "explain", "a.png"], "speaker", "fakeface explain needs a fakeface model"),
    (["face", "verify", "a.png", "b.png", "--aligned"], "fakeface", "face verify needs a face model"),
    (["face", "verify", "a.png", "b.png", "--aligned"], "speaker", "face verify needs a face model"),
])
def test_a_folder_of_another_task_is_one_line(capsys, models, inputs, command, holds, needs):
    args = [inputs.get(a, a) for a in command] + ["--model", models[holds]]
    line = one_line_error(capsys, args, f"{models[holds]}: this is a {holds} model folder; {needs}")
    assert line == f"facevox: error: {models[holds]}: this is a {holds} model folder; {needs}"


def test_eval_commands_refuse_other_tasks_before_writing(capsys, models, inputs, tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_text(f"1 {inputs['a.wav']} {inputs['a.wav']}\n0 {inputs['a.wav']} {inputs['b.wav']}\n")
    out = tmp_path / "out"
    one_line_error(capsys, ["speaker", "eval", trials, "--model", models["face"], "--out", out, "--no-cache"],
                   "this is a face model folder; speaker eval needs a speaker model", out=out)
    data = tmp_path / "data"
    for c in ("real", "fake"):
        (data / c).mkdir(parents=True)
        for n in ("a", "b"):
            Image.open(inputs[f"{n}.png"]).save(data / c / f"{n}.png")
    one_line_error(capsys, ["fakeface", "eval", "--data", data, "--model", models["speaker"], "--out", out],
                   "this is a speaker model folder; fakeface eval needs a fakeface model", out=out)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\nreal\t1\t2\nreal\t1\tfake\t1\n")
    one_line_error(capsys, ["face", "eval", pairs, "--root", data, "--model", models["fakeface"], "--out", out],
                   "this is a fakeface model folder; face eval needs a face model", out=out)
    split = tmp_path / "split.csv"
    split.write_text("path,label,split\n" + "".join(f"data/{c}/{n}.png,{c},{s}\n" for c in ("real", "fake")
                                                     for n, s in (("a", "train"), ("b", "val"))))
    one_line_error(capsys, ["fakeface", "fuse", "--model", models["face"], "--split", split, "--out", out],
                   "this is a face model folder; fakeface fuse needs a fakeface model", out=out)


def test_folders_written_before_the_task_was_recorded(capsys, models, inputs, tmp_path):
    """model.yaml without 'task': inferred from the card's Task line, else from extra.json's keys."""
    ff = copy_of(models["fakeface"], tmp_path)
    spec = yaml.safe_load((ff / "model.yaml").read_text())
    del spec["task"]
    (ff / "model.yaml").write_text(yaml.safe_dump(spec))
    assert read_model_folder(ff).task == "fakeface"
    one_line_error(capsys, ["speaker", "verify", inputs["a.wav"], inputs["b.wav"], "--model", ff],
                   "this is a fakeface model folder")
    (ff / "README.md").unlink()
    extra = json.loads((ff / "extra.json").read_text())
    del extra["task"]
    (ff / "extra.json").write_text(json.dumps(extra))
    assert read_model_folder(ff).task == "fakeface"  # load_size: only detectors have it
    assert main(["fakeface", "predict", str(inputs["a.png"]), "--model", str(ff)]) == 0  # still works
    assert "a.png" in capsys.readouterr().out

    sp = copy_of(models["speaker"], tmp_path)
    spec = yaml.safe_load((sp / "model.yaml").read_text())
    del spec["task"]
    (sp / "model.yaml").write_text(yaml.safe_dump(spec))
    (sp / "README.md").write_text("# old\n\n- **Task:** test\n")  # a card that says nothing
    (sp / "extra.json").unlink()
    assert read_model_folder(sp).task == "speaker"  # speaker_embedder: a speaker model
    assert main(["speaker", "verify", str(inputs["a.wav"]), str(inputs["b.wav"]), "--model", str(sp)]) == 0
    assert capsys.readouterr().out.startswith("score ")


def test_folders_that_do_not_say_are_accepted(tmp_path):
    folder = save_model(tmp_path / "m", facevox.create_model("mlp", in_dim=2, out_dim=2),
                        card=ModelCard(task="test", data="x", licence="x"), extra={"threshold": 0.4})
    assert "task" not in yaml.safe_load((folder / "model.yaml").read_text())
    assert read_model_folder(folder, task="speaker").task is None


def test_perceptual_and_encoder_folders(models):
    from facevox.tasks.invert.encoder import load_encoder
    from facevox.tasks.invert.perceptual import load_feature_net

    with pytest.raises(FacevoxError, match="this is a speaker model folder; a perceptual network"):
        load_feature_net(str(models["speaker"]))
    assert load_feature_net(str(models["face"])).input_size == (16, 16)  # image networks stay allowed
    assert load_feature_net(str(models["fakeface"])).input_size == (32, 32)
    with pytest.raises(FacevoxError, match="not an inversion encoder: this is a fakeface model folder"):
        load_encoder(models["fakeface"])


def test_unknown_task_in_model_yaml(capsys, models, inputs, tmp_path):
    sp = copy_of(models["speaker"], tmp_path)
    text = (sp / "model.yaml").read_text().replace("task: speaker", "task: voices")
    (sp / "model.yaml").write_text(text)
    one_line_error(capsys, ["speaker", "verify", inputs["a.wav"], inputs["b.wav"], "--model", sp],
                   "model.yaml", "key 'task' must be 'speaker' or 'fakeface'")


# ------------------------------------------------------------------------------------------ extra.json


@pytest.mark.parametrize(("task", "extra", "words"), [
    ("fakeface", {"threshold": "abc"}, "key 'threshold' must be a number in [0, 1], got \"abc\""),
    ("fakeface", {"load_size": 0}, "key 'load_size' must be a positive integer, got 0"),
    ("fakeface", {"mask": [0, 0, 1]}, "key 'mask' must be a list of 4 numbers or null"),
    ("fakeface", {"face_probe": {"coef": [1.0]}}, "missing key 'face_probe.box'"),
    ("speaker", {"calibration": {"a": 1, "b": 0, "target_far": 0.01, "n_target": 1, "n_nontarget": 1}},
     "missing key 'calibration.threshold' (a finite number)"),
    ("speaker", {"calibration": {"a": 1, "b": 0, "threshold": None, "target_far": 0.01, "n_target": 1,
                                 "n_nontarget": 1}}, "key 'calibration.threshold' must be a finite number, got null"),
    ("speaker", {"kind": "classifier"}, "key 'kind' must be 'embedding' or 'pair' or 'siamese'"),
    ("speaker", {"scoring": {"max_seconds": "20"}}, "key 'scoring.max_seconds' must be a number > 0"),
    ("face", {"input_size": "big"}, "key 'input_size' must be a list of 2 positive integers, got \"big\""),
    ("face", {"threshold": "0.3"}, "key 'threshold' must be a finite number or null"),
])
def test_extra_json_of_the_wrong_type(capsys, models, inputs, tmp_path, task, extra, words):
    folder = copy_of(models[task], tmp_path)
    doc = {**json.loads((folder / "extra.json").read_text()), **extra}
    (folder / "extra.json").write_text(json.dumps(doc))
    command = {"speaker": ["speaker", "verify", "a.wav", "b.wav"], "fakeface": ["fakeface", "predict", "a.png"],
               "face": ["face", "verify", "a.png", "b.png", "--aligned"]}[task]
    one_line_error(capsys, [inputs.get(a, a) for a in command] + ["--model", folder],
                   f"{folder / 'extra.json'}: ", words)


@pytest.mark.parametrize(("name", "text", "words"), [
    ("extra.json", "[1, 2]", "must be a JSON object"),
    ("extra.json", '"threshold"', "must be a JSON object"),
    ("extra.json", "{", "not valid JSON"),
    ("model.yaml", "- mlp\n", "must be a mapping with 'name' and 'kwargs'"),
    ("model.yaml", "name: [1]\n", "key 'name' must be a string"),
    ("model.yaml", "name: resnet18\nkwargs: [1, 2]\n", "key 'kwargs' must be an object"),
    ("model.yaml", "name: resnet18\nkwargs: {num_classes: 1, width: -3}\n", "width=-3"),
    ("config.yaml", "[1, 2]\n", "must be a YAML mapping"),
])
def test_damaged_folder_files(capsys, models, inputs, tmp_path, name, text, words):
    folder = copy_of(models["fakeface"], tmp_path)
    (folder / name).write_text(text)
    one_line_error(capsys, ["fakeface", "predict", inputs["a.png"], "--model", folder], f"{folder / name}: ", words)


def test_config_yaml_the_pair_scorer_reads(capsys, inputs, tmp_path):
    model = facevox.create_model("speaker_pair", backbone="pair_alexnet", backbone_kwargs={"width": 0.1},
                                 features="spectrogram")
    folder = save_model(tmp_path / "pair", model, card=CARDS["speaker"], extra={"kind": "pair"},
                        config={"pair": {"crop_samples": "many"}})
    one_line_error(capsys, ["speaker", "verify", inputs["a.wav"], inputs["b.wav"], "--model", folder],
                   f"{folder / 'config.yaml'}: key 'pair.crop_samples' must be a positive integer")


def test_invert_encoder_missing_keys(tmp_path):
    from facevox.tasks.invert.encoder import load_encoder

    folder = save_model(tmp_path / "enc", facevox.create_model("mlp", in_dim=2, out_dim=2),
                        card=ModelCard(task="GAN inversion: image -> latent z", data="x", licence="x"),
                        extra={"task": "invert", "nz": 8, "generator": {"source": "dcgan-face"}})
    with pytest.raises(FacevoxError, match=r"extra.json: missing key 'input_size'"):
        load_encoder(folder)


# ------------------------------------------------------------------------------------------ weights and scores


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(capsys, models, inputs, tmp_path, value):
    folder = copy_of(models["speaker"], tmp_path)
    state = load_file(folder / "model.safetensors")
    first = next(iter(state))
    state = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, folder / "model.safetensors")
    kind = "NaN" if value != value else "infinite"
    line = one_line_error(capsys, ["speaker", "verify", inputs["a.wav"], inputs["b.wav"], "--model", folder],
                          f"{folder / 'model.safetensors'}: weights contain {kind} values (first in tensor")
    assert "tensor '" in line and "decision" not in line and first.split(".")[0] in line


def test_one_nan_weight_is_named(models, tmp_path):
    folder = copy_of(models["fakeface"], tmp_path)
    state = load_file(folder / "model.safetensors")
    state["fc.bias"] = torch.tensor([float("nan")])
    save_file(state, folder / "model.safetensors")
    with pytest.raises(FacevoxError, match=r"safetensors: weights contain NaN values \(first in tensor 'fc.bias'"):
        read_model_folder(folder)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(FacevoxError, match=r"w.pt: weights contain NaN values \(first in tensor 'fc.bias'"):
        load_weights(facevox.create_model("resnet18", num_classes=1, width=8), tmp_path / "w.pt")


def test_non_finite_scores_are_errors_not_decisions(capsys, models, inputs, tmp_path, monkeypatch):
    from facevox.tasks.face.embed import FaceEmbedder
    from facevox.tasks.fakeface.scoring import Detector
    from facevox.tasks.speaker.scoring import WaveEmbedder

    monkeypatch.setattr(WaveEmbedder, "__call__", lambda self, wave: np.full(4, np.nan, np.float32))
    line = one_line_error(capsys, ["speaker", "verify", inputs["a.wav"], inputs["b.wav"], "--model",
                                   models["speaker"]], f"{models['speaker']}: the score of ", "is NaN")
    assert "a.wav and " in line and "no decision" in line

    monkeypatch.setattr(Detector, "probs", lambda self, images, progress=None: np.full(len(images), np.nan))
    out = tmp_path / "p.json"
    one_line_error(capsys, ["fakeface", "predict", inputs["a.png"], "--model", models["fakeface"], "--out", out],
                   "P(fake) of ", "a.png is NaN", out=out)

    monkeypatch.setattr(FaceEmbedder, "embed", lambda self, crops: np.full((len(crops), 8), np.inf, np.float32))
    one_line_error(capsys, ["face", "verify", inputs["a.png"], inputs["b.png"], "--aligned", "--model",
                            models["face"]], "a.png and ", "b.png is NaN")  # cosine of infinite embeddings


def test_score_files_with_non_finite_scores(capsys, tmp_path):
    scores = tmp_path / "scores.txt"
    scores.write_text("0.9 1\n0.1 0\nnan 1\n")
    out = tmp_path / "out"
    one_line_error(capsys, ["eval-scores", scores, "--out", out], f"{scores}: line 3: score nan is not a finite",
                   out=out)
