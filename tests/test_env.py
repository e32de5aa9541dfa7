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
