"""Known answers for the margin losses of the foundation (softmax, CosFace, ArcFace)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facevox.registry import create_loss


def _normalised_softmax(loss_fn, emb, labels, scale):
    return F.cross_entropy(scale * loss_fn.cosine(emb), labels)


@pytest.mark.parametrize("name", ["cosface", "arcface", "am_softmax", "aam_softmax"])
def test_zero_margin_is_normalised_softmax(name):
    torch.manual_seed(0)
    loss_fn = create_loss(name, embed_dim=6, num_classes=4, scale=10.0, margin=0.0)
    emb, labels = torch.randn(12, 6), torch.randint(0, 4, (12,))
    torch.testing.assert_close(loss_fn(emb, labels), _normalised_softmax(loss_fn, emb, labels, 10.0))


def test_margins_by_hand():
    loss_fn = create_loss("arcface", embed_dim=2, num_classes=2, scale=1.0, margin=0.3)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = 0.4
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    want = -math.log(math.exp(math.cos(theta + 0.3)) / (math.exp(math.cos(theta + 0.3)) + math.exp(math.sin(theta))))
    assert loss_fn(emb, torch.tensor([0])).item() == pytest.approx(want, rel=1e-5)
    cos_fn = create_loss("cosface", embed_dim=2, num_classes=2, scale=2.0, margin=0.3)
    with torch.no_grad():
        cos_fn.weight.copy_(loss_fn.weight)
    t, o = 2 * (math.cos(theta) - 0.3), 2 * math.sin(theta)
    assert cos_fn(emb, torch.tensor([0])).item() == pytest.approx(-t + math.log(math.exp(t) + math.exp(o)), rel=1e-5)


@pytest.mark.parametrize("name", ["softmax", "cosface", "arcface"])
def test_gradients_match_finite_differences(name):
    torch.manual_seed(1)
    kwargs = {} if name == "softmax" else {"scale": 4.0, "margin": 0.2}
    loss_fn = create_loss(name, embed_dim=3, num_classes=3, **kwargs).double()
    emb = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1])
    assert torch.autograd.gradcheck(lambda e: loss_fn.loss(e, labels), (emb,))


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_no_nan_at_extremes(name):
    loss_fn = create_loss(name, embed_dim=2, num_classes=2, scale=64.0, margin=0.5)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # embeddings exactly on a class weight (angle 0), opposite to it (angle pi), and huge norms
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1e6, 0.0], [0.0, 1e-6]], requires_grad=True)
    loss = loss_fn(emb, torch.tensor([0, 0, 1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()


def test_margin_is_an_attribute_read_in_forward():
    torch.manual_seed(0)
    loss_fn = create_loss("arcface", embed_dim=4, num_classes=3, scale=8.0, margin=0.0)
    emb, labels = torch.randn(6, 4), torch.randint(0, 3, (6,))
    before = loss_fn(emb, labels)
    loss_fn.margin = 0.4
    assert loss_fn(emb, labels) > before


def test_loss_runs_in_fp32_under_autocast():
    loss_fn = create_loss("aam_softmax", embed_dim=4, num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(torch.randn(5, 4).bfloat16(), torch.tensor([0, 1, 2, 0, 1]))
    assert loss.dtype == torch.float32
