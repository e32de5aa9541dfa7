"""Guided Backpropagation and Integrated Gradients, computed by Captum.

Guided Backpropagation (Springenberg et al., "Striving for simplicity: the all convolutional
net", ICLR 2015 workshop) passes only positive gradients back through every ReLU; Captum does it
with hooks on ``nn.ReLU`` modules, so the model must use ReLU *modules* (not ``F.relu``), each
used once and not in-place (the in-tree ResNets are written that way). Integrated Gradients
(Sundararajan, Taly and Yan, ICML 2017) integrates the gradient along the straight path from a
baseline (black image by default) to the input; the attributions sum to score(x) - score(baseline).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.explain.base import Explainer, Target
from facevox.registry import register_explainer


class _Scored(nn.Module):
    """model followed by the target: (B, ...) -> (B,), the single output Captum explains."""

    def __init__(self, model: nn.Module, target: Target) -> None:
        super().__init__()
        self.model = model
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target(self.model(x))


def _captum_attr():
    try:
        import captum.attr
    except ImportError:  # pragma: no cover - captum is the `explain` extra
        raise FacevoxError("this explainer needs Captum: pip install 'facevox[explain]'") from None
    return captum.attr


def _check_relus(model: nn.Module) -> None:
    inplace = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU) and m.inplace]
    if inplace:
        raise FacevoxError(f"Guided Backpropagation needs ReLUs that are not in-place; in-place: {inplace[0]}")


class GuidedBackprop(Explainer):
    """Guided Backpropagation: gradients with negative values stopped at every ReLU."""

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        _check_relus(self.model)
        method = _captum_attr().GuidedBackprop(_Scored(self.model, target))
        with torch.enable_grad(), warnings.catch_warnings():
            # Captum warns that it sets (and later removes) hooks on the ReLUs: that is the method
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return method.attribute(x.detach().clone().requires_grad_(True))


class IntegratedGradients(Explainer):
    """Integrated Gradients from a constant baseline image, ``n_steps`` Gauss-Legendre points."""

    def __init__(self, model: nn.Module, n_steps: int = 32, baseline: float = 0.0, internal_batch_size: int = 32):
        super().__init__(model)
        if n_steps < 1:
            raise FacevoxError(f"integrated gradients needs n_steps >= 1, got {n_steps}")
        self.n_steps, self.baseline, self.internal_batch_size = n_steps, baseline, internal_batch_size

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        method = _captum_attr().IntegratedGradients(_Scored(self.model, target))
        with torch.enable_grad():
            return method.attribute(x.detach(), baselines=self.baseline, n_steps=self.n_steps,
                                    internal_batch_size=self.internal_batch_size)


@register_explainer("guided_backprop")
def guided_backprop(*, model: nn.Module) -> GuidedBackprop:
    """Guided Backpropagation (Springenberg et al. 2015), via Captum."""
    return GuidedBackprop(model)


@register_explainer("integrated_gradients")
def integrated_gradients(*, model: nn.Module, n_steps: int = 32, baseline: float = 0.0,
                         internal_batch_size: int = 32) -> IntegratedGradients:
    """Integrated Gradients from a black image (Sundararajan et al. 2017), via Captum."""
    return IntegratedGradients(model, n_steps, baseline, internal_batch_size)
