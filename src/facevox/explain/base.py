"""The explainer base class and the "what to explain" targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facevox.registry import EXPLAINERS

Target = Callable[[torch.Tensor], torch.Tensor]  # model output (B, ...) -> score (B,)


def class_score(index: int) -> Target:
    """Explain the logit of class ``index`` (for a 1-logit binary model use index 0)."""

    def target(out: torch.Tensor) -> torch.Tensor:
        return out.reshape(out.shape[0], -1)[:, index]

    return target


def embedding_similarity(reference: torch.Tensor) -> Target:
    """Explain the cosine similarity between each output embedding and ``reference`` (D,)."""

    def target(out: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(out.flatten(1), reference.flatten().to(out).unsqueeze(0), dim=1)

    return target


class Explainer:
    """Subclasses implement :meth:`attribute_raw`; the base turns it into a saliency map.

    ``attribute(x, target)`` returns (B, H, W) maps for image batches (B, C, H, W) (absolute
    values reduced over channels by max, as in Simonyan et al. 2014), or the raw attribution with
    ``reduce=False``. Use as a context manager so that any hooks are removed afterwards.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release hooks or patched modules (nothing for hook-free methods)."""

    def attribute_raw(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        raise NotImplementedError

    def attribute(self, x: torch.Tensor, target: Target, reduce: bool = True) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            attr = self.attribute_raw(x, target).detach()
        finally:
            self.model.train(was_training)
        if reduce and attr.ndim == 4:
            return attr.abs().amax(dim=1)
        return attr


def input_gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """d target(model(x)) / dx, same shape as x; one backward pass for the whole batch."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = target(model(x))
        (grad,) = torch.autograd.grad(score.sum(), x)
    return grad


def create_explainer(name: str, **kwargs: Any) -> Explainer:
    """Build a registered explainer by name (see ``facevox list explainers``)."""
    return EXPLAINERS.create(name, **kwargs)
