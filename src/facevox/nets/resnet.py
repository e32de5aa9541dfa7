"""ResNet-18 and ResNet-50 image classifiers (He et al., "Deep residual learning for image
recognition", CVPR 2016), written in-tree.

The parameter names follow torchvision's ``resnet18``/``resnet50`` (``conv1``, ``bn1``,
``layer1.0.conv1`` ... ``fc``), so an ImageNet checkpoint saved from torchvision loads with
:func:`load_torchvision_weights` (the ``fc`` layer is left out when the class count differs).

Inputs are RGB images in [0, 1], shape (B, 3, H, W), any size of at least 32 pixels (global
average pooling). The ImageNet mean/std normalisation is the first layer of the model, so
every caller (training, prediction, saliency) feeds plain pixels. Each use of a ReLU is its own
``nn.ReLU`` module that is not in-place: Guided Backpropagation hooks every ReLU once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facevox.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, with fixed buffers (not trained, not in the state dict)."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 with a residual connection: (B, C_in, H, W) -> (B, C, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu2 = nn.ReLU()
        self.downsample = _downsample(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as torchvision's "ResNet v1.5") -> 1x1 with 4x expansion."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu3 = nn.ReLU()
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> logits (B, num_classes).

    ``features(x)`` gives the last convolutional map (B, C, H/32, W/32): the layer Grad-CAM
    explains (``cam_layer``). ``dropout`` is applied to the pooled features before ``fc``.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...], num_classes: int = 1,
                 width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = width
        for i, n in enumerate(layers):
            ch = width * 2**i
            blocks = [block(in_ch, ch, 1 if i == 0 else 2)]
            in_ch = ch * block.expansion
            blocks += [block(in_ch, ch) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_ch, num_classes)
        self.num_features = in_ch
        self.num_classes = num_classes
        self.example_input_shape = (3, 64, 64)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: each block starts as identity
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))


def load_torchvision_weights(model: ResNet, path: str | Path) -> list[str]:
    """Load a torchvision ResNet state dict (``torch.save(resnet.state_dict(), path)``) into ``model``.

    Returns the keys left at their initial values (``fc.*`` when the class count differs).
    Raises :class:`FacevoxError` naming the file when it cannot be read or does not fit.
    """
    from facevox.checkpoint import load_weights

    return load_weights(model, path, what="this ResNet", optional="fc.")


@register_model("resnet18")
def resnet18(*, num_classes: int = 1, width: int = 64, dropout: float = 0.0) -> ResNet:
    """ResNet-18 image classifier (BasicBlocks 2-2-2-2); input RGB in [0, 1]."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, width, dropout)


@register_model("resnet50")
def resnet50(*, num_classes: int = 1, width: int = 64, dropout: float = 0.0) -> ResNet:
    """ResNet-50 image classifier (Bottlenecks 3-4-6-3), as in the seed's GAN-face detector."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, width, dropout)
