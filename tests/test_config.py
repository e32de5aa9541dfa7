"""Recipes, overrides and type checks."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from facevox.config import TrainConfig, apply_overrides, load_config, save_config, to_dict
from facevox.errors import FacevoxError


@dataclasses.dataclass
class Model:
    name: str = "mlp"
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run:
    model: Model = dataclasses.field(default_factory=Model)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tags: list[str] = dataclasses.field(default_factory=list)


def test_recipe_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 3e-4\n  epochs: 4\nmodel:\n  name: resnet\n  kwargs: {depth: 18}\n")
    cfg = load_config(
        Run,
        recipe,
        [
            "train.batch_size=32",
            "train.lr=1e-3",
            "model.kwargs.width=64",
            "train.grad_clip=null",
            "train.precision=bf16",
            "tags=[a, b]",
        ],
    )
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)  # "3e-4" is a string to PyYAML
    assert cfg.train.epochs == 4 and cfg.train.batch_size == 32
    assert cfg.model.kwargs == {"depth": 18, "width": 64}
    assert cfg.train.grad_clip is None and cfg.train.precision == "bf16" and cfg.tags == ["a", "b"]


def test_unknown_key_names_the_valid_keys(tmp_path):
    with pytest.raises(FacevoxError) as err:
        load_config(Run, None, ["train.learning_rate=1"])
    assert err.value.where == "train.learning_rate"
    assert "valid keys:" in str(err.value) and "lr" in str(err.value)
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("trian:\n  lr: 1\n")
    with pytest.raises(FacevoxError, match=r"bad.yaml: trian: unknown key 'trian'; valid keys: model, tags, train"):
        load_config(Run, recipe)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=three", "expected an integer"),
        ("train.epochs=1.5", "expected an integer"),
        ("train.lr=fast", "expected a number"),
        ("train.progress=maybe", "expected true or false"),
        ("train.optimizer=lbfgs", "expected one of 'adam', 'adamw', 'sgd'"),
        ("train.epochs=true", "expected an integer"),
        ("train=3", "expected a mapping"),
        ("train.lr.x=1", "expected a number"),
        ("novalue", "must look like key.sub=value"),
    ],
)
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(FacevoxError, match=message) as err:
        load_config(Run, None, [override])
    assert "\n" not in str(err.value)


def test_bad_recipe_files(tmp_path):
    with pytest.raises(FacevoxError, match="recipe file not found"):
        load_config(Run, tmp_path / "missing.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(FacevoxError, match="not valid YAML"):
        load_config(Run, bad)


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(Run, None, ["train.lr=0.01", "model.kwargs.a=1"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(Run, path)
    assert to_dict(again) == to_dict(cfg)
    assert yaml.safe_load(path.read_text())["train"]["lr"] == 0.01


def test_overrides_do_not_mutate_the_input():
    data = {"train": {"lr": 1}}
    apply_overrides(data, ["train.lr=2"])
    assert data == {"train": {"lr": 1}}


@dataclasses.dataclass
class Outer:
    inner: Run = dataclasses.field(
        default_factory=lambda: Run(model=Model("resnet", {"depth": 18}), train=TrainConfig(epochs=7, lr=0.5))
    )


def test_nested_sections_merge_into_the_parents_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inner:\n  train:\n    batch_size: 3\n  model:\n    kwargs: {width: 2}\n")
    cfg = load_config(Outer, recipe, ["inner.train.lr=0.25"])
    # keys the recipe does not name keep the parent's default, not the bare class default
    assert cfg.inner.train.epochs == 7 and cfg.inner.train.batch_size == 3 and cfg.inner.train.lr == 0.25
    assert cfg.inner.model.name == "resnet"
    assert cfg.inner.model.kwargs == {"width": 2}  # a mapping value is replaced whole, not merged
    assert Outer().inner.train.batch_size == TrainConfig().batch_size  # the default was not mutated


def test_an_empty_section_keeps_the_parents_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inner:\n  train:\n")
    assert load_config(Outer, recipe, []).inner.train.epochs == 7
