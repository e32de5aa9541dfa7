"""Run folders that cannot be turned against their user: checkpoints load with weights_only, a
planted pickle is refused unrun, a run is not resumed with other settings, stale temporaries of a
killed writer are removed, ``--out`` is checked before anything is written, and bf16 on CPUs
without native bf16 (the LSTM)."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest
import torch

from conftest import NoisyBlobs, classify_loss
from facevox import cli, precision
from facevox.config import TrainConfig
from facevox.errors import FacevoxError
from facevox.fileio import check_output_path
from facevox.registry import create_model
from facevox.train import Trainer
from test_invert import HELPER


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=1, batch_size=8, lr=1e-2, precision="fp32", progress=False, seed=1), **kw})


class _Planted:
    """Unpickling this object calls open(marker, "w"): it creates a file, as a real exploit would run code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(run_dir, marker) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "state": {}, "rng": {}, "x": _Planted(str(marker))},
               run_dir / "checkpoints" / "last.pt")


def test_planted_checkpoint_is_refused_and_never_unpickled(tmp_path, make_net):
    marker = tmp_path / "pwned"
    _plant(tmp_path / "run", marker)
    with pytest.raises(FacevoxError, match="refusing to load this checkpoint"):
        Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), tmp_path / "run").fit()
    assert not marker.exists()
    # the same file through torch.load without weights_only would have run it: the test can fail
    torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_holds_only_tensors_and_plain_data(tmp_path, make_net):
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=3), tmp_path).fit()
    payload = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert payload["state"]["step"] == 3 and payload["format"] == 2
    assert isinstance(payload["rng"]["numpy"]["keys"], torch.Tensor)


def test_checkpoint_with_other_training_settings_is_refused(tmp_path, make_net):
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=3), tmp_path).fit()
    with pytest.raises(FacevoxError, match=r"other training settings \(lr"):
        Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=6, lr=0.5), tmp_path).fit()
    with pytest.raises(FacevoxError, match="optimizer"):
        Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=6, optimizer="sgd"), tmp_path).fit()
    # more steps is a resumption, not a mismatch
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=6), tmp_path).fit()


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path, make_net):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    stale, fresh = ckpt / ".last.pt.k3j4_x9a.tmp", ckpt / ".last.pt.new12345.tmp"
    other = ckpt / ".notes.tx.12345678.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"x" * 100)
    old = time.time() - 10 * 24 * 3600
    for p in (stale, other):
        os.utime(p, (old, old))
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=2), tmp_path).fit()
    assert not stale.exists() and (ckpt / "last.pt").is_file()
    assert fresh.exists() and other.exists()  # newer than this process, or another file's: left alone


# --------------------------------------------------------------------------------------------
# through the command line: a run folder of `invert train-encoder` (the cheapest trainer)


@pytest.fixture
def tiny_gen(tmp_path, monkeypatch):
    (tmp_path / "tiny_invert_gen.py").write_text(textwrap.dedent(HELPER))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("tiny_invert_gen", None)


TRAIN = ["invert", "train-encoder", "--generator", "tiny_invert_gen:tiny", "--nz", "8", "--device", "cpu",
         *[a for kv in ("encoder.width=8", "encoder.samples_per_epoch=16", "train.batch_size=8", "train.max_steps=2",
                        "train.precision=fp32", "train.progress=false") for a in ("--set", kv)]]


