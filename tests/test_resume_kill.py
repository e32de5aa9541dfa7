"""A training process killed with SIGKILL (at a step, or in the middle of writing a checkpoint) or
stopped with Ctrl-C (SIGINT) resumes to bit-identical weights.

Each run is ``facevox face train`` in a subprocess on a tiny model (12 steps: 4 epochs of 3). A small
driver delivers the signal at a chosen point of the real command: the trainer's step hook sends
SIGKILL or SIGINT to its own process at a given step, or ``torch.save`` of a checkpoint writes half
the file and then the process is killed. Running the same command again resumes from the last
complete checkpoint; the weights must equal those of an uninterrupted run bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow

SETTINGS = ["data.input_size=[32, 32]", "model.backbone=mobilefacenet", "model.backbone_kwargs={width: 8}",
            "model.embed_dim=16", "train.epochs=4", "train.batch_size=4", "train.ckpt_every=2",
            "train.precision=fp32", "train.progress=false", "train.seed=5"]
# saves: steps 2, 3 (end of epoch 0), 4, 6 (end of epoch 1), 8, 9 (end of epoch 2), 10, 12 (the end)

DRIVER = '''
import os, signal, sys
import torch
from facevox import train
from facevox.cli import main

MODE, AT = os.environ["KILL_MODE"], int(os.environ["KILL_AT"])
fit, save_checkpoint, real_save = train.Trainer.fit, train.Trainer.save_checkpoint, torch.save
saves = []


def fit_with_signal(self, resume=True):
    if MODE in ("step-kill", "step-int"):
        sig = signal.SIGKILL if MODE == "step-kill" else signal.SIGINT
        self.step_hooks.append(lambda step: os.kill(os.getpid(), sig) if step == AT else None)
    return fit(self, resume)


def save_with_kill(self):
    saves.append(1)
    return save_checkpoint(self)


def torch_save(obj, f, *args, **kwargs):  # the AT-th checkpoint: half written, then killed
    real_save(obj, f, *args, **kwargs)
    if MODE == "save-kill" and len(saves) == AT:
        data = open(f, "rb").read()
        with open(f, "wb") as fh:
            fh.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)


train.Trainer.fit, train.Trainer.save_checkpoint, torch.save = fit_with_signal, save_with_kill, torch_save
sys.exit(main(sys.argv[1:]))
'''


def _people(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for p in range(4):
        base = rng.integers(0, 255, (32, 32, 3)).astype(float)
        (root / f"p{p}").mkdir(parents=True)
        for i in range(3):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / f"p{p}" / f"{i + 1}.png")
    return root


def _train(data: Path, out: Path, driver: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    args = ["face", "train", "--data", str(data), "--out", str(out)]
    args += [a for kv in SETTINGS for a in ("--set", kv)]
    cmd = [sys.executable, str(driver), *args] if driver else [sys.executable, "-m", "facevox", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **env))


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _checkpoint_step(run: Path) -> int:
    return int(torch.load(run / "train" / "checkpoints" / "last.pt", weights_only=True)["state"]["step"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_kill")
    data = _people(root / "people")
    driver = root / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    done = _train(data, root / "reference")
    assert done.returncode == 0, done.stderr[-2000:]
    return data, driver, _weights(root / "reference" / "model")


@pytest.mark.parametrize(("mode", "at", "saved_step", "status"), [
    ("step-kill", 5, 4, -signal.SIGKILL),  # killed at the start of step 6; the last checkpoint is step 4
    ("save-kill", 4, 4, -signal.SIGKILL),  # killed while writing the step-6 checkpoint: step 4's is kept
    ("step-int", 7, 8, 130),  # Ctrl-C in step 8: the step is finished and saved, exit status 130
], ids=["kill-9-at-a-step", "kill-9-while-saving", "ctrl-c"])
def test_interrupted_training_resumes_bit_identical(setup, tmp_path, mode, at, saved_step, status):
    data, driver, want = setup
    run = tmp_path / "run"
    done = _train(data, run, driver, KILL_MODE=mode, KILL_AT=str(at))
    assert done.returncode == status, done.stderr[-2000:]
    assert not (run / "model").exists()
    assert _checkpoint_step(run) == saved_step
    if mode == "step-int":
        assert "interrupted" in done.stderr and "Traceback" not in done.stderr

    done = _train(data, run)  # the same command again: resumes
    assert done.returncode == 0, done.stderr[-2000:]
    got = _weights(run / "model")
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
