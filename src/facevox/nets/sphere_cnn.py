"""SphereFace's 20-layer residual CNN (``sphere20``): Liu, Wen, Yu, Li, Raj and Song, "SphereFace:
deep hypersphere embedding for face recognition", CVPR 2017, table 2 ("20-layer CNN").

Four stages of 64, 128, 256 and 512 channels. Each stage starts with a 3x3 stride-2 conv + PReLU
and then has 1, 2, 4 and 1 residual units; a unit is two 3x3 convs, each followed by a PReLU,
added to its input (no activation after the sum). Four strided convs and 16 unit convs are the 20
layers; a fully connected layer on the flattened (512, H/16, W/16) map gives the embedding. There is
no pooling: ``input_size`` sizes that layer (7x6 map at SphereFace's 112x96 crops, 7x7 at 112x112).

Two variants, chosen with ``batchnorm``:

- ``batchnorm=False`` (default): the paper's network as released in Caffe
  (``sphereface_model.prototxt``) and its PyTorch ports: no batch norm, biases on the four strided
  convs only (opensphere's port also keeps zero-initialised biases on the unit convs, 3,712 more
  parameters), strided convs and FC Xavier-initialised, unit convs Gaussian with std 0.01 (each unit
  starts close to the identity), PReLU slopes 0.25. Parameters at 112x96 with a 512-d embedding:
  22,666,944 (the FC alone 11,010,560); with the A-Softmax classifier for CASIA-WebFace's 10,574
  identities (512 x 10,574 = 5,413,888) that is 28.08M, the "about 28M" usually quoted for
  SphereFace-20. At 112x112: 24,501,952.
- ``batchnorm=True``: the same network with a BatchNorm after every conv (the convs then have no
  biases) and a BatchNorm1d on the embedding, as later SphereFace-family code adds it (opensphere's
  SFNet, though with ReLU); more forgiving to train from scratch at high learning rates.
  22,676,352 parameters at 112x96, 24,511,360 at 112x112.

Inputs are RGB face crops in [0, 1], shape (B, 3, H, W) with (H, W) = ``input_size``; the model
normalises them itself to (x - 0.5) / 0.5 (SphereFace used (x - 127.5) / 128 on 0-255 pixels), so
callers pass plain pixels. Each PReLU is its own module, used once.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.nets.iresnet import FACE_INPUT_SIZE, FACE_MEAN, FACE_STD, check_face_input, face_map_size
from facevox.nets.resnet import Normalize
from facevox.registry import register_model

SPHERE20_UNITS = (1, 2, 4, 1)  # residual units per stage in SphereFace's 20-layer CNN
UNIT_INIT_STD = 0.01  # Caffe model's Gaussian std for the convs inside residual units


def _conv_prelu(in_ch: int, ch: int, stride: int, batchnorm: bool) -> nn.Sequential:
    """3x3 conv (+ BN) + PReLU: (B, C_in, H, W) -> (B, C, H/s, W/s), initialised as the Caffe model.

    A strided conv (a stage's first layer) has a bias (unless followed by BN) and Xavier weights; a
    conv inside a residual unit has no bias and Gaussian weights with std 0.01.
    """
    strided = stride != 1
    conv = nn.Conv2d(in_ch, ch, 3, stride=stride, padding=1, bias=strided and not batchnorm)
    if strided:
        nn.init.xavier_uniform_(conv.weight)
    else:
        nn.init.normal_(conv.weight, 0.0, UNIT_INIT_STD)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, *([nn.BatchNorm2d(ch)] if batchnorm else []), nn.PReLU(ch))


class SphereUnit(nn.Module):
    """x + PReLU(conv(PReLU(conv(x)))), 3x3 convs at constant shape (B, C, H, W)."""

    def __init__(self, ch: int, batchnorm: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_prelu(ch, ch, 1, batchnorm), _conv_prelu(ch, ch, 1, batchnorm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SphereCNN(nn.Module):
    """Face crop (B, 3, H, W) in [0, 1] -> embedding (B, embed_dim).

    ``width`` is the first stage's channel count (64 in the paper; the stages have 1, 2, 4 and 8
    times as many); ``units`` the residual units per stage. ``cam_layer`` (the last stage,
    (B, 8 * width, H/16, W/16)) is the layer Grad-CAM explains.
    """

    def __init__(self, units: tuple[int, ...] = SPHERE20_UNITS, embed_dim: int = 512,
                 input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64, batchnorm: bool = False) -> None:
        super().__init__()
        map_h, map_w = face_map_size(input_size, "sphere20")
        self.input_size = tuple(input_size)
        self.embed_dim = embed_dim
        self.example_input_shape = (3, *self.input_size)
        self.normalize = Normalize(FACE_MEAN, FACE_STD)
        in_ch = 3
        for i, n in enumerate(units):
            ch = width * 2**i
            stage = [_conv_prelu(in_ch, ch, 2, batchnorm)] + [SphereUnit(ch, batchnorm) for _ in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            in_ch = ch
        self.fc = nn.Linear(in_ch * map_h * map_w, embed_dim)
        self.bn_fc = nn.BatchNorm1d(embed_dim) if batchnorm else nn.Identity()
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_face_input(x, self.input_size, "sphere20")
        x = self.normalize(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 8 * width, H/16, W/16)
        return self.bn_fc(self.fc(x.flatten(1)))


@register_model("sphere20")
def sphere20(*, embed_dim: int = 512, input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64,
             batchnorm: bool = False) -> SphereCNN:
    """SphereFace 20-layer residual CNN with PReLU (CVPR 2017; 24.5M params at 112x112); input RGB in [0, 1]."""
    return SphereCNN(SPHERE20_UNITS, embed_dim, input_size, width, batchnorm)
