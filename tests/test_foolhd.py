"""FoolHD: DCT framing, the autoencoder, its loss, training against a tiny victim, save/load."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import facevox
from facevox.attacks import create_attack
from facevox.attacks.foolhd import (
    MFCC,
    DCTFrames,
    FoolHD,
    dct_matrix,
    foolhd_loss,
    load_foolhd,
    save_foolhd,
    train_foolhd,
)
from facevox.errors import FacevoxError

K = 4  # speakers
CHANNELS = (8, 16)


class TinyVictim:
    """A tiny random x-vector; logits: 10 x cosine of centred embeddings to class-mean templates."""

    modality = "audio"

    def __init__(self, waves: torch.Tensor, labels: torch.Tensor) -> None:
        torch.manual_seed(0)
        self.model = facevox.create_model("speaker_embedder", backbone="xvector",
                                          backbone_kwargs={"channels": 8, "embed_dim": 4}).eval()
        with torch.no_grad():
            e = self.model(waves)
            self.mu = e.mean(0)
            e = F.normalize(e - self.mu, dim=1)
        self.templates = F.normalize(torch.stack([e[labels == c].mean(0) for c in range(K)]), dim=1)
        self.num_classes = K

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * F.normalize(self.model(x) - self.mu, dim=1) @ self.templates.T


def _voices(per: int = 8, length: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic tones, one pitch per speaker (jittered), with a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length) / 16000
    waves, labels = [], []
    for c in range(K):
        for _ in range(per):
            f0 = 120 * 1.5 ** c * (1 + 0.03 * torch.randn(1, generator=g))
            w = sum(torch.sin(2 * math.pi * f0 * h * t + 6 * torch.rand(1, generator=g)) / h for h in range(1, 6))
            waves.append(0.2 * w + 0.01 * torch.randn(length, generator=g))
            labels.append(c)
    return torch.stack(waves), torch.tensor(labels)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    waves, labels = _voices()
    victim = TinyVictim(waves, labels)
    with torch.no_grad():
        pred = victim.logits(waves).argmax(1)  # attack the victim's own decisions: clean success is 0
    return victim, waves, pred


@pytest.fixture(scope="module")
def untargeted(setup):
    victim, waves, labels = setup
    return train_foolhd(victim, waves, labels, steps=60, lr=1e-2, batch_size=8, channels=CHANNELS, progress=False)


def test_dct_is_orthonormal_and_framing_round_trips():
    d = dct_matrix(64)
    assert torch.allclose(d @ d.T, torch.eye(64), atol=1e-5)
    frames = DCTFrames(256)
    for length in (1, 100, 128, 129, 4000, 8001):
        x = torch.rand(3, length) * 2 - 1
        coeffs = frames.encode(x)
        assert coeffs.shape == (3, frames.num_frames(length), 256)
        assert (frames.decode(coeffs, length) - x).abs().max() < 1e-5


@pytest.mark.parametrize("num_classes", [0, K])
def test_fresh_autoencoder_is_identity(num_classes):
    torch.manual_seed(0)
    model = FoolHD(256, CHANNELS, num_classes=num_classes).eval()
    x = torch.rand(2, 3001) * 2 - 1
    target = torch.tensor([1, 2]) if num_classes else None
    assert (model(x, target) - x).abs().max() < 1e-5
    with torch.no_grad():  # a non-zero last layer does perturb
        model.out.bias.fill_(0.1)
    assert (model(x, target) - x).abs().max() > 1e-3


def test_loss_is_finite_and_decreases(setup):
    victim, waves, labels = setup
    mfcc = MFCC()
    model = FoolHD(256, CHANNELS)
    with torch.no_grad():
        before, _ = foolhd_loss(model, victim, mfcc, waves, labels)
    model = train_foolhd(victim, waves, labels, model=model, steps=10, lr=1e-2, batch_size=8, progress=False)
    with torch.no_grad():
        after, parts = foolhd_loss(model, victim, mfcc, waves, labels)
    assert torch.isfinite(before) and torch.isfinite(after)
    assert all(math.isfinite(h["loss"]) for h in model.history)
    assert float(after) < float(before) - 0.5  # measured: 4.22 -> 1.40
    assert 0 <= parts["mfcc"] < 0.1


def test_untargeted_training_fools_the_victim(setup, untargeted):
    victim, waves, labels = setup
    params = list(victim.model.parameters())
    assert all(p.requires_grad for p in params)  # frozen only while training
    result = create_attack("foolhd", model=untargeted).run(victim, waves, labels)
    assert not (result.clean_pred != labels).any()
    # measured 0.75 after 60 steps (SNR about 15 dB); the bar leaves room
    assert result.success.float().mean() >= 0.5
    assert result.x_adv.shape == waves.shape and result.x_adv.abs().max() <= 1.0


def test_targeted_training_pushes_toward_the_target(setup):
    victim, waves, labels = setup
    model = train_foolhd(victim, waves, labels, targeted=True, steps=60, lr=1e-2, batch_size=8,
                         channels=CHANNELS, progress=False)
    target = (labels + 1) % K
    attack = create_attack("foolhd", model=model)
    adv = attack.perturb(victim, waves, labels, target)
    with torch.no_grad():
        p_clean = F.softmax(victim.logits(waves), 1).gather(1, target[:, None]).mean()
        p_adv = F.softmax(victim.logits(adv), 1).gather(1, target[:, None]).mean()
    assert p_adv > 3 * p_clean  # measured 0.02 -> 0.22
    with pytest.raises(FacevoxError, match="targeted: give target"):
        attack.perturb(victim, waves, labels)


def test_save_load_gives_the_same_output(setup, untargeted, tmp_path):
    victim, waves, labels = setup
    path = save_foolhd(untargeted, tmp_path / "sub" / "foolhd.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["foolhd.safetensors"]  # no temporary left
    loaded = load_foolhd(path)
    with torch.no_grad():
        assert torch.equal(loaded(waves), untargeted(waves))
    by_path = create_attack("foolhd", model=str(path))
    assert torch.equal(by_path.perturb(victim, waves, labels), untargeted(waves).detach())
    with pytest.raises(FacevoxError, match="untargeted: give no target"):
        by_path.perturb(victim, waves, labels, labels)


def _one_line(err: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(err.value) and str(err.value).startswith(("foolhd", "/"))


@pytest.mark.parametrize("settings, match", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"steps": -3}, "steps must be a positive integer"),
    ({"mfcc_weight": -1.0}, "mfcc_weight must be >= 0"),
    ({"adv_weight": float("nan")}, "adv_weight must be >= 0"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"segment": 10**6}, "segment must be in"),
])
def test_bad_settings_are_one_line_errors(setup, settings, match):
    victim, waves, labels = setup
    with pytest.raises(FacevoxError, match=match) as err:
        train_foolhd(victim, waves, labels, progress=False, **{"steps": 1, **settings})
    _one_line(err)


def test_bad_inputs_and_files_are_one_line_errors(setup, tmp_path):
    victim, waves, labels = setup
    with pytest.raises(FacevoxError, match="labels must have shape") as err:
        train_foolhd(victim, waves, labels[:3], steps=1, progress=False)
    _one_line(err)
    with pytest.raises(FacevoxError, match="labels must lie in"):
        train_foolhd(victim, waves, labels + K, steps=1, progress=False)
    with pytest.raises(FacevoxError, match="no such FoolHD model file"):
        create_attack("foolhd", model=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(FacevoxError, match="not a safetensors file") as err:
        load_foolhd(junk)
    _one_line(err)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(FacevoxError, match="not a FoolHD model"):
        load_foolhd(other)
