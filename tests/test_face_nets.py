"""Face-recognition backbones: sphere20, iresnet18/50, mobilefacenet (shapes, sizes, training, activations)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.registry import create_model

FACE_NETS = ("sphere20", "iresnet18", "iresnet50", "mobilefacenet")
# (name, extra constructor arguments): sphere20 in both its variants
VARIANTS = [("sphere20", {}), ("sphere20", {"batchnorm": True}), ("iresnet18", {}), ("iresnet50", {}),
            ("mobilefacenet", {})]
VARIANT_IDS = ["sphere20", "sphere20-bn", "iresnet18", "iresnet50", "mobilefacenet"]
TINY = {"width": 4, "embed_dim": 16, "input_size": (32, 24)}  # 32x24 crops -> a 2x2 final map


def _tiny(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{**TINY, **kwargs})


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FACE_NETS)
@pytest.mark.parametrize(("size", "final_map"), [((112, 112), (7, 7)), ((112, 96), (7, 6))])
def test_output_shapes(name, size, final_map):
    model = create_model(name, width=4, input_size=size).eval()  # default embed_dim
    assert model.example_input_shape == (3, *size)
    maps = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: maps.append(o.shape))
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    handle.remove()
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    assert maps == [(2, 32, *final_map)]  # the last stage / GDConv input: 8 * width channels
    small = create_model(name, width=4, embed_dim=64, input_size=size).eval()
    with torch.no_grad():
        assert small(torch.rand(1, 3, *size)).shape == (1, 64)


@pytest.mark.parametrize("name", FACE_NETS)
def test_wrong_sizes_are_clear_errors(name):
    model = _tiny(name)
    with pytest.raises(ValueError, match=r"input_size=\(H, W\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(FacevoxError, match="input_size"):
        create_model(name, input_size=(112,))


@pytest.mark.parametrize(
    ("name", "kwargs", "params", "published"),
    [
        ("iresnet18", {}, 24_025_600, 24.0e6),  # InsightFace arcface_torch r18
        ("iresnet50", {}, 43_590_848, 43.6e6),  # InsightFace arcface_torch r50
        ("iresnet50", {"input_size": (112, 96)}, 41_755_840, None),
        ("mobilefacenet", {}, 1_200_512, 1.2e6),  # 512-d MobileFaceNet
        ("mobilefacenet", {"embed_dim": 128}, 1_003_136, 0.99e6),  # Chen et al. 2018: "0.99 million"
        ("mobilefacenet", {"input_size": (112, 96)}, 1_200_512 - 512 * 7, None),  # a 7x6 GDConv kernel
        ("sphere20", {}, 24_501_952, None),
        # SphereFace-20 at 112x96 is quoted as ~28M with its A-Softmax layer for CASIA-WebFace's 10,574 people
        ("sphere20", {"input_size": (112, 96)}, 22_666_944, 28.0e6 - 512 * 10_574),
        ("sphere20", {"input_size": (112, 96), "batchnorm": True}, 22_676_352, None),
    ],
)
def test_parameter_counts_at_default_sizes(name, kwargs, params, published):
    with torch.device("meta"):  # no memory, no initialisation cost: only the shapes matter
        model = create_model(name, **kwargs)
    assert _count(model) == params
    if published is not None:
        assert abs(params - published) / published < 0.015


def test_mobilefacenet_multiply_adds_match_the_paper():
    with torch.device("meta"):
        model = create_model("mobilefacenet", embed_dim=128).eval()
        madds = []

        def hook(m, inputs, out):
            per_output = m.in_features if isinstance(m, nn.Linear) else m.weight[0].numel()
            madds.append(out.numel() * per_output)

        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(hook)
        model(torch.empty(1, 3, 112, 112))
    assert round(sum(madds) / 1e6) == 221  # table 3 of the paper: 221M MAdds


def test_iresnet_uses_insightface_names():
    model = _tiny("iresnet18")
    keys = set(model.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "prelu.weight", "layer1.0.bn1.weight", "layer1.0.prelu.weight",
            "layer1.0.bn3.bias", "layer1.0.downsample.0.weight", "layer4.1.conv2.weight", "bn2.weight", "fc.weight",
            "features.running_var"} <= keys
    assert not any("normalize" in k for k in keys)
    assert not model.features.weight.requires_grad  # InsightFace fixes the embedding BN's scale at 1


@pytest.mark.parametrize("name", FACE_NETS)
def test_pixels_are_normalised_inside(name):
    model = _tiny(name)
    torch.testing.assert_close(model.normalize(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)),
                               torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1))


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_eval_is_deterministic_and_batch_independent(name, kwargs):
    model = _tiny(name, **kwargs)
    x = torch.rand(5, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x)  # one training-mode pass moves the BN running statistics away from (0, 1)
        model.eval()
        out = model(x)
        torch.testing.assert_close(model(x), out, rtol=0, atol=0)
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(5)])
        reordered = model(x.flip(0)).flip(0)
    torch.testing.assert_close(one_by_one, out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(reordered, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_a_few_training_steps_reduce_the_loss(name, kwargs):
    model = _tiny(name, **kwargs)
    classifier = nn.Linear(16, 4)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(8, 3, 32, 24, generator=gen), torch.arange(8) % 4
    opt = torch.optim.Adam([*model.parameters(), *classifier.parameters()], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = nn.functional.cross_entropy(classifier(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_runs_under_bfloat16_autocast(name, kwargs):
    model = _tiny(name, **kwargs)
    x = torch.rand(4, 3, 32, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().pow(2).mean().backward()
    assert out.shape == (4, 16) and torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = model.eval()(x)
    torch.testing.assert_close(ref.float(), model(x).float(), rtol=0.1, atol=0.1)


@pytest.mark.parametrize(("name", "prelus"), [("sphere20", 20), ("iresnet18", 9), ("iresnet50", 25),
                                              ("mobilefacenet", 33)])
def test_activations_are_separate_modules_used_once(name, prelus):
    model = _tiny(name)
    acts = [m for m in model.modules() if isinstance(m, (nn.PReLU, nn.ReLU, nn.LeakyReLU, nn.ReLU6))]
    assert len(acts) == prelus and all(isinstance(m, nn.PReLU) for m in acts)
    assert not any(getattr(m, "inplace", False) for m in model.modules())  # no in-place ReLU or dropout
    calls = {id(m): 0 for m in acts}
    for m in acts:
        m.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1))
    model(torch.rand(2, 3, 32, 24))
    assert set(calls.values()) == {1}  # saliency methods hook each activation once per forward
