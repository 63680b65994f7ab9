"""ResNet-18 and ResNet-50 image encoders (He et al. 2016), in the torchvision layout, for any number of bands.

Written here rather than imported because torchvision cannot be installed beside lightning in this
environment. The module and parameter names follow torchvision exactly (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` ...), so a torchvision ``state_dict`` with its ``fc.*`` entries removed loads with
``strict=True`` when ``in_channels=3`` and ``small_input=False``.

Details that matter for reproducing published numbers:

- Stem: 7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max-pool (``small_input=False``, ImageNet-style).
  ``small_input=True`` swaps it for a 3x3 stride-1 conv and no max-pool, the CIFAR-style stem used by
  SimCLR for 32-px images: on 64-px galaxy cutouts the ImageNet stem shrinks the image 4x before the first
  block, leaving a 2x2 map at ``layer4``; the small stem keeps it at 8x8, at ~15x the compute
  (2.2 vs 0.15 GMAC per 64-px image for ResNet-18).
- Bottleneck blocks put the stride on the 3x3 conv (ResNet "v1.5", as torchvision does), not the first 1x1.
- Init: kaiming-normal (fan_out, ReLU) for convs, BN gamma=1 / beta=0; ``zero_init_residual=True`` zeroes
  the last BN gamma of every block so each residual branch starts at zero (the block at identity) (Goyal et al. 2017).
- The classifier (``fc``) is removed: ``forward`` returns the globally average-pooled features,
  ``embed_dim`` = 512 (ResNet-18) or 2048 (ResNet-50).
"""

from __future__ import annotations

import torch
from torch import nn

from astroembed.models._checks import check_images
from astroembed.models.registry import IMAGE_ARCHITECTURES

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride: v1.5), 1x1 expand x4, with a residual connection (ResNet-50+)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3


class ResNet(nn.Module):
    """A ResNet trunk without classifier: (N, in_channels, H, W) -> (N, embed_dim).

    Parameters
    ----------
    block
        :class:`BasicBlock` or :class:`Bottleneck`.
    layers
        number of blocks in each of the four stages, e.g. ``[2, 2, 2, 2]``.
    in_channels
        number of image bands.
    small_input
        use the 3x3 stride-1 stem without max-pool (for 32-96 px cutouts).
    zero_init_residual
        start every residual branch at zero (last BN gamma = 0).
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], in_channels: int = 3,
                 small_input: bool = False, zero_init_residual: bool = False):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.inplanes = 64
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.embed_dim = 512 * block.expansion

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``layer4`` feature map, (N, embed_dim, H', W'), before pooling."""
        check_images(x, self.in_channels)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.forward_features(x)), 1)


def resnet18(in_channels: int = 3, small_input: bool = False, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 trunk (BasicBlock, [2, 2, 2, 2]); ``embed_dim`` = 512, 11,176,512 parameters for 3 bands."""
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, small_input, zero_init_residual)


def resnet50(in_channels: int = 3, small_input: bool = False, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 trunk (Bottleneck, [3, 4, 6, 3]); ``embed_dim`` = 2048, 23,508,032 parameters for 3 bands."""
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, small_input, zero_init_residual)


for _name, _make in (("resnet18", resnet18), ("resnet50", resnet50)):
    IMAGE_ARCHITECTURES.register(
        _name, lambda cfg, make=_make: make(cfg.in_channels, small_input=cfg.small_input,
                                            zero_init_residual=cfg.zero_init_residual),
        options=("small_input", "zero_init_residual"))
