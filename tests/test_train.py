"""The training loop: exact resumption, logs, precision, errors."""

from __future__ import annotations

import json
import time

import pytest
import torch

from conftest import NoisyBlobs, TinyConvNet, classify_loss
from facevox.config import TrainConfig
from facevox.errors import FacevoxError
from facevox.train import Trainer


def _cfg(**kw) -> TrainConfig:
    base = dict(
        epochs=2,
        batch_size=8,
        lr=1e-2,
        precision="fp32",
        ckpt_every=3,
        progress=False,
        seed=3,
        scheduler="cosine",
        warmup_steps=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Crash(RuntimeError):
    pass


def _crashing(at_call: int):
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise Crash("simulated crash")
        return classify_loss(model, batch)

    return loss


def test_resume_after_crash_gives_identical_weights(tmp_path, make_net):
    reference = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), tmp_path / "a").fit()
    want = _weights(reference)

    run = tmp_path / "b"
    with pytest.raises(Crash):
        Trainer(make_net(), _crashing(at_call=11), NoisyBlobs(), _cfg(), run).fit()  # crash in epoch 2
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["state"] == {"step": 9, "epoch": 1, "batch_in_epoch": 1}  # last save: step 9

    # a fresh process would build the model from scratch (other init) and then resume
    resumed = Trainer(make_net(seed=99), classify_loss, NoisyBlobs(), _cfg(), run).fit()
    got = _weights(resumed)
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 17))  # no step logged twice
    ref_rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref_rows], abs=0)
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("step,epoch,lr,loss,acc")
    assert (run / "train_curves.png").stat().st_size > 1000


def test_stop_request_saves_and_resumes(tmp_path, make_net):
    want = _weights(Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=10), None).fit())
    trainer = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=10), tmp_path)

    def stop_at_5(step: int) -> None:
        if step == 5:
            trainer._stop_requested = True  # what Ctrl-C does

    trainer.step_hooks.append(stop_at_5)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["state"]["step"] == 6
    got = _weights(Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=10), tmp_path).fit())
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_train_seconds_add_up_over_resumes(tmp_path, make_net):
    def slow(model, batch):
        time.sleep(0.02)
        return classify_loss(model, batch)

    first = Trainer(make_net(), slow, NoisyBlobs(), _cfg(max_steps=10), tmp_path)
    first.step_hooks.append(lambda step: setattr(first, "_stop_requested", step == 5))
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["seconds"]
    assert 5 * 0.02 <= saved <= first.seconds
    second = Trainer(make_net(), slow, NoisyBlobs(), _cfg(max_steps=10), tmp_path)
    t0 = time.perf_counter()
    second.fit()
    wall = time.perf_counter() - t0
    assert saved + 3 * 0.02 <= second.seconds <= saved + wall  # the first run's time, plus this one's fit


def test_learns_and_calls_epoch_end(tmp_path, make_net):
    seen = []

    def epoch_end(trainer, epoch):
        seen.append(epoch)
        return {"val_metric": float(epoch)}

    cfg = _cfg(epochs=4, lr=3e-3, scheduler="constant", warmup_steps=0)
    trainer = Trainer(make_net(), classify_loss, NoisyBlobs(), cfg, tmp_path, epoch_end=epoch_end)
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["loss"] for r in rows[-4:]) < sum(r["loss"] for r in rows[:4])
    assert seen == [0, 1, 2, 3]
    assert len((tmp_path / "epochs.jsonl").read_text().splitlines()) == 4


def test_step_hooks_see_every_step(make_net):
    steps = []
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=5), None, step_hooks=[steps.append]).fit()
    assert steps == [0, 1, 2, 3, 4]


def test_bf16_and_channels_last(make_net):
    trainer = Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=3, precision="bf16"), None)
    assert trainer.amp_dtype == torch.bfloat16 and trainer.channels_last
    model = trainer.fit()
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_weighted_sampling_runs(make_net):
    weights = [5.0 if i % 2 else 1.0 for i in range(64)]
    Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(max_steps=4), None, sample_weights=weights).fit()


def test_empty_and_too_small_datasets_are_user_errors(make_net):
    with pytest.raises(FacevoxError, match="empty"):
        Trainer(make_net(), classify_loss, NoisyBlobs(n=0), _cfg(), None)
    with pytest.raises(FacevoxError, match="fewer than one batch"):
        Trainer(make_net(), classify_loss, NoisyBlobs(n=4), _cfg(), None)


def test_corrupt_checkpoint_is_named(tmp_path, make_net):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FacevoxError, match="last.pt"):
        Trainer(make_net(), classify_loss, NoisyBlobs(), _cfg(), tmp_path).fit()


def test_nan_loss_stops(make_net):
    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan")

    with pytest.raises(FloatingPointError):
        Trainer(TinyConvNet(), nan_loss, NoisyBlobs(), _cfg(max_steps=2), None).fit()
