"""Settings of the GAN-face detector (recipes in ``src/facevox/recipes/fakeface/``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from facevox.config import IMAGE_SIZE, PROB, SEED, TrainConfig, ranged
from facevox.image.transforms import AugmentSettings


@dataclasses.dataclass
class FakefaceData:
    # folder with real/ and fake/, CSV manifest path,label[,group columns], or a shard list (facevox data shard
    # --task fakeface: a folder with shard.list, or the .list file; shards of a split file keep its train/val)
    source: str = ""
    # decode the train and val images into RAM before training (true), per item in the DataLoader workers
    # (false), or auto: in RAM up to 2,000 images (facevox.datasets.index.IN_MEMORY_LIMIT), lazily above
    in_memory: Literal["auto", True, False] = "auto"
    split: str = ""  # split file to reuse or create; "" = OUT/split.csv
    # train / val / test, stratified; they sum to 1
    split_fractions: tuple[float, float, float] = ranged((0.7, 0.1, 0.2), **PROB)
    split_seed: int = ranged(0, **SEED)
    load_size: int = ranged(256, **IMAGE_SIZE)  # images are resized (shorter side) and centre-cropped to this square
    crop_size: int = ranged(224, **IMAGE_SIZE)  # random training crops; evaluation scores the whole load_size image
    augment: AugmentSettings = dataclasses.field(default_factory=AugmentSettings)
    # grey out this box (x0, y0, x1, y1 as fractions) in every image, e.g. a watermark
    mask: tuple[float, float, float, float] | None = ranged(None, **PROB)
    balance: Literal["weighted_loss", "sampler", "none"] = "weighted_loss"  # class imbalance
    skip_bad: bool = False  # skip undecodable images and list them, instead of stopping

    def cross_check(self) -> Iterator[tuple[str, str]]:
        """(field, problem) for each rule between values that is broken."""
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            yield "split_fractions", f"train, val and test fractions must sum to 1, got {list(self.split_fractions)}"
        if self.mask is not None:
            x0, y0, x1, y1 = self.mask
            if not (x0 < x1 and y0 < y1):
                yield "mask", f"a box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {list(self.mask)}"


@dataclasses.dataclass
class FakefaceModel:
    name: Literal["resnet50", "resnet18", "spectral_logreg"] = "resnet50"
    dropout: float = ranged(0.0, ge=0, lt=1)
    pretrained: str = ""  # torchvision ResNet state dict (.pth or .safetensors) to start from


@dataclasses.dataclass
class FakefaceDefence:
    """Training-time defence of the CNNs (facevox.defences): none, the neighbourhood of fixed perturbations, or PGD."""

    kind: Literal["none", "neighbourhood", "pgd"] = "none"
    copies: int = ranged(4, ge=1)  # neighbourhood: K fixed perturbed copies per training image
    eps: float = ranged(8 / 255, gt=0, le=1)  # L-inf radius in pixel units of [0, 1]
    draw: Literal["uniform", "gaussian"] = "uniform"  # neighbourhood: uniform in the ball, or Gaussian clipped to it
    pgd_steps: int = ranged(5, ge=1)  # pgd: projected gradient-ascent (sign) steps per batch
    pgd_step_size: float = ranged(0.25, gt=0, le=2)  # pgd: each step's length, as a fraction of eps
    mix: float = ranged(0.5, gt=0, le=1)  # pgd: fraction of each batch replaced by its adversarial examples


@dataclasses.dataclass
class FakefaceConfig:
    data: FakefaceData = dataclasses.field(default_factory=FakefaceData)
    model: FakefaceModel = dataclasses.field(default_factory=FakefaceModel)
    defence: FakefaceDefence = dataclasses.field(default_factory=FakefaceDefence)
    # the seed's recipe: Adam, learning rate 0.00015, batch 16
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=20, batch_size=16, lr=1.5e-4))

    def cross_check(self) -> Iterator[tuple[str, str]]:
        """The CNNs train on crops of the loaded image (the spectral baseline uses the whole image)."""
        d = self.data
        if self.model.name != "spectral_logreg" and not 32 <= d.crop_size <= d.load_size:
            yield "data.crop_size", f"need 32 <= crop_size <= load_size, got {d.crop_size} and {d.load_size}"
