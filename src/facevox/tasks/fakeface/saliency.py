"""Saliency maps of a detector's decision, for ``fakeface explain`` and the evaluation report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.explain import create_explainer
from facevox.explain.base import Target
from facevox.image.transforms import to_tensor

METHODS = ("gradient", "guided_backprop", "gradcam", "integrated_gradients")  # the default set
ALL_METHODS = (*METHODS, "smoothgrad", "input_x_gradient")


def detector_target(which: str) -> Target:
    """The score to explain: ``fake`` is the logit of P(fake), ``real`` its negative."""
    if which not in ("fake", "real"):
        raise FacevoxError(f"target must be 'fake' or 'real', got '{which}'", "--target")
    sign = 1.0 if which == "fake" else -1.0

    def target(out: torch.Tensor) -> torch.Tensor:
        return sign * out.reshape(out.shape[0], -1)[:, 0].float()

    return target


def usable_methods(model: nn.Module, methods: Sequence[str]) -> list[str]:
    """``methods`` minus Grad-CAM for models without a convolutional layer."""
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return [m for m in methods if m != "gradcam" or has_conv]


def saliency_maps(model: nn.Module, images: Sequence[np.ndarray], methods: Sequence[str],
                  targets: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """``{method: [(H, W) map per image]}`` for uint8 images of one size, each for its own target.

    Computed on the model's device, always in fp32 (no autocast: bf16 gradients are too coarse for
    saliency); the maps come back as CPU arrays."""
    model = model.float().eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = to_tensor(list(images)).to(device)
    out: dict[str, list[np.ndarray]] = {}
    for method in methods:
        maps = []
        with create_explainer(method, model=model) as explainer:
            for i, which in enumerate(targets):  # one image at a time: targets differ, memory stays small
                maps.append(explainer.attribute(x[i : i + 1], detector_target(which))[0].cpu().numpy())
        out[method] = maps
    return out
