"""The feature network of the perceptual loss and of the Frechet distance.

No ImageNet weights can be downloaded here, so the network is one this project provides:

- ``random-resnet18``: an untrained ResNet-18 (seed 0, every batch-norm scale at 1), the default
  when nothing is given. Random convolutional features still compare local structure across
  scales, but they know nothing about faces; results must say it was used.
- a facevox model folder: a GAN-face detector from ``facevox fakeface train`` (its ResNet stages)
  or a face embedder from ``facevox face train`` (its stages, at its crop size);
- ``package.module:factory``: a user module; its ``stages`` are hooked by name, or, with no
  stages, its ``forward`` returns the list of feature maps itself.

The perceptual distance is LPIPS without learned weights (Zhang et al., CVPR 2018, eq. 1 with
w = 1): each stage's activations are unit-normalised over channels at every position, and the
squared difference is summed over channels, averaged over positions and averaged over stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facevox.errors import FacevoxError

RANDOM_RESNET18 = "random-resnet18"
MIN_SIZE = 32  # ResNets halve the image five times; smaller images are enlarged to this


class _Stop(Exception):
    """Raised by the last stage's hook: the layers after it are not needed."""


class FeatureNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> list of feature maps (B, C_i, H_i, W_i), one per stage.

    ``stages`` are names of sub-modules whose outputs are taken (forward hooks); with no stages
    the module's own ``forward`` must return the list. Images are resized (bilinear) to
    ``input_size`` (H, W) when it is given, else enlarged to at least ``MIN_SIZE``. The network is
    frozen; gradients flow to the images. ``name`` is what result tables print.
    """

    def __init__(self, model: nn.Module, stages: Sequence[str], name: str,
                 input_size: tuple[int, int] | None = None, description: str = "") -> None:
        super().__init__()
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.name, self.description = name, description or name
        self.input_size = tuple(input_size) if input_size else None
        self.stages = list(stages)
        modules = dict(model.named_modules())
        unknown = [s for s in self.stages if s not in modules]
        if unknown:
            top = ", ".join(n for n, _ in model.named_children())
            raise FacevoxError(f"the feature network has no module '{unknown[0]}'; its top-level modules: {top}",
                               "features.stages")
        self._modules_to_hook = [modules[s] for s in self.stages]

    def train(self, mode: bool = True) -> FeatureNet:  # always frozen
        return super().train(False)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        size = self.input_size
        if size is None:
            h, w = x.shape[-2:]
            scale = max(1.0, MIN_SIZE / min(h, w))
            size = (round(h * scale), round(w * scale))
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._resize(x.float())
        if not self.stages:
            out = self.model(x)
            if isinstance(out, torch.Tensor):
                out = [out]
            if not isinstance(out, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in out):
                raise FacevoxError("a feature network without stages must return a list of feature maps",
                                   "features.network")
            return [t.float() for t in out]
        maps: list[torch.Tensor] = []
        last = len(self._modules_to_hook) - 1

        def hook(i: int):
            def grab(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
                maps.append(output)
                if i == last:
                    raise _Stop

            return grab

        handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(self._modules_to_hook)]
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        if len(maps) != len(self.stages):
            raise FacevoxError(f"the feature network ran {len(maps)} of its {len(self.stages)} stages",
                               "features.stages")
        return [t.float() for t in maps]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) features for the Frechet distance: the last stage, averaged over positions."""
        last = self(x)[-1]
        return last.flatten(2).mean(-1) if last.ndim > 2 else last.flatten(1)


def unit_normalise(maps: Sequence[torch.Tensor], eps: float = 1e-10) -> list[torch.Tensor]:
    """Each map (B, C, ...) divided by its L2 norm over channels at every position."""
    return [m / (m.pow(2).sum(dim=1, keepdim=True).sqrt() + eps) for m in maps]


