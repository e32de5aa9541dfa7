"""Generators to invert: the DCGAN face generator, a WaveGAN model folder, a user factory, or a TorchScript file.

Every generator is wrapped in :class:`Generator`, which knows its latent size ``nz``, its kind
(``"image"`` or ``"audio"``) and its output size, is frozen (eval mode, no parameter gradients,
gradients still flow to z) and maps its outputs to images in [0, 1], z (B, nz) -> (B, 3, H, W),
or to waves in [-1, 1], z (B, nz) -> (B, 1, T).
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facevox.checkpoint import load_weights
from facevox.errors import FacevoxError

DCGAN_FACE = "dcgan-face"
WAVEGAN = "wavegan:"  # wavegan:MODEL_FOLDER (facevox voice train-gan's OUT/model, or OUT itself)
FACTORY_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")  # package.module:factory


class Generator(nn.Module):
    """A frozen generator: z (B, nz) -> images (B, 3, H, W), scaled from ``output_range`` to [0, 1],
    or waves (B, 1, T), scaled from ``output_range`` to [-1, 1] (``kind`` "audio": a module that
    returns (B, 1, T)).

    The outputs are not clamped (losses need the gradient at the edges); clamp them for display.
    ``spec`` is what rebuilds it (:func:`load_generator` keywords), ``name`` what tables print.
    ``output_shape`` is one sample's shape: (3, H, W) or (1, T); ``image_size`` is (H, W) or None.
    """

    def __init__(self, net: nn.Module, nz: int, output_range: tuple[float, float], name: str,
                 spec: Mapping[str, Any], z_shape: tuple[int, ...] | None = None, sample_rate: int = 16000) -> None:
        super().__init__()
        lo, hi = (float(v) for v in output_range)
        if not hi > lo:
            raise FacevoxError(f"output range must be (low, high) with low < high, got {tuple(output_range)}",
                               "generator.output_range")
        self.net = net.eval()
        for p in self.net.parameters():  # (a TorchScript module has no requires_grad_)
            p.requires_grad_(False)
        self.nz, self.lo, self.hi, self.name = int(nz), lo, hi, name
        self.z_shape = z_shape or (self.nz,)  # what the module takes per sample: (nz,) or (nz, 1, 1)
        self.spec = {**dict(spec), "nz": self.nz, "output_range": [lo, hi]}
        self.kind, self.sample_rate = "image", int(sample_rate)
        self.image_size: tuple[int, int] | None = None
        self.samples = 0
        shape = self._probe()
        if len(shape) == 1:
            self.kind, self.samples = "audio", shape[0]
            self.output_shape: tuple[int, ...] = (1, self.samples)
        else:
            self.image_size = shape
            self.output_shape = (3, *shape)

    def train(self, mode: bool = True) -> Generator:  # always frozen: batch norm keeps its running statistics
        return super().train(False)

    def _probe(self) -> tuple[int, ...]:
        device = next((p.device for p in self.net.parameters()), torch.device("cpu"))
        with torch.no_grad():
            try:
                out = self.net(torch.zeros(2, *self.z_shape, device=device))
            except Exception as err:
                if self.z_shape == (self.nz,):  # some generators take (B, nz, 1, 1)
                    self.z_shape = (self.nz, 1, 1)
                    return self._probe()
                raise FacevoxError(f"the generator does not take z of size {self.nz} "
                                   f"({' '.join(str(err).split())[:160]})", self.spec["source"]) from None
        if isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[:2] == (2, 1) and out.shape[2] > 1:
            return (int(out.shape[2]),)  # waves (B, 1, T)
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[1] not in (1, 3) or out.shape[0] != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FacevoxError(f"the generator must return images (B, 3, H, W) or waves (B, 1, T), got {shape}",
                               self.spec["source"])
        return int(out.shape[2]), int(out.shape[3])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z.reshape(z.shape[0], *self.z_shape)).float()
        if self.kind == "audio":
            return (out - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0
        if out.shape[1] == 1:
            out = out.expand(-1, 3, -1, -1)
        return (out - self.lo) / (self.hi - self.lo)

    def check_targets(self, targets: torch.Tensor) -> None:
        """Targets must be (N, *output_shape)."""
        if tuple(targets.shape[1:]) != self.output_shape:
            raise FacevoxError(f"targets are {tuple(targets.shape[1:])}, the generator draws {self.output_shape}")

    def describe(self) -> str:
        if self.kind == "audio":
            return (f"{self.name} (nz={self.nz}, {self.samples} samples = {self.samples / self.sample_rate:.2f} s "
                    f"at {self.sample_rate // 1000:g} kHz)")
        h, w = self.image_size
        return f"{self.name} (nz={self.nz}, {h}x{w}, output range [{self.lo:g}, {self.hi:g}])"


def sample_latents(n: int, nz: int, seed: int = 0) -> torch.Tensor:
    """(n, nz) draws from N(0, I), the same for the same seed on every machine."""
    return torch.randn(n, nz, generator=torch.Generator().manual_seed(int(seed)))


# --------------------------------------------------------------------------------------------
# loading


def load_generator(source: str = DCGAN_FACE, *, weights: str | Path = "", nz: int | None = None,
                   output_range: tuple[float, float] = (-1.0, 1.0), device: str | torch.device = "cpu") -> Generator:
    """Build the generator named by ``source``.

    ``source`` is ``"wavegan:MODEL_FOLDER"`` (a WaveGAN of ``facevox voice train-gan``: weights
    only, its ``OUT/model`` or ``OUT``), ``"dcgan-face"`` (the DCGAN face generator of ``gan-face-generate``: only its
    ``weights.tar`` is read, found with ``importlib.util.find_spec`` without importing the package's
    code, so ``pip install --no-deps gan-face-generate`` is enough; ``weights`` may name that file
    elsewhere, another file in its format or a state dict), ``"package.module:factory"`` (a
    callable returning an ``nn.Module``; it gets ``nz=`` if it takes it) or a TorchScript file.
    ``weights`` is a state dict (``.pt``/``.pth``/``.tar``/``.safetensors``) loaded into the module.
    ``nz`` defaults to the module's ``nz`` attribute. Bad names and files raise a
    :class:`FacevoxError` naming them.
    """
    source = str(source or DCGAN_FACE)
    spec = {"source": source, "weights": str(weights or "")}
    if source.startswith(WAVEGAN):
        net, folder = _wavegan(source[len(WAVEGAN):])
        spec["source"] = WAVEGAN + str(folder)  # absolute: an encoder's extra.json finds it from anywhere
        name = f"WaveGAN {folder.parent.name}/{folder.name}"
    elif source == DCGAN_FACE:
        net = _dcgan_face(weights)
        name = "DCGAN face generator (gan-face-generate)"
    elif Path(source).is_file():
        net = _torchscript(Path(source))
        name = f"TorchScript {Path(source).name}"
    elif FACTORY_NAME.fullmatch(source):
        net = _from_factory(source, nz)
        name = source
    else:
        raise FacevoxError("generator not found: give 'dcgan-face', 'package.module:factory' or a TorchScript file",
                           source)
    if weights and source != DCGAN_FACE:
        load_weights(net, weights, what="the generator")
    nz = nz or getattr(net, "nz", None)
    if not isinstance(nz, int) or nz < 1:
        raise FacevoxError("the latent size is unknown: give it (--nz or generator.nz)", source)
    if source == DCGAN_FACE and nz != net.nz:
        raise FacevoxError(f"the DCGAN face generator has nz={net.nz}, not {nz}", "generator.nz")
    return Generator(net.to(device), nz, output_range, name, spec)


def _wavegan(folder: str) -> tuple[nn.Module, Path]:
    """The generator of a ``facevox voice train-gan`` model folder (or of the run folder holding it)."""
    from facevox.checkpoint import read_model_folder

    path = Path(folder).expanduser()
    if not folder:
        raise FacevoxError("give the WaveGAN's model folder: wavegan:MODEL_FOLDER", WAVEGAN)
    if not (path / "model.yaml").is_file() and (path / "model" / "model.yaml").is_file():
        path = path / "model"
    loaded = read_model_folder(path, task="audio-gan", use="--generator wavegan:")
    net = loaded.model
    if not isinstance(getattr(net, "nz", None), int) or loaded.spec["name"] != "wavegan_generator":
        raise FacevoxError(f"not a WaveGAN generator folder (it holds {loaded.spec['name']})", path)
    if loaded.inference.nz != net.nz:
        raise FacevoxError(f"extra.json says nz={loaded.inference.nz}, the generator takes {net.nz}", path)
    return net, path.resolve()


def _dcgan_face(weights: str | Path) -> nn.Module:
    from facevox.nets.dcgan import load_gan_face_generator

    return load_gan_face_generator(weights or None)


def _torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.10+: TorchScript is deprecated
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise FacevoxError(f"cannot read the generator as TorchScript ({' '.join(str(err).split())[:160]})",
                           path) from None


def import_factory(source: str, what: str) -> Any:
    """The object named ``package.module:attribute``, or a FacevoxError naming ``source``."""
    module_name, _, attr = source.partition(":")
    if not module_name or not attr:
        raise FacevoxError(f"{what} must be given as package.module:factory", source)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or an error inside the user's module
        raise FacevoxError(f"cannot import {module_name} ({type(err).__name__}: {err})", source) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FacevoxError(f"module {module_name} has no attribute {attr}", source)
        obj = getattr(obj, part)
    return obj


def _from_factory(source: str, nz: int | None) -> nn.Module:
    factory = import_factory(source, "a generator")
    if not callable(factory):
        raise FacevoxError("not callable: the factory must return an nn.Module", source)
    kwargs: dict[str, Any] = {}
    try:
        if nz is not None and "nz" in inspect.signature(factory).parameters:
            kwargs["nz"] = nz
    except (TypeError, ValueError):  # builtins without a signature
        pass
    try:
        net = factory(**kwargs)
    except Exception as err:
        raise FacevoxError(f"the factory failed ({type(err).__name__}: {err})", source) from None
    if not isinstance(net, nn.Module):
        raise FacevoxError(f"the factory returned a {type(net).__name__}, not an nn.Module", source)
    return net
