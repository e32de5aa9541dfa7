"""Training a GAN through the one :class:`~facevox.train.Trainer` (one optimiser, one backward).

A :class:`GANPair` holds the generator and the discriminator. A task's ``compute_loss`` returns
``d_loss + g_loss`` where the discriminator's loss sees the generated batch detached and the
generator's adversarial loss goes through :func:`frozen_call`, the discriminator run with its
parameters detached: each network gets the gradient of its own loss only, and the one
optimiser step updates both at once (simultaneous gradient descent, from the same state).
:func:`gan_param_groups` gives each network its own learning rate and Adam betas.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.func import functional_call


class GANPair(nn.Module):
    """The generator and the discriminator trained together (``forward`` runs the generator)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.generator(*args, **kwargs)


def frozen_call(module: nn.Module, *args: Any) -> Any:
    """``module(*args)`` with its parameters detached: gradients reach the inputs, never the module."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args)


def gan_param_groups(pair: GANPair, lr_g: float, lr_d: float, betas: tuple[float, float] = (0.5, 0.9),
                     ) -> list[dict[str, Any]]:
    """Two Adam parameter groups: the generator's and the discriminator's."""
    return [
        {"params": list(pair.generator.parameters()), "lr": lr_g, "betas": tuple(betas), "name": "generator"},
        {"params": list(pair.discriminator.parameters()), "lr": lr_d, "betas": tuple(betas), "name": "discriminator"},
    ]
