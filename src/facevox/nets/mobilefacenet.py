"""MobileFaceNet (Chen, Liu, Gao and Han, "MobileFaceNets: efficient CNNs for accurate real-time face
verification on mobile devices", CCBR 2018, arXiv:1804.07573), table 1.

MobileNetV2-style inverted residual bottlenecks (1x1 expansion conv -> 3x3 depthwise conv -> linear
1x1 projection, with a shortcut when the shape is kept), PReLU activations and batch norm after every
conv. Instead of global average pooling, a "global depthwise convolution" (GDConv: a depthwise conv
whose kernel is the whole final map, one learned spatial weighting per channel) reduces the map to
a vector, so centre and border pixels of the face weigh differently. Table 1, for a 112x112 input:

    input      operator               t    c     n   s
    112x112x3  conv3x3                -    64    1   2
    56x56x64   depthwise conv3x3      -    64    1   1
    56x56x64   bottleneck             2    64    5   2
    28x28x64   bottleneck             4    128   1   2
    14x14x128  bottleneck             2    128   6   1
    14x14x128  bottleneck             4    128   1   2
    7x7x128    bottleneck             2    128   2   1
    7x7x128    conv1x1                -    512   1   1
    7x7x512    linear GDConv7x7       -    512   1   1
    1x1x512    linear conv1x1         -    128   1   1

(t: expansion factor, c: output channels, n: repeats, s: stride of the first repeat.) The last
"linear conv1x1" on the 1x1 map is written as a bias-free ``nn.Linear`` followed by BatchNorm1d. The
GDConv kernel is the final map's size: 7x7 at 112x112, 7x6 at 112x96 (``input_size``).

Parameters at 112x112: 1,003,136 with the paper's 128-d embedding (976,000 conv and FC weights,
the rest BN and PReLU parameters; the paper quotes "0.99 million") and 221.0M multiply-adds, the
paper's 221M; 1,200,512 with the default 512-d embedding (the ~1.2M quoted for 512-d MobileFaceNets).
At 112x96 only the GDConv kernel shrinks (7x6 instead of 7x7): 512 x 7 = 3,584 fewer.

Inputs are RGB face crops in [0, 1], shape (B, 3, H, W) with (H, W) = ``input_size``; the model
normalises them itself to (x - 0.5) / 0.5, so callers pass plain pixels. Each PReLU is its own
module, used once.
"""

from __future__ import annotations

import torch
from torch import nn

from facevox.nets.iresnet import FACE_INPUT_SIZE, FACE_MEAN, FACE_STD, check_face_input, face_map_size
from facevox.nets.resnet import Normalize
from facevox.registry import register_model

# table 1's bottleneck rows as (expansion t, output channels in units of width, repeats n, stride s)
BOTTLENECKS = ((2, 1, 5, 2), (4, 2, 1, 2), (2, 2, 6, 1), (4, 2, 1, 2), (2, 2, 2, 1))
HEAD_CHANNELS = 8  # the 1x1 conv before GDConv has 8 * width channels (512 in the paper)


def _conv_bn(in_ch: int, ch: int, kernel: int | tuple[int, int], stride: int = 1, groups: int = 1,
             prelu: bool = True) -> nn.Sequential:
    """Conv (no bias) + BN (+ PReLU): (B, C_in, H, W) -> (B, C, H', W'); 'same' padding for odd kernels."""
    padding = (kernel - 1) // 2 if isinstance(kernel, int) else 0
    layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, kernel, stride, padding, groups=groups, bias=False),
                               nn.BatchNorm2d(ch)]
    return nn.Sequential(*layers, *([nn.PReLU(ch)] if prelu else []))


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand (t x) -> 3x3 depthwise (stride s) -> linear 1x1 project.

    (B, C_in, H, W) -> (B, C, H/s, W/s), plus the input when s = 1 and C_in = C.
    """

    def __init__(self, in_ch: int, ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = _conv_bn(in_ch, hidden, 1)
        self.depthwise = _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.project = _conv_bn(hidden, ch, 1, prelu=False)  # linear: no activation on the narrow output
        self.residual = stride == 1 and in_ch == ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    """Face crop (B, 3, H, W) in [0, 1] -> embedding (B, embed_dim).

    ``width`` is the first layers' channel count (64 in the paper; later layers have 2x and 8x as
    many). ``cam_layer`` (the 1x1 conv before GDConv, (B, 8 * width, H/16, W/16)) is the layer
    Grad-CAM explains.
    """

    def __init__(self, embed_dim: int = 512, input_size: tuple[int, int] = FACE_INPUT_SIZE, width: int = 64) -> None:
        super().__init__()
        map_size = face_map_size(input_size, "mobilefacenet")
        self.input_size = tuple(input_size)
        self.embed_dim = embed_dim
        self.example_input_shape = (3, *self.input_size)
        self.normalize = Normalize(FACE_MEAN, FACE_STD)
        self.conv1 = _conv_bn(3, width, 3, stride=2)
        self.conv2_dw = _conv_bn(width, width, 3, groups=width)
        blocks, in_ch = [], width
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                blocks.append(Bottleneck(in_ch, c * width, s if i == 0 else 1, t))
                in_ch = c * width
        self.blocks = nn.Sequential(*blocks)
        head = HEAD_CHANNELS * width
        self.conv_sep = _conv_bn(in_ch, head, 1)
        self.gdconv = _conv_bn(head, head, map_size, groups=head, prelu=False)  # linear GDConv: (B, C, 1, 1)
        self.fc = nn.Linear(head, embed_dim, bias=False)  # the table's "linear conv1x1" on the 1x1 map
        self.bn_fc = nn.BatchNorm1d(embed_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    @property
    def cam_layer(self) -> nn.Module:
        return self.conv_sep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_face_input(x, self.input_size, "mobilefacenet")
        x = self.conv2_dw(self.conv1(self.normalize(x)))  # (B, width, H/2, W/2)
        x = self.conv_sep(self.blocks(x))  # (B, 8 * width, H/16, W/16)
        return self.bn_fc(self.fc(self.gdconv(x).flatten(1)))


@register_model("mobilefacenet")
def mobilefacenet(*, embed_dim: int = 512, input_size: tuple[int, int] = FACE_INPUT_SIZE,
                  width: int = 64) -> MobileFaceNet:
    """MobileFaceNet face embedder (Chen et al. 2018, GDConv head; 1.2M params); input RGB in [0, 1]."""
    return MobileFaceNet(embed_dim, input_size, width)
