"""Grad-CAM (Selvaraju et al., "Grad-CAM: visual explanations from deep networks via
gradient-based localization", ICCV 2017).

The map is ReLU(sum_k alpha_k A^k), where A (B, K, h, w) is the output of a convolutional layer
and alpha_k the spatial mean of d score / d A^k; it is upsampled bilinearly to the input size.
The layer is the model's ``cam_layer`` (the last convolutional stage of the in-tree ResNets) or
the one passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.errors import FacevoxError
from facevox.explain.base import Explainer, Target
from facevox.registry import register_explainer


def default_cam_layer(model: nn.Module) -> nn.Module:
    """``model.cam_layer`` if the model names one, else its last ``nn.Conv2d``."""
    layer = getattr(model, "cam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FacevoxError(f"Grad-CAM needs a convolutional layer; {type(model).__name__} has none")
    return convs[-1]


class GradCAM(Explainer):
    """Class activation map weighted by pooled gradients; (B, H, W), already non-negative."""

    def __init__(self, model: nn.Module, layer: nn.Module | None = None) -> None:
        super().__init__(model)
        self.layer = layer if layer is not None else default_cam_layer(model)
        self._acts: torch.Tensor | None = None
        self._handle = self.layer.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._acts = output

    def close(self) -> None:
        self._handle.remove()

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        with torch.enable_grad():
            score = target(self.model(x.detach()))
            acts = self._acts
            if acts is None or acts.ndim != 4:
                raise FacevoxError("Grad-CAM's layer must output a (B, C, h, w) map")
            (grad,) = torch.autograd.grad(score.sum(), acts)
        weights = grad.float().mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * acts.float()).sum(dim=1, keepdim=True))
        self._acts = None
        return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]

    def attribute(self, x: torch.Tensor, target: Target, reduce: bool = True) -> torch.Tensor:
        return super().attribute(x, target, reduce=False)  # one channel already: nothing to reduce


@register_explainer("gradcam")
def gradcam(*, model: nn.Module, layer: nn.Module | None = None) -> GradCAM:
    """Grad-CAM on the last convolutional stage (Selvaraju et al. 2017)."""
    return GradCAM(model, layer)
