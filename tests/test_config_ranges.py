"""Settings are checked before anything runs: declared ranges, finite floats, tuple lengths, model sizes."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path

import pytest
import torch
from torch import nn

from facevox.cli import main
from facevox.config import (
    Range,
    TrainConfig,
    fields_without_range,
    load_config,
    ranged,
    ranged_arg,
    read_yaml,
    validate,
)
from facevox.errors import FacevoxError
from facevox.registry import MAX_PARAMETERS, BuildError, Registry, create_model
from facevox.tasks.face.config import FaceConfig
from facevox.tasks.fakeface.config import FakefaceConfig
from facevox.tasks.invert.config import InvertConfig
from facevox.tasks.speaker.config import SpeakerConfig, SpeakerData

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"speaker": SpeakerConfig, "face": FaceConfig, "fakeface": FakefaceConfig, "invert": InvertConfig}
VOICE_MODULES = ("vocoder_config", "detector_config", "wavegan_config")  # the voice task has three models


def _voice_config(recipe: Path) -> type:
    from facevox.tasks.voice import recipe_config

    return recipe_config(recipe.stem)

# (override, dotted key, what the message says)
PROBES = [
    ("train.epochs=0", "train.epochs", "must be an integer >= 1, got 0"),
    ("train.epochs=-1", "train.epochs", "must be an integer >= 1, got -1"),
    ("train.max_steps=-5", "train.max_steps", "must be null or an integer >= 1, got -5"),
    ("train.batch_size=0", "train.batch_size", "must be an integer >= 1, got 0"),
    ("train.ckpt_every=0", "train.ckpt_every", "must be an integer >= 1, got 0"),
    ("train.log_every=0", "train.log_every", "must be an integer >= 1, got 0"),
    ("train.num_workers=-1", "train.num_workers", "must be an integer >= 0, got -1"),
    ("train.lr=nan", "train.lr", "must be a finite number > 0, got nan"),
    ("train.lr=.nan", "train.lr", "must be a finite number > 0, got nan"),
    ("train.lr=inf", "train.lr", "must be a finite number > 0, got inf"),
    ("train.lr=-1", "train.lr", "must be a finite number > 0, got -1.0"),
    ("train.lr=0", "train.lr", "must be a finite number > 0, got 0.0"),
    ("train.warmup_steps=-10", "train.warmup_steps", "must be an integer >= 0, got -10"),
    ("train.grad_clip=-1", "train.grad_clip", "must be null or a finite number > 0, got -1.0"),
    ("train.momentum=1", "train.momentum", "must be a finite number in [0, 1), got 1.0"),
    ("train.weight_decay=-0.1", "train.weight_decay", "must be a finite number >= 0, got -0.1"),
    ("train.seed=-1", "train.seed", "must be an integer in [0, 4294967295], got -1"),
    ("data.crop_seconds=0", "data.crop_seconds", "must be a finite number > 0, got 0.0"),
    ("data.crop_seconds=-1", "data.crop_seconds", "must be a finite number > 0, got -1.0"),
    ("data.snr_db=[20, 5]", "data.snr_db", "must be low <= high, got [20.0, 5.0]"),
    ("data.snr_db=[5, 10, 20]", "data.snr_db", "expected 2 values, got 3: [5, 10, 20]"),
    ("data.snr_db=[5, .nan]", "data.snr_db[1]", "each value must be a finite number, got nan"),
    ("data.noise_prob=2", "data.noise_prob", "must be a finite number in [0, 1], got 2.0"),
    ("scoring.target_far=0", "scoring.target_far", "must be a finite number in (0, 1), got 0.0"),
    ("loss.kwargs={scale: .inf}", "loss.kwargs.scale", "must be a finite number, got inf"),
]


@pytest.mark.parametrize(("override", "key", "message"), PROBES)
def test_out_of_range_settings_are_one_line_errors(override, key, message):
    with pytest.raises(FacevoxError) as err:
        load_config(SpeakerConfig, None, [override])
    assert err.value.where == key and err.value.problem == message
    assert "\n" not in str(err.value)


def test_valid_edges_are_accepted():
    cfg = load_config(SpeakerConfig, None, ["train.max_steps=1", "train.grad_clip=null", "train.momentum=0",
                                            "train.warmup_steps=0", "data.snr_db=[10, 10]", "data.noise_prob=1",
                                            "train.lr=3e-4", "data.snr_db=[-5, 0]"])
    assert cfg.train.max_steps == 1 and cfg.data.snr_db == (-5.0, 0.0) and cfg.train.lr == 3e-4


def test_a_recipe_error_names_the_file_and_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 0\n")
    with pytest.raises(FacevoxError, match=r"r\.yaml: train\.epochs: must be an integer >= 1, got 0$"):
        load_config(SpeakerConfig, recipe)


def test_nested_configs_get_the_full_dotted_key():
    @dataclasses.dataclass
    class Outer:
        speaker: SpeakerConfig = dataclasses.field(default_factory=SpeakerConfig)

    with pytest.raises(FacevoxError) as err:
        load_config(Outer, None, ["speaker.train.lr=nan"])
    assert str(err.value) == "speaker.train.lr: must be a finite number > 0, got nan"


@pytest.mark.parametrize(
    ("cls", "override", "key", "message"),
    [
        (FakefaceConfig, "data.split_fractions=[0.7, 0.3]", "data.split_fractions", "expected 3 values"),
        (FakefaceConfig, "data.split_fractions=[0.5, 0.5, 0.5]", "data.split_fractions", "must sum to 1"),
        (FakefaceConfig, "data.mask=[0.5, 0, 0.2, 1]", "data.mask", "x0 < x1"),
        (FakefaceConfig, "data.mask=[0, 0, 1]", "data.mask", "expected 4 values"),
        (FakefaceConfig, "data.augment.jpeg_quality=[90, 20]", "data.augment.jpeg_quality", "low <= high"),
        (FakefaceConfig, "data.augment.blur_prob=1.5", "data.augment.blur_prob", "in [0, 1]"),
        (FakefaceConfig, "data.crop_size=300", "data.crop_size", "crop_size <= load_size"),
        (FakefaceConfig, "data.load_size=100000", "data.load_size", "in [1, 4096]"),
        (FakefaceConfig, "model.dropout=1", "model.dropout", "in [0, 1)"),
        (FaceConfig, "data.input_size=[0, 96]", "data.input_size[0]", "each value must be an integer in [1, 4096]"),
        (FaceConfig, "data.input_size=[112, 96, 3]", "data.input_size", "expected 2 values"),
        (FaceConfig, "scoring.target_far=1", "scoring.target_far", "in (0, 1)"),
        (FaceConfig, "model.embed_dim=0", "model.embed_dim", ">= 1"),
        (InvertConfig, "generator.output_range=[1, -1]", "generator.output_range", "low < high"),
        (InvertConfig, "generator.nz=0", "generator.nz", "null or an integer >= 1"),
        (InvertConfig, "optim.restarts=0", "optim.restarts", ">= 1"),
        (InvertConfig, "optim.steps=-1", "optim.steps", ">= 0"),
        (InvertConfig, "encoder.z_loss=-1", "encoder.z_loss", ">= 0"),
    ],
)
def test_task_settings_are_checked(cls, override, key, message):
    with pytest.raises(FacevoxError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as err:
        load_config(cls, None, [override])
    assert err.value.where == key


def _task_config_classes() -> list[type]:
    """Every dataclass of every task's config module, and TrainConfig."""
    classes = [TrainConfig]
    modules = [f"facevox.tasks.{task}.config" for task in TASKS] + [f"facevox.tasks.voice.{m}" for m in VOICE_MODULES]
    for name in modules:
        module = importlib.import_module(name)
        classes += [c for c in vars(module).values() if dataclasses.is_dataclass(c) and c.__module__ == module.__name__]
    return classes


