"""Speaker-verification backbones: shapes, determinism, batch independence, training, autocast, Resemblyzer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.nets.voice_encoder import (
    RESEMBLYZER_MEL,
    load_resemblyzer_weights,
    resemblyzer_mel,
    resemblyzer_weights_path,
)
from facevox.registry import create_model

# small enough that every test here runs in well under a second per model on two CPU cores
TINY = {
    "xvector": {"channels": 32, "embed_dim": 16},
    "resnet34_thin": {"base_width": 8, "embed_dim": 16},
    "resnet18_thin": {"base_width": 8, "embed_dim": 16},
    "ecapa_tdnn": {"channels": 32, "mfa_channels": 64, "embed_dim": 16},
    "siamese_cnn": {"width": 0.125, "embed_dim": 16},
    "voice_encoder": {"hidden_size": 32, "num_layers": 2, "embed_dim": 16},
    "pair_alexnet": {"width": 0.125},
}
EMBEDDERS = [name for name in TINY if name != "pair_alexnet"]  # (B, F, T) -> (B, embed_dim)

# Parameters at the default sizes (the papers' own counts where they give one):
#   xvector        4,354,964  (512 channels, 1500 pooled, 512-d embedding)
#   resnet34_thin  6,634,336  (base width 32; WeSpeaker's ResNet34 has 6.63 M)
#   resnet18_thin  4,105,440
#   ecapa_tdnn     6,191,360  (C = 512; the paper's 6.2 M; C = 1024 gives 14,657,728, the paper's 14.7 M)
#   pair_alexnet  14,257,857  (width 0.5, batch norm; 14,257,281 without)
#   siamese_cnn   10,317,856  (width 0.5, 128-d embedding, batch norm)
#   voice_encoder  1,423,616  (Resemblyzer's)
DEFAULT_PARAMS = {
    "xvector": 4_354_964,
    "resnet34_thin": 6_634_336,
    "resnet18_thin": 4_105_440,
    "ecapa_tdnn": 6_191_360,
    "pair_alexnet": 14_257_857,
    "siamese_cnn": 10_317_856,
    "voice_encoder": 1_423_616,
}


def _build(name: str, **extra: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{**TINY[name], **extra})


def _inputs(model: nn.Module, batch: int, frames: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = list(model.example_input_shape)
    if frames is not None:
        shape[-1] = frames
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", EMBEDDERS)
@pytest.mark.parametrize("frames", [20, 37, 100, 203])
def test_embedders_take_any_length(name, frames):
    model = _build(name).eval()
    with torch.no_grad():
        out = model(_inputs(model, 2, frames))
    assert out.shape == (2, model.embed_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(2, 80, 20), (2, 80, 100), (2, 257, 157)])
def test_pair_alexnet_gives_one_logit_per_pair(shape):
    model = _build("pair_alexnet").eval()
    assert model.example_input_shape == (2, 80, 100)
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3,) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", TINY)
def test_eval_mode_is_deterministic(name):
    model = _build(name).eval()
    x = _inputs(model, 3)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", TINY)
def test_items_do_not_depend_on_their_batch_in_eval_mode(name):
    model = _build(name).eval()
    x = _inputs(model, 4)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def test_default_parameter_counts():
    counts = {name: sum(p.numel() for p in create_model(name).parameters()) for name in DEFAULT_PARAMS}
    assert counts == DEFAULT_PARAMS


@pytest.mark.parametrize("name", TINY)
def test_trains_without_nans_and_the_loss_goes_down(name):
    # the pair net without dropout, so that five steps on one batch are a clean memorisation test
    model = _build(name, dropout=0.0) if name == "pair_alexnet" else _build(name)
    x = _inputs(model, 8, frames=60, seed=1)
    if name == "pair_alexnet":  # one same/different logit: binary cross-entropy on random pair labels
        head: nn.Module = nn.Identity()
        labels = torch.tensor([0.0, 1.0] * 4)
        loss_fn = nn.functional.binary_cross_entropy_with_logits
    else:  # a linear head on the embeddings over four random classes
        head = nn.Linear(model.embed_dim, 4)
        labels = torch.tensor([0, 1, 2, 3] * 2)
        loss_fn = nn.functional.cross_entropy
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-3)
    model.train()
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = loss_fn(head(model(x)), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", TINY)
def test_runs_under_bf16_autocast(name):
    model = _build(name)
    x = _inputs(model, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().sum().backward()
    assert out.shape[0] == 3 and torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_too_short_or_misshaped_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="more than 14 frames"):
        _build("xvector")(torch.randn(2, 80, 14))
    with pytest.raises(ValueError, match="multiple of the Res2 scale"):
        create_model("ecapa_tdnn", channels=36)
    with pytest.raises(ValueError, match=r"\(B, 2, F, T\)"):
        _build("pair_alexnet")(torch.randn(2, 80, 100))
    with pytest.raises(ValueError, match=r"\(B, 40, T\)"):
        create_model("voice_encoder")(torch.randn(2, 80, 100))


# --------------------------------------------------------------------------------------------
# voice_encoder <-> Resemblyzer


def test_voice_encoder_state_dict_has_resemblyzer_names():
    keys = set(create_model("voice_encoder").state_dict())
    expected = {
        f"lstm.{kind}_l{layer}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for layer in range(3)
    }
    assert keys == expected | {"linear.weight", "linear.bias", "similarity_weight", "similarity_bias"}


def test_load_resemblyzer_weights_checks_the_file(tmp_path, monkeypatch):
    source = _build("voice_encoder")
    good = tmp_path / "pretrained.pt"
    torch.save({"step": 1, "model_state": source.state_dict()}, good)
    target = create_model("voice_encoder", **TINY["voice_encoder"])
    load_resemblyzer_weights(target, good)
    x = _inputs(target, 2)
    torch.testing.assert_close(target.eval()(x), source.eval()(x))

    with pytest.raises(FacevoxError, match="weights file not found"):
        load_resemblyzer_weights(target, tmp_path / "missing.pt")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(FacevoxError, match="no 'model_state' entry"):
        load_resemblyzer_weights(target, tmp_path / "other.pt")
    wider = create_model("voice_encoder", hidden_size=48, num_layers=2, embed_dim=16)
    with pytest.raises(
        FacevoxError, match=r"do not fit .*: lstm.weight_ih_l0 is \(128, 40\) in the file but \(192, 40\)"
    ):
        load_resemblyzer_weights(wider, good)
    with pytest.raises(FacevoxError, match="do not fit this voice_encoder: the file lacks lstm.bias_hh_l2 and 3 more"):
        load_resemblyzer_weights(create_model("voice_encoder", num_layers=3), good)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FacevoxError, match="cannot read Resemblyzer weights"):
        load_resemblyzer_weights(target, tmp_path / "junk.pt")

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FacevoxError, match="resemblyzer package is not installed"):
        resemblyzer_weights_path()


@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")
def test_voice_encoder_matches_resemblyzer():
    resemblyzer = pytest.importorskip("resemblyzer")
    ours = create_model("voice_encoder", pretrained=True).eval()
    theirs = resemblyzer.VoiceEncoder("cpu", verbose=False).eval()

    # a 2 s harmonic tone in noise, through Resemblyzer's own mel front end, as three 160-frame partials
    rate = RESEMBLYZER_MEL["sample_rate"]
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(0)
    wav = sum(0.1 / k * np.sin(2 * np.pi * 140 * k * t) for k in range(1, 6)) + 0.01 * rng.standard_normal(t.size)
    mel = resemblyzer.audio.wav_to_mel_spectrogram(wav.astype(np.float32))  # (frames, 40)
    mels = torch.from_numpy(np.stack([mel[start : start + 160] for start in (0, 20, 40)]))  # (3, 160, 40)

    torch.testing.assert_close(resemblyzer_mel(torch.from_numpy(wav.astype(np.float32)))[0], torch.from_numpy(mel.T))
    with torch.no_grad():
        expected = theirs(mels)
        got = ours(mels.transpose(1, 2))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
