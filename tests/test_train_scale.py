"""The trainer's GPU-minded paths: batched log fetches, appended CSV, persistent workers, decay groups,
gradient accumulation, one-line errors from DataLoader workers, streams of batches, and a GPU smoke test."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, get_worker_info

import facevox.train as train_mod
from conftest import NoisyBlobs, TinyConvNet, classify_loss
from facevox.config import TrainConfig
from facevox.errors import FacevoxError, from_worker
from facevox.train import Trainer, decay_groups


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, lr=1e-2, precision="fp32", ckpt_every=3, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


class Crash(RuntimeError):
    pass


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 2))


# ---------------------------------------------------------------------------------------------- logs


def test_logged_values_are_fetched_once_per_log_every(monkeypatch, tmp_path, make_net):
    calls = []
    real = train_mod._materialise
    monkeypatch.setattr(train_mod, "_materialise", lambda rows: calls.append(len(rows)) or real(rows))
    cfg = _cfg(max_steps=10, log_every=5, ckpt_every=100)
    Trainer(make_net(), classify_loss, NoisyBlobs(n=128), cfg, tmp_path).fit()  # 16 batches an epoch
    assert calls == [5, 5]  # two transfers for ten steps
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 11)) and all(isinstance(r["loss"], float) for r in rows)


def test_non_finite_loss_is_caught_at_the_next_check_and_never_saved(tmp_path, make_net):
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        out = classify_loss(model, batch)
        if calls["n"] >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    with pytest.raises(FloatingPointError, match="at step 4"):
        Trainer(make_net(), loss, NoisyBlobs(), _cfg(max_steps=8, log_every=5, ckpt_every=2), tmp_path).fit()
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"]["step"] == 2  # the step-4 checkpoint was refused
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and np.isnan(rows[-1]["loss"])


def test_csv_is_appended_and_trimmed_on_resume(tmp_path, make_net):
    inodes = set()

    def watch(step: int) -> None:
        if (tmp_path / "metrics.csv").is_file():
            inodes.add(os.stat(tmp_path / "metrics.csv").st_ino)

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise Crash("simulated")
        return classify_loss(model, batch)

    cfg = _cfg(log_every=1, ckpt_every=3)
    with pytest.raises(Crash):
        Trainer(make_net(), crashing, NoisyBlobs(), cfg, tmp_path, step_hooks=[watch]).fit()
    assert len(inodes) == 1  # the file was appended to, never replaced
    with open(tmp_path / "metrics.csv", newline="") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, 8))
    Trainer(make_net(), classify_loss, NoisyBlobs(), cfg, tmp_path).fit()  # resumes from step 6
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    assert list(rows[0])[:5] == ["step", "epoch", "lr", "loss", "acc"]


def test_csv_gets_a_column_that_appears_mid_run(tmp_path, make_net):
    def loss(model, batch):
        out = classify_loss(model, batch)
        if model.training and torch.rand(()).item() >= 0:  # always; keeps the RNG use of every step equal
            loss.n += 1
            if loss.n > 3:
                out["late"] = out["loss"] * 2
        return out

    loss.n = 0
    Trainer(make_net(), loss, NoisyBlobs(), _cfg(max_steps=6, log_every=2), tmp_path).fit()
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["late"] == "" for r in rows] == [True, True, True, False, False, False]
    assert float(rows[4]["late"]) == pytest.approx(2 * float(rows[4]["loss"]))


def test_stop_at_the_last_batch_of_an_epoch_resumes(tmp_path, make_net):
    want = _weights(Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), None).fit())
    trainer = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), tmp_path)

    def stop(step: int) -> None:
        if step == 7:  # the 8th step is epoch 0's last batch
            trainer._stop_requested = True

    trainer.step_hooks.append(stop)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"] == {"step": 8, "epoch": 0, "batch_in_epoch": 8}
    assert _same(want, _weights(Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), tmp_path).fit()))


# ---------------------------------------------------------------------------------------------- loader


class PidBlobs(NoisyBlobs):
    def get(self, index, rng):
        x, y = super().get(index, rng)
        return x, y, torch.tensor(os.getpid())


def test_one_worker_process_serves_every_epoch_and_matches_no_workers(make_net):
    pids = set()

    def loss(model, batch):
        pids.update(batch[2].tolist())
        return classify_loss(model, batch[:2])

    want = _weights(Trainer(make_net(), loss, PidBlobs(), _cfg(epochs=3), None).fit())
    pids.clear()
    trainer = Trainer(make_net(), loss, PidBlobs(), _cfg(epochs=3, num_workers=1, prefetch_factor=3), None)
    assert not trainer.pin_memory  # CPU
    got = _weights(trainer.fit())
    assert len(pids) == 1 and os.getpid() not in pids  # one persistent worker for the three epochs
    assert _same(want, got)


def test_resume_with_workers_is_exact(tmp_path, make_net):
    cfg = _cfg(num_workers=1)
    want = _weights(Trainer(make_net(), classify_loss, NoisyBlobs(), cfg, tmp_path / "a").fit())
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 11:
            raise Crash("simulated")
        return classify_loss(model, batch)

    with pytest.raises(Crash):
        Trainer(make_net(), crashing, NoisyBlobs(), cfg, tmp_path / "b").fit()
    got = _weights(Trainer(make_net(seed=9), classify_loss, NoisyBlobs(), cfg, tmp_path / "b").fit())
    assert _same(want, got)


class BrokenItem(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 3:
            raise FacevoxError("cannot decode this file: not a WAV file", "/corpus/spk1/item3.wav")
        return torch.zeros(1, 8, 8), torch.tensor(0)


def test_error_in_a_worker_reaches_the_user_as_one_line(make_net):
    cfg = _cfg(num_workers=1, batch_size=2)
    cfg.seed = 0
    with pytest.raises(FacevoxError) as err:
        Trainer(make_net(), classify_loss, BrokenItem(), cfg, None).fit()
    assert err.value.where == "/corpus/spk1/item3.wav"
    assert err.value.problem == "cannot decode this file: not a WAV file"
    assert str(err.value) == "/corpus/spk1/item3.wav: cannot decode this file: not a WAV file"


def test_from_worker_leaves_other_errors_alone():
    assert from_worker(RuntimeError("Caught ValueError in DataLoader worker process 0. Original Traceback")) is None
    assert from_worker(ValueError("plain")) is None
    wrapped = RuntimeError("Caught FacevoxError in DataLoader worker process 2.\nOriginal Traceback (most recent "
                           "call last):\n  File \"x.py\", line 1\n    raise FacevoxError('bad', 'a.png')\n"
                           "facevox.errors.FacevoxError: a.png: bad thing\n")
    one = from_worker(wrapped)
    assert (one.where, one.problem) == ("a.png", "bad thing")


# ---------------------------------------------------------------------------------------------- optimiser


def test_norms_and_biases_get_no_weight_decay():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4 * 6 * 6),
                          nn.Linear(4 * 6 * 6, 2))
    groups = decay_groups(model, model.parameters())
    decay, rest = groups
    assert [p.shape for p in decay["params"]] == [(4, 1, 3, 3), (2, 144)] and "weight_decay" not in decay
    assert rest["weight_decay"] == 0.0 and len(rest["params"]) == 6  # conv bias, bn w/b, ln w/b, linear bias
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_no_decay_groups_in_the_trainer(make_net):
    net = make_net()
    trainer = Trainer(net, classify_loss, NoisyBlobs(), _cfg(weight_decay=0.1, optimizer="adamw"), None)
    wd = [(g["weight_decay"], len(g["params"])) for g in trainer.optimizer.param_groups]
    assert wd == [(0.1, 2), (0.0, 2)]  # conv and fc weights; their biases
    off = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(weight_decay=0.1, decay_norms_and_biases=True), None)
    assert [g["weight_decay"] for g in off.optimizer.param_groups] == [0.1]
    net = make_net()
    given = [{"params": net.conv.parameters(), "lr": 0.5}, {"params": list(net.fc.parameters())}]
    grouped = Trainer(net, classify_loss, NoisyBlobs(), _cfg(weight_decay=0.1), None, params=given)
    got = [(g["lr"], g["weight_decay"], len(g["params"])) for g in grouped.optimizer.param_groups]
    assert got == [(0.5, 0.1, 1), (0.5, 0.0, 1), (1e-2, 0.1, 1), (1e-2, 0.0, 1)]
    plain = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), None)  # no decay at all: one group, as before
    assert len(plain.optimizer.param_groups) == 1


def test_gradient_accumulation_equals_the_big_batch():
    sgd = dict(optimizer="sgd", momentum=0.0, lr=0.1, epochs=2)
    big = Trainer(_mlp(), classify_loss, NoisyBlobs(), _cfg(batch_size=16, **sgd), None)
    acc = Trainer(_mlp(), classify_loss, NoisyBlobs(), _cfg(batch_size=8, accum_steps=2, **sgd), None)
    assert (big.total_steps, acc.total_steps, acc.batches_per_epoch, acc.steps_per_epoch) == (8, 8, 8, 4)
    want, got = _weights(big.fit()), _weights(acc.fit())
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert not torch.equal(want["1.weight"], _weights(_mlp())["1.weight"])


def test_accumulation_resumes_exactly_with_a_short_last_step(tmp_path, make_net):
    cfg = _cfg(accum_steps=3, ckpt_every=1, epochs=2, log_every=2)  # 8 batches an epoch: steps of 3, 3, 2
    reference = Trainer(make_net(), classify_loss, NoisyBlobs(), cfg, tmp_path / "a")
    assert reference.steps_per_epoch == 3 and reference.total_steps == 6
    want = _weights(reference.fit())
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 13:  # second micro-batch of step 5 (epoch 1)
            raise Crash("simulated")
        return classify_loss(model, batch)

    with pytest.raises(Crash):
        Trainer(make_net(), crashing, NoisyBlobs(), cfg, tmp_path / "b").fit()
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"] == {"step": 4, "epoch": 1, "batch_in_epoch": 3}
    got = _weights(Trainer(make_net(seed=5), classify_loss, NoisyBlobs(), cfg, tmp_path / "b").fit())
    assert _same(want, got)
    assert [r["step"] for r in _rows(tmp_path / "b")] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in _rows(tmp_path / "b")] == [r["loss"] for r in _rows(tmp_path / "a")]


# ---------------------------------------------------------------------------------------------- streams


class _StreamPart(IterableDataset):
    def __init__(self, stream, seed, epoch, start, batch_size, rank, world):
        self.stream, self.seed, self.epoch, self.start = stream, seed, epoch, start
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        order = torch.randperm(len(self.stream.blobs), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        n = self.stream.batches_per_epoch(self.batch_size, self.world, nw, True)
        if self.stream.short:
            n -= 1
        for b in range(self.start, n):
            if b % nw != wid:
                continue
            idx = order[b * self.batch_size * self.world:][self.rank * self.batch_size:][: self.batch_size]
            items = [self.stream.blobs[int(i)] for i in idx]
            yield torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


class FakeStream:
    """What facevox.datasets.stream.BatchStream offers the trainer: two methods."""

    def __init__(self, short: bool = False, empty: bool = False) -> None:
        self.blobs = [NoisyBlobs()[i] for i in range(0 if empty else 64)]
        self.calls: list[dict] = []
        self.short = short

    def batches_per_epoch(self, batch_size, world, num_workers, drop_last):
        return len(self.blobs) // (batch_size * world)

    def iterable(self, *, seed, epoch, start, batch_size, rank, world, num_workers, drop_last):
        self.calls.append(dict(epoch=epoch, start=start, batch_size=batch_size, num_workers=num_workers))
        return _StreamPart(self, seed, epoch, start, batch_size, rank, world)


def test_stream_trains_and_resumes_exactly(tmp_path, make_net, capsys):
    cfg = _cfg(epochs=2)
    stream = FakeStream()
    reference = Trainer(make_net(), classify_loss, stream, cfg, tmp_path / "a")
    assert reference.stream and reference.total_steps == 16
    want = _weights(reference.fit())
    assert [c["epoch"] for c in stream.calls] == [0, 1] and stream.calls[0]["batch_size"] == 8
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 11:
            raise Crash("simulated")
        return classify_loss(model, batch)

    with pytest.raises(Crash):
        Trainer(make_net(), crashing, FakeStream(), cfg, tmp_path / "b").fit()
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["data"] == {"stream": True, "num_workers": 0, "world": 1}
    resumed_stream = FakeStream()
    got = _weights(Trainer(make_net(seed=4), classify_loss, resumed_stream, cfg, tmp_path / "b").fit())
    assert resumed_stream.calls[0]["epoch"] == 1 and resumed_stream.calls[0]["start"] == 1  # step 9 = epoch 1, batch 1
    assert _same(want, got)
    assert "data order differs" not in capsys.readouterr().err


def test_stream_resumed_with_other_workers_warns(tmp_path, make_net, capsys):
    Trainer(make_net(), classify_loss, FakeStream(), _cfg(max_steps=3), tmp_path).fit()
    stream = FakeStream()
    Trainer(make_net(), classify_loss, stream, _cfg(max_steps=6, num_workers=1), tmp_path).fit()
    assert "data order differs" in capsys.readouterr().err
    assert stream.calls[0]["start"] == 3 and stream.calls[0]["num_workers"] == 1
    assert [r["step"] for r in _rows(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_stream_refuses_sample_weights_and_handles_short_epochs(make_net, capsys):
    with pytest.raises(FacevoxError, match="fewer than one batch"):
        Trainer(make_net(), classify_loss, FakeStream(empty=True), _cfg(), None)
    with pytest.raises(FacevoxError, match="balanced sampling") as err:
        Trainer(make_net(), classify_loss, FakeStream(), _cfg(), None, sample_weights=[1.0] * 64)
    assert "\n" not in str(err.value)
    short = Trainer(make_net(), classify_loss, FakeStream(short=True), _cfg(epochs=2, progress=True), None)
    short.fit()
    # 7 batches an epoch, not the 8 announced: the 16 steps run into a third epoch
    assert vars(short.state) == {"step": 16, "epoch": 2, "batch_in_epoch": 2}
    assert "epoch 0 ended after 7 of the 8 batches" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_bf16_step_on_cuda():
    torch.manual_seed(0)
    trainer = Trainer(TinyConvNet(), classify_loss, NoisyBlobs(), _cfg(max_steps=2, precision="bf16", device="cuda",
                                                                      num_workers=1), None)
    assert trainer.amp_dtype == torch.bfloat16 and trainer.pin_memory and trainer.device.type == "cuda"
    model = trainer.fit()
    assert next(model.parameters()).is_cuda and all(torch.isfinite(p).all() for p in model.parameters())
    assert trainer.state.step == 2


@pytest.mark.slow
def test_accumulation_under_ddp_reduces_once_per_step(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(here.parent / "src"), str(here)]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(here / "ddp_accum_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:  # the local rendezvous can time out on a loaded machine: one more try
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert _same(w0, w1)
    for rank in (0, 1):  # one bucket, 4 optimiser steps of 2 micro-batches: 4 all-reduces, not 8
        assert json.loads((tmp_path / f"rank{rank}.json").read_text())["allreduce_calls"] == 4

    sys.path.insert(0, str(here))
    from ddp_accum_worker import config
    from ddp_worker import TinyMLP

    torch.manual_seed(0)  # rank 0's init; one process, the whole effective batch of 16 at once
    single = Trainer(TinyMLP(), classify_loss, NoisyBlobs(), config(16, 1), None).fit().state_dict()
    for k in w0:
        torch.testing.assert_close(w0[k], single[k], rtol=1e-4, atol=1e-5)