@pytest.mark.parametrize("cls", _task_config_classes(), ids=lambda c: c.__name__)
def test_every_numeric_setting_declares_its_range(cls):
    assert fields_without_range(cls) == []  # a new int/float field needs ranged(default, ...)
    validate(cls())  # and the defaults are in range


def test_the_loop_test_can_fail():
    @dataclasses.dataclass
    class Loose:
        ok: int = ranged(1, ge=0)
        rate: float = 0.5
        pair: tuple[int, int] | None = None
        name: str = ""
        flag: bool = False

    assert fields_without_range(Loose) == ["rate", "pair"]


def _recipes() -> list[Path]:
    patterns = ("recipes/**/*.yaml", "src/facevox/recipes/**/*.yaml")  # the recipes may move into the package
    found = {p.resolve() for pattern in patterns for p in ROOT.glob(pattern)}
    return sorted(found)


def test_the_shipped_recipes_still_load():
    from facevox.demo import DemoConfig

    recipes = _recipes()
    assert recipes, "no recipes found"
    for path in recipes:
        cls = _voice_config(path) if path.parent.name == "voice" else {**TASKS, "demo": DemoConfig}[path.parent.name]
        load_config(cls, path)


def test_configs_built_in_python_are_checked_by_validate():
    cfg = SpeakerConfig(data=SpeakerData(snr_db=(20.0, 5.0)))
    with pytest.raises(FacevoxError, match=r"^data\.snr_db: must be low <= high"):
        validate(cfg)
    with pytest.raises(FacevoxError, match=r"^speaker\.data\.crop_seconds: must be a finite number > 0, got nan"):
        validate(SpeakerConfig(data=SpeakerData(crop_seconds=float("nan"))), "speaker.")
    with pytest.raises(FacevoxError, match="expected 2 values, got 3"):
        validate(SpeakerConfig(data=SpeakerData(snr_db=(1.0, 2.0, 3.0))))
    with pytest.raises(FacevoxError, match=r"^train\.epochs: expected an integer, got 'x'"):
        validate(SpeakerConfig(train=TrainConfig(epochs="x")))