def _main(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


def test_cli_resume_refuses_a_planted_checkpoint(tmp_path, tiny_gen, capsys):
    out = tmp_path / "run"
    assert _main(capsys, *TRAIN, "--out", str(out))[0] == 0
    marker = tmp_path / "pwned"
    _plant(out / "train", marker)
    code, io = _main(capsys, *TRAIN, "--out", str(out))
    assert code == 2 and not marker.exists()
    lines = io.err.strip().splitlines()
    assert len(lines) == 1 and "last.pt" in lines[0] and "refusing" in lines[0] and "Traceback" not in io.err


def test_cli_refuses_to_resume_with_other_settings(tmp_path, tiny_gen, capsys):
    out = tmp_path / "run"
    assert _main(capsys, *TRAIN, "--out", str(out))[0] == 0
    config = (out / "config.yaml").read_text()
    for extra, key in ((["--set", "train.lr=0.5"], "train.lr"), (["--set", "train.optimizer=sgd"], "train.optimizer"),
                       (["--nz", "8", "--set", "encoder.width=16"], "encoder.width")):
        code, io = _main(capsys, *TRAIN, *extra, "--out", str(out))
        lines = io.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and key in lines[0] and "--restart" in lines[0], io.err
        assert (out / "config.yaml").read_text() == config  # the record of the run is unchanged
    # more steps resumes; --restart starts over with the new settings and records them
    assert _main(capsys, *TRAIN, "--set", "train.max_steps=4", "--out", str(out))[0] == 0
    assert _main(capsys, *TRAIN, "--set", "train.lr=0.5", "--restart", "--out", str(out))[0] == 0
    from facevox.runfolder import start_run  # a restart drops the old checkpoint before anything else

    start_run(out, {"x": 1}, resuming=False)
    assert not (out / "train" / "checkpoints" / "last.pt").exists()
    assert _main(capsys, *TRAIN, "--set", "train.lr=0.5", "--restart", "--out", str(out))[0] == 0
    assert "lr: 0.5" in (out / "config.yaml").read_text()
    assert _main(capsys, *TRAIN, "--set", "train.lr=0.5", "--out", str(out))[0] == 0


# --------------------------------------------------------------------------------------------
# --out and OS errors


def test_output_paths_are_checked_before_writing(tmp_path, monkeypatch):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    with pytest.raises(FacevoxError, match="names an existing file"):
        check_output_path(a_file)
    with pytest.raises(FacevoxError, match="is a file, not a folder"):
        check_output_path(a_file / "sub" / "deeper")
    with pytest.raises(FacevoxError, match="names a folder"):
        check_output_path(tmp_path, is_file=True)
    check_output_path(a_file, is_file=True)  # overwriting a file output is fine
    check_output_path(tmp_path / "new" / "folder")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # tests run as root: chmod would not stop us
    with pytest.raises(FacevoxError, match="no permission"):
        check_output_path(tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("kind", ["file", "below-file"])
def test_cli_out_errors_are_one_line_and_write_nothing(tmp_path, capsys, kind):
    scores = tmp_path / "s.txt"
    scores.write_text("0.9 1\n0.1 0\n0.8 1\n0.2 0\n")
    out = scores if kind == "file" else scores / "report"
    code, io = _main(capsys, "eval-scores", str(scores), "--out", str(out))
    assert code == 2 and len(io.err.strip().splitlines()) == 1 and str(scores) in io.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]


def test_os_errors_and_interrupts_print_one_line(monkeypatch, capsys, tmp_path):
    import errno

    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.json"))

    def interrupted(args):
        raise KeyboardInterrupt

    for handler, code, want in ((full_disk, 2, "metrics.json: No space left on device"),
                                (interrupted, 130, "facevox: interrupted")):
        monkeypatch.setattr(cli, "_cmd_list", handler)
        assert cli.main(["list"]) == code
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [err.strip()] and want in err


# --------------------------------------------------------------------------------------------
# bf16 where the CPU has no native bf16


def test_auto_precision_is_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    cpu = torch.device("cpu")
    assert precision.resolve_precision("auto", cpu) is None
    assert precision.resolve_precision("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: True)
    assert precision.resolve_precision("auto", cpu) is torch.bfloat16


def test_lstm_runs_in_fp32_under_bf16_autocast_without_native_bf16(monkeypatch):
    torch.manual_seed(0)
    model = create_model("voice_encoder").eval()
    x = torch.randn(2, 40, 30)
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert precision.needs_fp32_recurrent(x)
        out = model(x)
    _, (hidden, _) = model.lstm(x.transpose(1, 2))  # the fp32 LSTM, then the bf16 linear layer
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.nn.functional.normalize(model.relu(model.linear(hidden[-1])).float(), dim=1)
    assert torch.allclose(out, want, atol=1e-6)
    assert not precision.needs_fp32_recurrent(x)  # outside autocast nothing changes
