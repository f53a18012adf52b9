"""FaceBoxes network (Zhang et al., "FaceBoxes: A CPU Real-time Face Detector with High
Accuracy", IJCB 2017), with the layer names of the ``FaceBoxesProd.pth`` checkpoint.

Input:  (B, 3, H, W) float32 BGR image minus the per-channel means (104, 117, 123).
Output: ``loc`` (B, P, 4) box offsets and ``logits`` (B, P, 2) background/face logits, for the
P priors of :func:`ddfa.detect.faceboxes.priors.prior_boxes` in the same order (feature maps of
strides 32, 64, 128; row-major cells; anchors within a cell).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvBnRelu(nn.Module):
    """Conv (no bias) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class ConcatenatedRelu(nn.Module):
    """Conv + BatchNorm, then ReLU of ``[x, -x]`` (C.ReLU): doubles the channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(torch.cat([x, -x], dim=1), inplace=True)


class Inception(nn.Module):
    """128 -> 128 channels: 1x1 | avgpool+1x1 | 1x1,3x3 | 1x1,3x3,3x3 (32 channels each)."""

    def __init__(self):
        super().__init__()
        self.branch1x1 = ConvBnRelu(128, 32, 1)
        self.branch1x1_2 = ConvBnRelu(128, 32, 1)
        self.branch3x3_reduce = ConvBnRelu(128, 24, 1)
        self.branch3x3 = ConvBnRelu(24, 32, 3, padding=1)
        self.branch3x3_reduce_2 = ConvBnRelu(128, 24, 1)
        self.branch3x3_2 = ConvBnRelu(24, 32, 3, padding=1)
        self.branch3x3_3 = ConvBnRelu(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch1x1_2(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        c = self.branch3x3(self.branch3x3_reduce(x))
        d = self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x)))
        return torch.cat([a, b, c, d], dim=1)


#: anchors per cell of each detection layer: 21 = 4x4 dense 32px + 2x2 dense 64px + one 128px
ANCHORS_PER_CELL = (21, 1, 1)


class FaceBoxesNet(nn.Module):
    """The FaceBoxes detector network (rapidly digested + multiple scale conv layers)."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConcatenatedRelu(3, 24, kernel=7, stride=4, padding=3)
        self.conv2 = ConcatenatedRelu(48, 64, kernel=5, stride=2, padding=2)
        self.inception1 = Inception()
        self.inception2 = Inception()
        self.inception3 = Inception()
        self.conv3_1 = ConvBnRelu(128, 128, 1)
        self.conv3_2 = ConvBnRelu(128, 256, 3, stride=2, padding=1)
        self.conv4_1 = ConvBnRelu(256, 128, 1)
        self.conv4_2 = ConvBnRelu(128, 256, 3, stride=2, padding=1)
        in_channels = (128, 256, 256)
        self.loc = nn.ModuleList(
            nn.Conv2d(c, n * 4, 3, padding=1) for c, n in zip(in_channels, ANCHORS_PER_CELL)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(c, n * 2, 3, padding=1) for c, n in zip(in_channels, ANCHORS_PER_CELL)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv1(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.conv2(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.inception3(self.inception2(self.inception1(x)))
        sources = [x]
        x = self.conv3_2(self.conv3_1(x))
        sources.append(x)
        x = self.conv4_2(self.conv4_1(x))
        sources.append(x)
        batch = x.shape[0]
        loc = torch.cat(
            [head(s).permute(0, 2, 3, 1).reshape(batch, -1, 4) for head, s in zip(self.loc, sources)], dim=1
        )
        logits = torch.cat(
            [head(s).permute(0, 2, 3, 1).reshape(batch, -1, 2) for head, s in zip(self.conf, sources)], dim=1
        )
        return loc, logits

