"""IResNet-18 and IResNet-50 face embedders: the "improved ResNet" of ArcFace / InsightFace.

The residual unit is ArcFace's "IR" block (Deng, Guo, Xue and Zafeiriou, "ArcFace: additive angular
margin loss for deep face recognition", CVPR 2019, its "LResNet-E-IR" networks):
BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (stride here) -> BN, added to the shortcut with no
activation after the sum; the shortcut is a strided 1x1 conv + BN where the shape changes. InsightFace
calls these networks "iresnet" after Duta, Liu, Zhu and Shao, "Improved residual networks for image
and video recognition", ICPR 2020; the layer layout, however, is ArcFace's, not Duta et al.'s
start/middle/end stages or their max-pool projection shortcut. This file follows InsightFace's
``recognition/arcface_torch/backbones/iresnet.py`` (also used by opensphere):

- "L" input stage: a 3x3 stride-1 conv + BN + PReLU on the 112x112 crop, so the four stages
  (64, 128, 256 and 512 channels, each starting with a stride-2 block) end at a 7x7 map;
- "E" output stage: BN -> dropout -> flatten -> FC -> BN1d, whose BN1d scale is fixed at 1 (not
  trained), as in InsightFace;
- layers (2, 2, 2, 2) for IResNet-18 and (3, 4, 14, 3) for IResNet-50.

Parameter names are InsightFace's (``conv1``, ``bn1``, ``prelu``, ``layer1.0.bn1`` ... ``bn2``, ``fc``,
``features``), so an arcface_torch ``backbone.pth`` of the same size loads with ``load_state_dict``
(InsightFace also feeds RGB scaled to [-1, 1]). Parameter counts at 112x112 with 512-d embeddings,
the frozen BN1d scale included: IResNet-18 24,025,600 and IResNet-50 43,590,848, InsightFace's
quoted 24.0M and 43.6M. At 112x96 the FC sees a 7x6 map (21,504 inputs instead of 25,088), 1.8M fewer.

Inputs are RGB face crops in [0, 1], shape (B, 3, H, W) with (H, W) = ``input_size``; the model
normalises them itself to (x - 0.5) / 0.5, so callers pass plain pixels. Each PReLU is its own
module, used once. This file also holds the input handling shared by the other face backbones
(``sphere_cnn``, ``mobilefacenet``).
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.errors import FacevoxError
from facevox.nets.resnet import Normalize
from facevox.registry import register_model

FACE_MEAN = (0.5, 0.5, 0.5)  # pixels in [0, 1] -> [-1, 1], as InsightFace and opensphere feed them
FACE_STD = (0.5, 0.5, 0.5)
FACE_INPUT_SIZE = (112, 112)  # (height, width) of an aligned face crop; SphereFace's original is (112, 96)
FACE_DOWNSAMPLINGS = 4  # every face backbone here halves the crop four times: 112x112 -> 7x7, 112x96 -> 7x6


def face_map_size(input_size: tuple[int, int], model: str) -> tuple[int, int]:
    """Checked (H, W) of a face crop -> (h, w) of the final feature map after four stride-2 steps.

    A stride-2 3x3 conv with padding 1 maps n pixels to ceil(n / 2), so 112 -> 7 and 96 -> 6.
    Raises :class:`FacevoxError` when ``input_size`` is not two sizes of at least 16 pixels.
    """
    size = tuple(input_size)
    if len(size) != 2 or not all(isinstance(n, int) and n >= 16 for n in size):
        raise FacevoxError(f"{model}: input_size must be (height, width) of at least 16 pixels each, got {input_size}")
    return tuple(-(-n // 2**FACE_DOWNSAMPLINGS) for n in size)


def check_face_input(x: torch.Tensor, input_size: tuple[int, int], model: str) -> None:
    """Raise a readable error when ``x`` is not (B, 3, H, W) with (H, W) = ``input_size``."""
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != tuple(input_size):
        raise ValueError(f"{model} takes RGB crops (B, 3, {input_size[0]}, {input_size[1]}) in [0, 1], "
                         f"got {tuple(x.shape)}; build it with input_size=(H, W) to match the crops")


class IBasicBlock(nn.Module):
    """ArcFace's IR unit: BN-Conv-BN-PReLU-Conv-BN + shortcut, (B, C_in, H, W) -> (B, C, H/s, W/s)."""

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.prelu = nn.PReLU(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(ch)
        self.downsample = None
        if stride != 1 or in_ch != ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, ch, 1, stride=stride, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """Face crop (B, 3, H, W) in [0, 1] -> embedding (B, embed_dim).

    ``width`` is the first stage's channel count (64 in the paper; the stages have 1, 2, 4 and 8
    times as many); ``input_size`` (H, W) sizes the FC layer, which sees a (ceil(H/16), ceil(W/16))
    map; ``dropout`` is applied to the flattened map before the FC layer (ArcFace's "E" output).
    ``cam_layer`` (the last stage, (B, 8 * width, H/16, W/16)) is the layer Grad-CAM explains.
    """

    def __init__(self, layers: tuple[int, ...], embed_dim: int = 512,
                 input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        map_h, map_w = face_map_size(input_size, "iresnet")
        self.input_size = tuple(input_size)
        self.embed_dim = embed_dim
        self.example_input_shape = (3, *self.input_size)
        self.normalize = Normalize(FACE_MEAN, FACE_STD)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.prelu = nn.PReLU(width)
        in_ch = width
        for i, n in enumerate(layers):
            ch = width * 2**i
            blocks = [IBasicBlock(in_ch, ch, stride=2)] + [IBasicBlock(ch, ch) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = ch
        self.bn2 = nn.BatchNorm2d(in_ch)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_ch * map_h * map_w, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim)  # InsightFace's name for the embedding BN
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)  # InsightFace's initialisation
        self.features.weight.requires_grad = False  # scale fixed at 1: only the shift is learned

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_face_input(x, self.input_size, "iresnet")
        x = self.prelu(self.bn1(self.conv1(self.normalize(x))))  # (B, width, H, W)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 8 * width, H/16, W/16)
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


@register_model("iresnet18")
def iresnet18(*, embed_dim: int = 512, input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64,
              dropout: float = 0.0) -> IResNet:
    """IResNet-18 face embedder (ArcFace IR blocks 2-2-2-2, 24.0M params); input RGB in [0, 1]."""
    return IResNet((2, 2, 2, 2), embed_dim, input_size, width, dropout)


@register_model("iresnet50")
def iresnet50(*, embed_dim: int = 512, input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64,
              dropout: float = 0.0) -> IResNet:
    """IResNet-50 face embedder (ArcFace IR blocks 3-4-14-3, 43.6M params); input RGB in [0, 1]."""
    return IResNet((3, 4, 14, 3), embed_dim, input_size, width, dropout)