def test_range_descriptions_and_infinite_fields():
    assert Range(gt=0).describe() == "a finite number > 0"
    assert Range(ge=1).describe(integer=True) == "an integer >= 1"
    assert Range(ge=0, lt=1).describe() == "a finite number in [0, 1)"
    assert Range(le=2.5, finite=False).describe() == "a number <= 2.5"
    assert Range(finite=False, gt=0).allows(float("inf")) and not Range(gt=0).allows(float("inf"))
    assert not Range(finite=False, gt=0).allows(float("nan")) and Range(finite=False).allows(float("nan"))

    @dataclasses.dataclass
    class Limit:
        cap: float = ranged(float("inf"), gt=0, finite=False)

    assert load_config(Limit, None, ["cap=.inf"]).cap == float("inf")
    with pytest.raises(FacevoxError, match="must be a number > 0"):
        load_config(Limit, None, ["cap=-1"])


def test_ranged_arg():
    positive = ranged_arg(int, ge=1)
    assert positive("3") == 3
    for bad in ("0", "-3", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="an integer >= 1"):
            positive(bad)
    unit = ranged_arg(float, gt=0, lt=1)
    assert unit("0.5") == 0.5
    for bad in ("0", "1", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"a finite number in \(0, 1\)"):
            unit(bad)


# ---------------------------------------------------------------- recipe files


def test_unreadable_recipes_are_one_line_errors(tmp_path, monkeypatch):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("train:\n  device: caf\xe9\n".encode("latin-1"))
    with pytest.raises(FacevoxError, match=r"latin1\.yaml: not UTF-8 text \(byte 20\)"):
        read_yaml(latin1)
    with pytest.raises(FacevoxError, match="is a folder, not a recipe file"):
        load_config(SpeakerConfig, tmp_path)
    locked = tmp_path / "locked.yaml"
    locked.write_text("train: {}\n")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod does not stop root, so refuse directly
    with pytest.raises(FacevoxError, match=r"locked\.yaml: cannot read the recipe: permission denied"):
        read_yaml(locked)


