"""Settings of face verification (recipes in ``recipes/face/``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from facevox.config import TrainConfig


@dataclasses.dataclass
class FaceData:
    train: str = ""  # folder per identity of aligned face crops (facevox face align makes them)
    input_size: tuple[int, int] = (112, 112)  # (height, width); SphereFace's original is (112, 96)
    flip: bool = True  # random horizontal flips in training
    min_images: int = 2  # identities with fewer images are left out of training
    skip_bad: bool = False  # skip undecodable images and list them, instead of stopping
    calib_identities: int = 0  # identities held out of training to set verify's threshold (0: no threshold)


@dataclasses.dataclass
class FaceModel:
    backbone: str = "iresnet18"  # any registered face backbone: sphere20, iresnet18, iresnet50, mobilefacenet
    backbone_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    embed_dim: int = 512


@dataclasses.dataclass
class FaceLoss:
    name: str = "sphereface2"  # softmax, normface, cosface, arcface, sphereface, sphereface_r, sphereface2
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    margin_warmup_epochs: float = 0.0  # the margin ramps linearly from "no margin" over this many epochs


@dataclasses.dataclass
class FaceScoring:
    flip: bool = True  # embed each image and its mirror image and add the two (SphereFace, ArcFace)
    target_far: float = 0.001  # verify's decision threshold is set at this false-accept rate


@dataclasses.dataclass
class FaceConfig:
    data: FaceData = dataclasses.field(default_factory=FaceData)
    model: FaceModel = dataclasses.field(default_factory=FaceModel)
    loss: FaceLoss = dataclasses.field(default_factory=FaceLoss)
    scoring: FaceScoring = dataclasses.field(default_factory=FaceScoring)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=20, batch_size=32, lr=1e-3))
