"""The DCGAN generator (Radford, Metz and Chintala, ICLR 2016) in the layout of the PyTorch DCGAN
tutorial: latent (B, nz) -> image (B, nc, 64, 64) in [-1, 1].

Five transposed convolutions (4x4; the first maps 1x1 to 4x4, each later one doubles the size)
with batch norm and ReLU, and tanh at the end. The parameter names (``main.0.weight`` ...) match
the tutorial's, so its checkpoints load directly; :func:`load_gan_face_generator` reads the
64x64 face generator shipped in the PyPI package ``gan-face-generate`` (MIT licence).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.registry import register_model


class DCGANGenerator(nn.Module):
    """z (B, nz) or (B, nz, 1, 1) -> image (B, nc, 64, 64) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        in_ch = nz
        for i, w in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(in_ch, w, 4, stride, pad, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            in_ch = w
        layers += [nn.ConvTranspose2d(in_ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz
        self.example_input_shape = (nz,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))


def gan_face_weights_path() -> Path:
    """The weights file inside the installed ``gan-face-generate`` package; its code is never imported."""
    import importlib.util

    spec = importlib.util.find_spec("gan_face_generate")
    if spec is None or not spec.submodule_search_locations:
        raise FacevoxError("the DCGAN face generator's weights ship in gan-face-generate: pip install --no-deps "
                           "gan-face-generate (--no-deps: it declares torchvision and wandb, which facevox does not "
                           "use), or give its weights.tar with --weights")
    return Path(next(iter(spec.submodule_search_locations))) / "weights.tar"


def load_gan_face_generator(path: str | Path | None = None) -> DCGANGenerator:
    """The pretrained 64x64 face generator (nz=100, ngf=64), in eval mode.

    Only the weights are read (key ``netG_state_dict``); the package's own code is not imported.
    """
    from facevox.checkpoint import load_weights
    from facevox.registry import create_model

    g = create_model("dcgan_generator")
    load_weights(g, Path(path) if path else gan_face_weights_path(), what="the DCGAN generator",
                 key="netG_state_dict")
    return g.eval()


@register_model("dcgan_generator")
def dcgan_generator(*, nz: int = 100, ngf: int = 64, nc: int = 3) -> DCGANGenerator:
    """DCGAN generator, 64x64 output (the PyTorch tutorial layout; gan-face-generate's weights)."""
    return DCGANGenerator(nz, ngf, nc)