# ---------------------------------------------------------------- model sizes and constructor arguments


def test_a_huge_model_is_refused_before_anything_is_allocated():
    reg = Registry("model", probe=True)
    built_for_real = []

    @reg.register("wide")
    def wide(*, width: int = 8) -> nn.Module:
        if torch.empty(0).device.type != "meta":
            built_for_real.append(width)
        return nn.Linear(width, width)

    assert isinstance(reg.create("wide", width=8), nn.Linear) and built_for_real == [8]
    with pytest.raises(BuildError, match=r"model 'wide' with width=100000 would have 1e\+10 parameters \(40 GB"):
        reg.create("wide", width=100_000)
    assert built_for_real == [8]  # never built on a real device
    assert MAX_PARAMETERS == 2_000_000_000


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("ecapa_tdnn", {"channels": 10_000_000}, r"channels=10000000 would have .* parameters"),
        ("iresnet18", {"width": 100_000}, r"width=100000 would have .* parameters"),
        ("speaker_embedder", {"backbone_kwargs": {"channels": 10_000_000}}, r"'ecapa_tdnn' .*channels=10000000"),
        ("ecapa_tdnn", {"channels": -8}, r"cannot be built with channels=-8: RuntimeError: .*negative dimension"),
        ("resnet18", {"width": "wide"}, r"cannot be built with width='wide': TypeError"),
        ("resnet50", {"width": 0}, r"width=0 has a layer of size 0"),
        ("resnet18", {"dropout": 2.0}, r"cannot be built with dropout=2.0: ValueError"),
    ],
)
def test_bad_model_arguments_are_one_line_errors(name, kwargs, message):
    with pytest.raises(BuildError, match=message) as err:
        create_model(name, **kwargs)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)


# ---------------------------------------------------------------- through the command line


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("override", "key"),
    [("train.epochs=0", "train.epochs"), ("train.lr=nan", "train.lr"), ("data.snr_db=[1, 2, 3]", "data.snr_db"),
     ("data.crop_seconds=-1", "data.crop_seconds")],
)
def test_speaker_train_checks_settings_before_reading_data(tmp_path, capsys, override, key):
    out = tmp_path / "run"
    assert main(["speaker", "train", "--data", str(tmp_path / "no-corpus"), "--out", str(out), "--set", override]) == 2
    assert f"facevox: error: {key}: " in _one_line_error(capsys)
    assert not out.exists()


def test_demo_refuses_a_terabyte_backbone_before_writing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--set", "speaker.model.backbone_kwargs.channels=10000000"]) == 2
    assert "channels=10000000 would have" in _one_line_error(capsys)
    assert main(["demo", "--out", str(out), "--set", "speaker.train.lr=nan"]) == 2
    assert "facevox: error: speaker.train.lr: must be a finite number > 0, got nan" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fakeface", "predict", "--model", "m", "--batch-size", "0", "x.png"], "--batch-size: must be an integer >="),
        (["fakeface", "predict", "--model", "m", "--batch-size", "-3", "x.png"], "--batch-size: must be an integer"),
        (["face", "align", "src", "--out", "o", "--size", "0", "0"], "--size: must be an integer in [1, 4096]"),
        (["speaker", "trials", "c", "--out", "t", "--mode", "sampled", "--n", "0"], "--n: must be an integer >= 2"),
        (["speaker", "trials", "c", "--out", "t", "--target-fraction", "1.5"], "--target-fraction: must be"),
        (["speaker", "eval", "trials.txt", "--asnorm-top-k", "-1"], "--asnorm-top-k: must be an integer >= 0"),
        (["invert", "run", "x.png", "--restarts", "0"], "--restarts: must be an integer >= 1"),
        (["invert", "eval", "--n", "0"], "--n: must be an integer >= 1"),
        (["invert", "run", "x.png", "--lr", "nan"], "--lr: must be a finite number > 0"),
    ],
)
def test_numeric_options_are_range_checked(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert message in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []
