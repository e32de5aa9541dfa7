"""Vanilla gradient saliency (Simonyan, Vedaldi and Zisserman, 2014).

The map is |d score / d input|, maxed over colour channels.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.explain.base import Explainer, Target, input_gradient
from facevox.registry import register_explainer


class Gradient(Explainer):
    """Saliency = gradient of the target score with respect to the input."""

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        return input_gradient(self.model, x, target)


class InputXGradient(Explainer):
    """Attribution = input * gradient (Shrikumar et al. 2016): the first-order contribution."""

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        return x * input_gradient(self.model, x, target)


@register_explainer("gradient")
def gradient(*, model: nn.Module) -> Gradient:
    """Vanilla gradient saliency."""
    return Gradient(model)


@register_explainer("input_x_gradient")
def input_x_gradient(*, model: nn.Module) -> InputXGradient:
    """Input times gradient."""
    return InputXGradient(model)