def feature_distance(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B,) perceptual distance between two lists of unit-normalised maps (0 = identical, at most 4)."""
    per_stage = [(x - y).pow(2).sum(dim=1).flatten(1).mean(dim=1) for x, y in zip(a, b, strict=True)]
    return torch.stack(per_stage).mean(dim=0)


def perceptual_distance(net: FeatureNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) perceptual distance between image batches x and y (B, 3, H, W) in [0, 1]."""
    return feature_distance(unit_normalise(net(x)), unit_normalise(net(y)))


# --------------------------------------------------------------------------------------------
# loading


def random_resnet18(seed: int = 0) -> FeatureNet:
    """An untrained ResNet-18 with fixed weights (the default when no network is given)."""
    from facevox.nets.resnet import resnet18  # the factory itself: no need to load every registered net

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet18(num_classes=1)
    for m in model.modules():  # undo the zero-init of each block's last BN: the residual branches count
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    return FeatureNet(model, ["layer1", "layer2", "layer3", "layer4"], RANDOM_RESNET18,
                      description=f"untrained ResNet-18 (random weights, seed {seed}): no face knowledge")


# the stages hooked in each facevox backbone family, by the attributes it has
_DEFAULT_STAGES = (
    ("layer1", "layer2", "layer3", "layer4"),  # resnet18/50, iresnet, sphere20
    ("conv2_dw", "blocks", "conv_sep"),  # mobilefacenet
)


def default_stages(model: nn.Module) -> list[str]:
    names = dict(model.named_children())
    for stages in _DEFAULT_STAGES:
        if all(s in names for s in stages):
            return list(stages)
    raise FacevoxError(f"no default stages for {type(model).__name__}: give features.stages "
                       f"(its top-level modules: {', '.join(names)})", "features.stages")


def load_feature_net(network: str = RANDOM_RESNET18, *, stages: Sequence[str] = (), input_size: int = 0,
                     device: str | torch.device = "cpu") -> FeatureNet | None:
    """The feature network named by ``network`` (see the module docstring); ``"none"`` gives None.

    ``input_size`` (a square) overrides the network's own input size.
    """
    network = str(network or RANDOM_RESNET18)
    size = (input_size, input_size) if input_size else None
    if network == "none":
        return None
    if network == RANDOM_RESNET18:
        net = random_resnet18()
        if stages:
            net = FeatureNet(net.model, stages, net.name, size, net.description)
        elif size:
            net.input_size = size
        return net.to(device)
    if Path(network).is_dir():
        return _from_model_folder(Path(network), stages, size).to(device)
    from facevox.tasks.invert.generators import FACTORY_NAME, import_factory

    if FACTORY_NAME.fullmatch(network):
        factory = import_factory(network, "a feature network")
        try:
            model = factory()
        except Exception as err:
            raise FacevoxError(f"the factory failed ({type(err).__name__}: {err})", network) from None
        if not isinstance(model, nn.Module):
            raise FacevoxError(f"the factory returned a {type(model).__name__}, not an nn.Module", network)
        return FeatureNet(model, stages, network, size, f"user network {network}").to(device)
    raise FacevoxError(f"feature network not found: give '{RANDOM_RESNET18}', a facevox model folder, "
                       "'package.module:factory' or 'none'", network)


def _from_model_folder(path: Path, stages: Sequence[str], size: tuple[int, int] | None) -> FeatureNet:
    from facevox.checkpoint import read_model_folder

    # image networks only: a speaker model takes waveforms
    folder = read_model_folder(path, task=("fakeface", "face", "invert"), use="a perceptual network (--features)")
    arch, task = folder.spec["name"], folder.task or folder.extra.get("task", "facevox")
    spec = folder.inference
    if size is None and task in ("face", "invert"):  # face embedders take crops of one size only
        size = spec.input_size
    elif size is None and task == "fakeface":  # a detector: the image size it was trained on
        size = (spec.load_size,) * 2
    elif size is None and hasattr(folder.model, "input_size"):
        size = tuple(folder.model.input_size)
    kind = {"fakeface": "GAN-face detector", "face": "face embedder"}.get(task, f"{task} model")
    return FeatureNet(folder.model, list(stages) or default_stages(folder.model), f"{task}-{arch}", size,
                      f"{kind} {arch} from {path}")
