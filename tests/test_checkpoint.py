"""Model folders: save, load with no other flag, and clear errors for broken folders."""

from __future__ import annotations

import json

import pytest
import torch

import facevox
from facevox.checkpoint import ModelCard, read_model_folder, save_model
from facevox.demo import DemoConfig
from facevox.errors import FacevoxError

CARD = ModelCard(task="test", data="random numbers", licence="MIT")


def _model():
    torch.manual_seed(0)
    return facevox.create_model("mlp", in_dim=5, out_dim=3, hidden=7)


def test_save_and_load_round_trip(tmp_path):
    model = _model()
    path = save_model(
        tmp_path / "m", model, card=CARD, config=DemoConfig(), metrics={"eer": 0.05}, extra={"threshold": 0.4}
    )
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md",
        "config.yaml",
        "extra.json",
        "metrics.json",
        "model.safetensors",
        "model.yaml",
    ]
    loaded = facevox.load_model(path)
    x = torch.randn(4, 5)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert not loaded.training and loaded.facevox_extra == {"threshold": 0.4}
    folder = read_model_folder(path)
    assert folder.metrics == {"eer": 0.05} and folder.config["speaker"]["train"]["batch_size"] == 32
    assert "random numbers" in folder.card and "MIT" in folder.card and "| eer | 0.05 |" in folder.card


def test_overwrite_is_all_or_nothing(tmp_path):
    path = save_model(tmp_path / "m", _model(), card=CARD, metrics={"v": 1})

    class Boom(ModelCard):
        def to_markdown(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(path, _model(), card=Boom(task="t", data="d", licence="l"), metrics={"v": 2})
    assert json.loads((path / "metrics.json").read_text()) == {"v": 1}  # old folder intact
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary leftovers


def test_broken_folders_are_user_errors(tmp_path):
    with pytest.raises(FacevoxError, match="model folder not found"):
        facevox.load_model(tmp_path / "missing")
    path = save_model(tmp_path / "m", _model(), card=CARD)
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(FacevoxError, match=r"model.safetensors: cannot read weights"):
        facevox.load_model(path)
    path = save_model(tmp_path / "m2", _model(), card=CARD)
    (path / "model.yaml").write_text("name: mlp\nkwargs: {in_dim: 5, out_dim: 4, hidden: 7}\n")
    with pytest.raises(FacevoxError, match="weights do not fit model 'mlp'"):
        facevox.load_model(path)
    (path / "model.yaml").unlink()
    with pytest.raises(FacevoxError, match="model.yaml is missing"):
        facevox.load_model(path)
