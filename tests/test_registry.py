"""Registries: duplicates, unknown names, argument checks, and a loop over everything registered."""

from __future__ import annotations

import inspect

import pytest
import torch

from facevox.errors import FacevoxError
from facevox.explain import class_score, create_explainer
from facevox.registry import EXPLAINERS, LOSSES, MODELS, Registry, create_loss, create_model, list_models


def test_duplicate_name_is_an_error():
    reg = Registry("thing")

    @reg.register("a")
    def a():
        return 1

    with pytest.raises(ValueError, match="registered twice"):

        @reg.register("a")
        def b():
            return 2


def test_unknown_name_lists_valid_ones():
    with pytest.raises(FacevoxError, match=r"unknown model 'nope'; valid models: .*mlp"):
        create_model("nope")


def test_unknown_and_missing_arguments():
    with pytest.raises(FacevoxError, match=r"takes no argument 'widht'; valid: in_dim, out_dim"):
        create_model("mlp", in_dim=4, widht=3)
    with pytest.raises(FacevoxError, match="needs argument 'in_dim'"):
        create_model("mlp")


def test_pattern_and_spec():
    assert list_models("ml*") == ["mlp"]
    model = create_model("mlp", in_dim=4, out_dim=3)
    assert model.facevox_spec == {"name": "mlp", "kwargs": {"in_dim": 4, "out_dim": 3}}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_trains_a_step(name):
    torch.manual_seed(0)
    emb = torch.randn(16, 8, requires_grad=True)
    labels = torch.randint(0, 5, (16,))
    if getattr(LOSSES.get(name), "pair_loss", False):
        # pair losses take no embed_dim/num_classes; they score pairs (first half vs second half)
        loss_fn = create_loss(name)
        a, b, same = emb[:8], emb[8:], torch.tensor([1, 0] * 4)
        if len(inspect.signature(loss_fn.forward).parameters) == 3:
            loss = loss_fn(a, b, same)
        else:
            loss = loss_fn(4.0 * torch.nn.functional.cosine_similarity(a, b), same)
    else:
        loss_fn = create_loss(name, embed_dim=8, num_classes=5)
        loss = loss_fn(emb, labels)
        assert loss_fn.logits(emb).shape == (16, 5)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, **_tiny_args(name))
    # models with non-vector inputs say what one sample looks like; vector models (mlp) have in_dim
    shape = getattr(model, "example_input_shape", None) or (model.in_dim,)
    x = torch.randn(3, *shape)
    out = _flat_outputs(model(x))  # a GAN discriminator returns (feature maps, score) per scale
    out.float().sum().backward()
    assert out.shape[0] == 3 and torch.isfinite(out).all()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_explainer_runs(name):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    with create_explainer(name, model=model) as explainer:
        maps = explainer.attribute(torch.randn(2, 3, 16, 16), class_score(1))
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()


def _flat_outputs(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    tensors = []
    stack = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            tensors.append(item.reshape(item.shape[0], -1))
        else:
            stack.extend(item)
    return torch.cat(tensors, dim=1)


def _tiny_args(name: str) -> dict:
    return {
        "mlp": {"in_dim": 6, "out_dim": 4},
        "xvector": {"channels": 32, "embed_dim": 16},
        "resnet34_thin": {"base_width": 8, "embed_dim": 16},
        "resnet18_thin": {"base_width": 8, "embed_dim": 16},
        "ecapa_tdnn": {"channels": 32, "mfa_channels": 64, "embed_dim": 16},
        "pair_alexnet": {"width": 0.125},
        "siamese_cnn": {"width": 0.125, "embed_dim": 16},
        "voice_encoder": {"hidden_size": 32, "num_layers": 2, "embed_dim": 16},
        "resnet18": {"width": 8},
        "resnet50": {"width": 8},
        "spectral_logreg": {"size": 32},
        "dcgan_generator": {"nz": 16, "ngf": 8},
        "melgan_generator": {"n_mels": 8, "channels": 16, "upsample_ratios": (4, 2), "dilations": (1, 3)},
        "melgan_discriminator": {"n_scales": 2, "channels": 4, "max_channels": 16, "n_layers": 2},
        "sphere20": {"width": 4, "embed_dim": 16, "input_size": (32, 32)},
        "iresnet18": {"width": 4, "embed_dim": 16, "input_size": (32, 32)},
        "iresnet50": {"width": 4, "embed_dim": 16, "input_size": (32, 32)},
        "mobilefacenet": {"width": 4, "embed_dim": 16, "input_size": (32, 32)},
        "wavegan_generator": {"nz": 8, "d": 2},
        "wavegan_discriminator": {"d": 2},
        "lcnn": {"channels": (2, 2, 2, 2), "hidden": 4, "n_freq": 33, "frames": 24},
        "speech_spectral_logreg": {"bands": 4, "n_freq": 33, "frames": 24},
    }.get(name, {})
