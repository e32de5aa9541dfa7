"""Settings of face verification (recipes in ``src/facevox/recipes/face/``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from facevox.config import IMAGE_SIZE, TrainConfig, ranged


@dataclasses.dataclass
class FaceData:
    # folder per identity of aligned face crops (facevox face align makes them), or a shard list (facevox data
    # shard --task face: a folder with shard.list, or the .list file)
    train: str = ""
    # decode the crops into RAM before training (true), per item in the DataLoader workers (false), or
    # auto: in RAM up to 2,000 images (facevox.datasets.index.IN_MEMORY_LIMIT), lazily above
    in_memory: Literal["auto", True, False] = "auto"
    # (height, width); SphereFace's original is (112, 96)
    input_size: tuple[int, int] = ranged((112, 112), **IMAGE_SIZE)
    flip: bool = True  # random horizontal flips in training
    min_images: int = ranged(2, ge=1)  # identities with fewer images are left out of training
    skip_bad: bool = False  # skip undecodable images and list them, instead of stopping
    # identities held out of training to set verify's threshold (0: no threshold)
    calib_identities: int = ranged(0, ge=0)


@dataclasses.dataclass
class FaceModel:
    backbone: str = "iresnet18"  # any registered face backbone: sphere20, iresnet18, iresnet50, mobilefacenet
    backbone_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    embed_dim: int = ranged(512, ge=1)


@dataclasses.dataclass
class FaceLoss:
    name: str = "sphereface2"  # softmax, normface, cosface, arcface, sphereface, sphereface_r, sphereface2
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    margin_warmup_epochs: float = ranged(0.0, ge=0)  # the margin ramps linearly from "no margin" over this many epochs


@dataclasses.dataclass
class FaceScoring:
    flip: bool = True  # embed each image and its mirror image and add the two (SphereFace, ArcFace)
    target_far: float = ranged(0.001, gt=0, lt=1)  # verify's decision threshold is set at this false-accept rate


@dataclasses.dataclass
class FaceConfig:
    data: FaceData = dataclasses.field(default_factory=FaceData)
    model: FaceModel = dataclasses.field(default_factory=FaceModel)
    loss: FaceLoss = dataclasses.field(default_factory=FaceLoss)
    scoring: FaceScoring = dataclasses.field(default_factory=FaceScoring)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=20, batch_size=32, lr=1e-3))
