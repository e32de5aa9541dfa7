"""Gradient saliency: vanilla (Simonyan, Vedaldi and Zisserman, 2014), input x gradient, and
SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017).

The map is |d score / d input|, maxed over colour channels.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.errors import FacevoxError
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


class SmoothGrad(Explainer):
    """The gradient averaged over ``n_samples`` copies of the input with Gaussian noise added.

    The noise standard deviation is ``noise_level`` times each image's value range (max - min),
    0.15 as in Smilkov et al.; ``squared=True`` averages squared gradients (SmoothGrad-Squared).
    ``seed`` makes the noise, and so the map, repeatable.
    """

    def __init__(self, model: nn.Module, n_samples: int = 25, noise_level: float = 0.15,
                 squared: bool = False, seed: int = 0) -> None:
        super().__init__(model)
        if n_samples < 1 or noise_level < 0:
            raise FacevoxError(f"smoothgrad needs n_samples >= 1 and noise_level >= 0, "
                               f"got {n_samples} and {noise_level}")
        self.n_samples, self.noise_level, self.squared, self.seed = n_samples, noise_level, squared, seed

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        flat = x.detach().flatten(1)
        sigma = (self.noise_level * (flat.amax(1) - flat.amin(1))).view(-1, *[1] * (x.ndim - 1))
        gen = torch.Generator().manual_seed(self.seed)
        total = torch.zeros_like(x)
        for _ in range(self.n_samples):
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * sigma
            grad = input_gradient(self.model, x + noise, target)
            total += grad.square() if self.squared else grad
        return total / self.n_samples


@register_explainer("gradient")
def gradient(*, model: nn.Module) -> Gradient:
    """Vanilla gradient saliency."""
    return Gradient(model)


@register_explainer("input_x_gradient")
def input_x_gradient(*, model: nn.Module) -> InputXGradient:
    """Input times gradient."""
    return InputXGradient(model)


@register_explainer("smoothgrad")
def smoothgrad(*, model: nn.Module, n_samples: int = 25, noise_level: float = 0.15, squared: bool = False,
               seed: int = 0) -> SmoothGrad:
    """SmoothGrad: the gradient averaged over noisy copies of the input (Smilkov et al. 2017)."""
    return SmoothGrad(model, n_samples, noise_level, squared, seed)
