"""Training-time defences: the neighbourhood dataset, PGD training, their settings, tiny training runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facevox.config import load_config
from facevox.data import SeededDataset
from facevox.defences import Defence, NeighbourhoodDataset, audio_ball, image_ball, pgd
from facevox.errors import FacevoxError
from facevox.tasks.fakeface.config import FakefaceConfig
from facevox.tasks.speaker.config import SpeakerConfig

N, K, EPS, SNR = 5, 3, 0.05, 20.0


class Fixed(SeededDataset):
    """N fixed inputs (images in [0, 1] including 0 and 1 pixels, or waveforms in [-1, 1]), label = index."""

    def __init__(self, shape: tuple[int, ...], audio: bool) -> None:
        rng = np.random.default_rng(1)
        data = rng.uniform(-1, 1, (N, *shape)) * 0.5 if audio else rng.integers(0, 256, (N, *shape)) / 255.0
        self.data = torch.from_numpy(data.astype(np.float32))

    def __len__(self) -> int:
        return N

    def get(self, index, rng):
        return self.data[index].clone(), index


def _items(ds, seed: int = 0) -> list:
    return [ds[(i, seed + i)] for i in range(len(ds))]


@pytest.mark.parametrize("draw", ["uniform", "gaussian"])
@pytest.mark.parametrize("audio", [False, True])
def test_neighbourhood_items_labels_and_budget(audio, draw):
    base = Fixed((2, 4000) if audio else (3, 8, 8), audio)
    ds = NeighbourhoodDataset(base, K, audio_ball(SNR) if audio else image_ball(EPS), draw, seed=7)
    items = _items(ds)
    assert len(ds) == (K + 1) * N
    for i, (x, y) in enumerate(items):
        j, k = i % N, i // N
        x0 = base.data[j]
        assert y == j  # label kept
        delta = x - x0
        if k == 0:
            assert torch.equal(x, x0)  # the clean items come first
            continue
        assert delta.abs().max() > 0
        if audio:  # energy at least SNR dB below each crop's
            ratio = delta.pow(2).sum(-1) / x0.pow(2).sum(-1)
            assert torch.all(ratio <= 10 ** (-SNR / 10) * (1 + 1e-5)), ratio
            assert x.abs().max() <= 1.0
        else:
            assert delta.abs().max() <= EPS + 1e-6 and x.min() >= 0.0 and x.max() <= 1.0
    # copies of one item differ; the same index gives the same item whatever its sample seed (epoch)
    assert not torch.equal(items[N][0], items[2 * N][0])
    again = _items(ds, seed=1000)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(items, again, strict=True))


def test_neighbourhood_is_the_same_in_worker_processes():
    ds = NeighbourhoodDataset(Fixed((3, 8, 8), False), K, image_ball(EPS), seed=3)
    keys = [(i, 99) for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=None, sampler=keys, num_workers=2)
    in_workers = [x for x, _ in loader]
    here = [ds[key][0] for key in keys]
    assert all(torch.equal(a, b) for a, b in zip(here, in_workers, strict=True))
    other_seed = NeighbourhoodDataset(Fixed((3, 8, 8), False), K, image_ball(EPS), seed=4)
    assert not torch.equal(other_seed[(N, 0)][0], ds[(N, 0)][0])  # the run seed picks the perturbations


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    x, y = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1])

    def loss(m, batch):
        return {"loss": torch.nn.functional.cross_entropy(m(batch[0]), batch[1])}

    xa = pgd(model, loss, x, y, image_ball(EPS), steps=5, fraction=0.25)
    assert (xa - x).abs().max() <= EPS + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert loss(model, (xa, y))["loss"] > loss(model, (x, y))["loss"]
    assert model.training and all(p.grad is None for p in model.parameters())  # no parameter gradients
    wave = torch.rand(4, 1000) - 0.5
    wa = pgd(torch.nn.Identity(), lambda m, b: {"loss": b[0].sum()}, wave, None, audio_ball(SNR), 3, 0.5)
    ratio = (wa - wave).pow(2).sum(-1) / wave.pow(2).sum(-1)
    assert torch.all(ratio <= 10 ** (-SNR / 10) * (1 + 1e-5))


@pytest.mark.parametrize(
    ("cls", "override", "key"),
    [(SpeakerConfig, "defence.copies=0", "defence.copies"), (FakefaceConfig, "defence.copies=0", "defence.copies"),
     (FakefaceConfig, "defence.eps=0", "defence.eps"), (FakefaceConfig, "defence.eps=-0.1", "defence.eps"),
     (SpeakerConfig, "defence.kind=mixup", "defence.kind"), (FakefaceConfig, "defence.kind=fgsm", "defence.kind"),
     (SpeakerConfig, "defence.mix=0", "defence.mix"), (SpeakerConfig, "defence.pgd_steps=0", "defence.pgd_steps")],
)
def test_bad_settings_are_one_line_errors(cls, override, key):
    with pytest.raises(FacevoxError) as err:
        load_config(cls, None, [override])
    assert err.value.where == key and "\n" not in str(err.value)


def test_python_built_settings_are_checked_too():
    cfg = FakefaceConfig()
    cfg.defence.eps = 0.0
    with pytest.raises(FacevoxError, match="defence.eps"):
        Defence(cfg.defence)
    cfg = SpeakerConfig()
    cfg.defence.kind, cfg.defence.copies = "neighbourhood", 0
    with pytest.raises(FacevoxError, match="defence.copies"):
        Defence(cfg.defence)


# ------------------------------------------------------------------------------------------ tiny training runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from facevox.audio.synth import make_corpus

    root = tmp_path_factory.mktemp("speaker") / "corpus"
    return make_corpus(root, n_speakers=4, utterances=2, seconds=(1.0, 1.2), seed=3, progress=False)


SPEAKER_TINY = ["train.max_steps=2", "train.epochs=1", "train.batch_size=4", "train.precision=fp32",
                "train.progress=false", "data.crop_seconds=0.5", "model.backbone=xvector",
                "model.backbone_kwargs={channels: 16}"]
DEFENCES = [["defence.kind=neighbourhood", "defence.copies=2"],
            ["defence.kind=pgd", "defence.pgd_steps=2", "defence.mix=0.5"]]


@pytest.mark.parametrize("defence", DEFENCES, ids=["neighbourhood", "pgd"])
def test_speaker_trains_with_each_defence(defence, corpus, tmp_path, capsys):
    from facevox.tasks.speaker.train import train_speaker

    cfg = load_config(SpeakerConfig, None, [*SPEAKER_TINY, f"data.train={corpus}", *defence])
    train_speaker(cfg, tmp_path / "run", resume=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    extra = json.loads((tmp_path / "run" / "model" / "extra.json").read_text())
    assert extra["defence"]["kind"] == cfg.defence.kind and extra["defence"]["snr_db"] == 30.0
    assert f"defence {cfg.defence.kind}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from test_fakeface import make_images

    root = tmp_path_factory.mktemp("fakeface") / "data"
    make_images(root, n=6, size=48)
    return root


FAKEFACE_TINY = ["model.name=resnet18", "data.load_size=40", "data.crop_size=32", "train.max_steps=2",
                 "train.batch_size=4", "train.precision=fp32", "train.progress=false"]


@pytest.mark.parametrize("defence", DEFENCES, ids=["neighbourhood", "pgd"])
def test_fakeface_trains_with_each_defence(defence, images, tmp_path, capsys):
    from facevox.tasks.fakeface.train import train_fakeface

    cfg = load_config(FakefaceConfig, None, [*FAKEFACE_TINY, f"data.source={images}", "data.balance=sampler",
                                             *defence])
    train_fakeface(cfg, tmp_path / "run", resume=False, evaluate_test=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)
    extra = json.loads((tmp_path / "run" / "model" / "extra.json").read_text())
    assert extra["defence"]["kind"] == cfg.defence.kind and extra["defence"]["eps"] == pytest.approx(8 / 255)
    assert f"defence {cfg.defence.kind}" in capsys.readouterr().out


def test_spectral_baseline_refuses_a_defence(tmp_path):
    from facevox.tasks.fakeface.train import train_fakeface

    cfg = load_config(FakefaceConfig, None, ["model.name=spectral_logreg", "defence.kind=pgd",
                                             f"data.source={tmp_path}"])
    with pytest.raises(FacevoxError, match="defence.kind"):
        train_fakeface(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
