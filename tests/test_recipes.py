"""Built-in recipes ship inside the package and resolve by name (facevox.recipes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import facevox.recipes as recipes
from facevox.config import load_config
from facevox.errors import FacevoxError
from facevox.recipes import describe_recipe, list_recipes, resolve_recipe

PACKAGE_DIR = Path(recipes.__file__).resolve().parent
ECAPA = PACKAGE_DIR / "speaker" / "ecapa_mmp.yaml"


def config_class(task: str, name: str = "") -> type:
    from facevox.demo import DemoConfig
    from facevox.tasks.face.config import FaceConfig
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.invert.config import InvertConfig
    from facevox.tasks.speaker.config import SpeakerConfig
    from facevox.tasks.voice import recipe_config

    if task == "voice":
        return recipe_config(name)
    return {"demo": DemoConfig, "face": FaceConfig, "fakeface": FakefaceConfig, "invert": InvertConfig,
            "speaker": SpeakerConfig}[task]


@pytest.mark.parametrize("name", ["ecapa_mmp", "ecapa_mmp.yaml", "speaker/ecapa_mmp", "speaker/ecapa_mmp.yaml",
                                  "recipes/speaker/ecapa_mmp.yaml", Path("speaker/ecapa_mmp")])
def test_names_resolve_to_the_packaged_file(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere, as after pip install
    assert resolve_recipe(name) == ECAPA and ECAPA.is_file()


def test_an_existing_file_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ecapa_mmp.yaml").write_text("train: {epochs: 1}\n")
    assert resolve_recipe("ecapa_mmp.yaml") == Path("ecapa_mmp.yaml")
    assert resolve_recipe("ecapa_mmp") == ECAPA  # no file of that exact name here
    (tmp_path / "speaker").mkdir()
    (tmp_path / "speaker" / "ecapa_mmp.yaml").write_text("train: {epochs: 1}\n")
    assert resolve_recipe("speaker/ecapa_mmp.yaml") == Path("speaker/ecapa_mmp.yaml")


def test_an_unknown_name_is_one_line_listing_the_names():
    with pytest.raises(FacevoxError, match="neither a recipe file nor a built-in recipe") as err:
        resolve_recipe("ecapa")
    text = str(err.value)
    assert "\n" not in text and text.startswith("ecapa: ")
    assert all(name in text for name in list_recipes())
    with pytest.raises(FacevoxError, match="speaker/ecapa_mmp"):
        resolve_recipe("face/ecapa_mmp")  # right name, wrong task


def test_a_missing_path_is_still_a_missing_file(tmp_path):
    missing = tmp_path / "runs" / "missing.yaml"
    assert resolve_recipe(missing) == missing
    assert resolve_recipe("a/b/c.yaml") == Path("a/b/c.yaml")
    with pytest.raises(FacevoxError, match="recipe file not found"):
        load_config(config_class("speaker"), missing)


def test_the_same_name_in_two_tasks_asks_for_the_task(tmp_path, monkeypatch):
    for task in ("face", "speaker"):
        (tmp_path / task).mkdir()
        (tmp_path / task / "base.yaml").write_text("# a recipe\n")
    monkeypatch.setattr(recipes, "RECIPE_DIR", tmp_path)
    with pytest.raises(FacevoxError, match="ambiguous; give one of: face/base, speaker/base"):
        resolve_recipe("base")
    assert resolve_recipe("speaker/base") == tmp_path / "speaker" / "base.yaml"
    assert list_recipes() == ["face/base", "speaker/base"] and describe_recipe("face/base") == "a recipe"


def test_list_recipes_and_descriptions():
    names = list_recipes()
    assert len(names) == 24 and names == sorted(names)
    assert {"speaker/ecapa_mmp", "demo/cosface", "invert/encoder_dcgan", "fakeface/spectral"} <= set(names)
    assert list_recipes("mobilefacenet_*") == [n for n in names if n.startswith("face/")]
    assert list_recipes("speaker/x*") == ["speaker/xvector_aam"]
    for name in names:
        text = describe_recipe(name)
        assert 10 < len(text) <= 90 and "\n" not in text, name
    assert describe_recipe("ecapa_mmp").startswith("ECAPA-TDNN")


@pytest.mark.parametrize("name", list_recipes())
def test_every_built_in_recipe_loads_by_name(name):
    task, short = name.split("/")
    cfg = load_config(config_class(task, short), short)
    assert cfg is not None


def test_no_recipes_left_at_the_top_of_the_source_tree():
    root = Path(__file__).resolve().parents[1]
    assert not (root / "recipes").exists()


def test_cli_unknown_recipe_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "facevox", "speaker", "train", "--recipe", "ecapa", "--data",
                           str(tmp_path), "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "speaker/ecapa_mmp" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
