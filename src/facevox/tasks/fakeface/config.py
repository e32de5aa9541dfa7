"""Settings of the GAN-face detector (recipes in ``recipes/fakeface/``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from facevox.config import TrainConfig
from facevox.image.transforms import AugmentSettings


@dataclasses.dataclass
class FakefaceData:
    source: str = ""  # folder with real/ and fake/, or CSV manifest path,label[,group columns]
    split: str = ""  # split file to reuse or create; "" = OUT/split.csv
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train / val / test, stratified
    split_seed: int = 0
    load_size: int = 256  # every image is resized (shorter side) and centre-cropped to this square
    crop_size: int = 224  # random training crops; evaluation scores the whole load_size image
    augment: AugmentSettings = dataclasses.field(default_factory=AugmentSettings)
    # grey out this box (x0, y0, x1, y1 as fractions) in every image, e.g. a watermark
    mask: tuple[float, float, float, float] | None = None
    balance: Literal["weighted_loss", "sampler", "none"] = "weighted_loss"  # class imbalance
    skip_bad: bool = False  # skip undecodable images and list them, instead of stopping


@dataclasses.dataclass
class FakefaceModel:
    name: Literal["resnet50", "resnet18", "spectral_logreg"] = "resnet50"
    dropout: float = 0.0
    pretrained: str = ""  # torchvision ResNet state dict (.pth or .safetensors) to start from


@dataclasses.dataclass
class FakefaceConfig:
    data: FakefaceData = dataclasses.field(default_factory=FakefaceData)
    model: FakefaceModel = dataclasses.field(default_factory=FakefaceModel)
    # the seed's recipe: Adam, learning rate 0.00015, batch 16
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=20, batch_size=16, lr=1.5e-4))
