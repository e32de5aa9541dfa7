"""Saliency methods on image models: known answers, and every explainer on every image model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.explain import class_score, create_explainer
from facevox.explain.overlay import overlay, plot_saliency_grid
from facevox.registry import EXPLAINERS, MODELS, create_model
from facevox.tasks.fakeface.saliency import detector_target, saliency_maps, usable_methods

FACE = {"width": 4, "embed_dim": 16, "input_size": (32, 32)}
TINY = {"resnet18": {"width": 8}, "resnet50": {"width": 8}, "spectral_logreg": {"size": 32},
        "sphere20": FACE, "iresnet18": FACE, "iresnet50": FACE, "mobilefacenet": FACE}


def image_models() -> list[str]:
    """Registered models whose example input is an RGB image."""
    names = []
    for name in MODELS.names():
        try:
            model = create_model(name, **TINY.get(name, {}))
        except FacevoxError:  # needs arguments (an input size): not an image model
            continue
        shape = getattr(model, "example_input_shape", ())
        if len(shape) == 3 and shape[0] == 3:
            names.append(name)
    return names


def test_the_image_models_are_found():
    assert {"resnet18", "resnet50", "spectral_logreg"} <= set(image_models())


@pytest.mark.parametrize("model_name", image_models())
@pytest.mark.parametrize("method", EXPLAINERS.names())
def test_every_explainer_on_every_image_model(model_name, method):
    torch.manual_seed(0)
    model = create_model(model_name, **TINY.get(model_name, {})).eval()
    x = torch.rand(2, *model.example_input_shape)  # image classifiers explain P(fake), embedders dimension 0
    if method == "gradcam" and not usable_methods(model, ["gradcam"]):
        with pytest.raises(FacevoxError, match="Grad-CAM needs a convolutional layer"):
            create_explainer(method, model=model)
        return
    with create_explainer(method, model=model) as explainer:
        maps = explainer.attribute(x, detector_target("fake"))
    assert maps.shape == (2, *x.shape[-2:]) and torch.isfinite(maps).all() and (maps >= 0).all()
    assert maps.abs().sum() > 0


def _linear() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1))


def test_guided_backprop_without_relus_is_the_gradient():
    model = _linear()
    x = torch.randn(2, 3, 4, 4)
    with create_explainer("guided_backprop", model=model) as e:
        attr = e.attribute(x, class_score(0), reduce=False)
    torch.testing.assert_close(attr, model[1].weight.reshape(3, 4, 4).expand(2, 3, 4, 4))


def test_guided_backprop_stops_negative_gradients_at_relus():
    # y = sum(-relu(x)): the gradient is -1 where x > 0; guided backprop passes no negative gradient
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[2].weight.fill_(-1.0)
    x = torch.tensor([[[[1.0, -1.0], [2.0, 3.0]]]])
    with create_explainer("gradient", model=model) as e:
        assert e.attribute(x, class_score(0), reduce=False).flatten().tolist() == [-1.0, 0.0, -1.0, -1.0]
    with create_explainer("guided_backprop", model=model) as e:
        assert e.attribute(x, class_score(0), reduce=False).abs().sum() == 0


def test_smoothgrad_of_a_linear_model_is_its_weights():
    model = _linear()
    x = torch.randn(2, 3, 4, 4)
    w = model[1].weight.reshape(3, 4, 4).expand(2, 3, 4, 4)
    with create_explainer("smoothgrad", model=model, n_samples=5) as e:
        torch.testing.assert_close(e.attribute(x, class_score(0), reduce=False), w)
    with create_explainer("smoothgrad", model=model, n_samples=5, squared=True) as e:
        torch.testing.assert_close(e.attribute(x, class_score(0), reduce=False), w.square())


def test_smoothgrad_averages_a_step_gradient_into_the_normal_cdf():
    # d sum(relu(x)) / dx is the step 1[x > 0]; under noise N(0, s^2) its mean is Phi(x / s), with
    # s = 0.15 * (max - min) = 0.3 here: about 0, 1/2 and 1 at x = -1, 0, 1
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[2].weight.fill_(1.0)
    x = torch.tensor([[[[-1.0, 0.0, 1.0]]]])
    with create_explainer("smoothgrad", model=model, n_samples=2000) as e:
        attr = e.attribute(x, class_score(0), reduce=False).flatten()
        again = e.attribute(x, class_score(0), reduce=False).flatten()
    torch.testing.assert_close(attr, torch.tensor([0.0, 0.5, 1.0]), atol=0.04, rtol=0)
    assert torch.equal(attr, again)  # seeded noise: the same map twice
    with create_explainer("smoothgrad", model=model, noise_level=0.0, n_samples=1) as e:
        assert e.attribute(x, class_score(0), reduce=False).flatten().tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(FacevoxError, match="n_samples >= 1"):
        create_explainer("smoothgrad", model=model, n_samples=0)


def test_guided_backprop_refuses_inplace_relus():
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4, 1))
    with create_explainer("guided_backprop", model=model) as e, pytest.raises(FacevoxError, match="in-place"):
        e.attribute(torch.randn(1, 1, 2, 2), class_score(0))


def test_integrated_gradients_of_a_linear_model():
    model = _linear()
    x = torch.randn(2, 3, 4, 4)
    with create_explainer("integrated_gradients", model=model, n_steps=8) as e:
        attr = e.attribute(x, class_score(0), reduce=False)
    w = model[1].weight.reshape(3, 4, 4)
    torch.testing.assert_close(attr, x * w)  # (x - 0) * w exactly for a linear model
    # completeness: attributions sum to score(x) - score(0)
    torch.testing.assert_close(attr.flatten(1).sum(1), (model(x) - model(torch.zeros_like(x)))[:, 0].detach())


def test_gradcam_known_answer():
    # score = mean of channel 0 of a 1x1 convolution; channel 1 does not count. Then alpha = (1/64, 0)
    # and the map is ReLU(A0 / 64), with A0 the channel sum of the input: bright where the input is.
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1, bias=False)
            with torch.no_grad():
                self.conv.weight[0].fill_(1.0)
                self.conv.weight[1].fill_(-1.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)[:, 0].mean(dim=(1, 2)).unsqueeze(1)

    x = torch.zeros(1, 3, 8, 8)
    x[:, :, 4:, 4:] = torch.rand(1, 3, 4, 4) + 0.1
    with create_explainer("gradcam", model=Net()) as e:
        cam = e.attribute(x, class_score(0))[0]
    torch.testing.assert_close(cam, x[0].sum(0) / 64)
    assert cam[:4, :4].max() == 0 and cam[4:, 4:].min() > 0


def test_hooks_are_released():
    model = create_model("resnet18", width=8).eval()
    with create_explainer("gradcam", model=model) as e:
        e.attribute(torch.rand(1, 3, 32, 32), detector_target("real"))
    assert not model.layer4._forward_hooks


def test_saliency_maps_and_overlay_figure(tmp_path):
    model = create_model("resnet18", width=8).eval()
    images = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(2)]
    maps = saliency_maps(model, images, ["guided_backprop", "gradcam"], ["fake", "real"])
    assert set(maps) == {"guided_backprop", "gradcam"} and maps["gradcam"][1].shape == (32, 32)
    assert overlay(images[0], maps["gradcam"][0]).shape == (32, 32, 3)
    assert plot_saliency_grid(images, maps, tmp_path / "s.png", ["a", "b"]).is_file()
    with pytest.raises(FacevoxError, match="'fake' or 'real'"):
        detector_target("both")
