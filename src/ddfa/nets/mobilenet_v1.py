"""MobileNet-V1 regressor of 3DDFA / 3DDFA_V2 (Howard et al. 2017, with a width multiplier).

Layer names follow the upstream checkpoints (``conv1``, ``bn1``, ``dw2_1`` … ``dw6``, ``fc``) so
their state dicts load without renaming.

Input:  (B, 3, 120, 120) float32, BGR channel order, normalised as ``(pixel - 127.5) / 128``.
Output: (B, num_outputs) float32; for the 3DDFA models the 62 *whitened* 3DMM parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

# (output channels at width 1.0, stride) of the 13 depthwise-separable blocks, in order.
_BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("dw2_1", 64, 1),
    ("dw2_2", 128, 2),
    ("dw3_1", 128, 1),
    ("dw3_2", 256, 2),
    ("dw4_1", 256, 1),
    ("dw4_2", 512, 2),
    ("dw5_1", 512, 1),
    ("dw5_2", 512, 1),
    ("dw5_3", 512, 1),
    ("dw5_4", 512, 1),
    ("dw5_5", 512, 1),
    ("dw5_6", 1024, 2),
    ("dw6", 1024, 1),
)


class DepthwiseSeparableBlock(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(
            in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False
        )
        self.bn_dw = nn.BatchNorm2d(in_channels)
        self.conv_sep = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(nn.Module):
    """MobileNet-V1 with width multiplier ``width`` (1.0 for ``mb1``, 0.5 for ``mb05``).

    Args:
        width: channel multiplier applied to every layer.
        num_outputs: size of the final linear layer (62 for 3DMM parameters).
        in_channels: input channels (3).
    """

    def __init__(self, width: float = 1.0, num_outputs: int = 62, in_channels: int = 3):
        super().__init__()
        self.width = float(width)
        self.num_outputs = int(num_outputs)
        channels = int(32 * width)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        for name, out_channels, stride in _BLOCKS:
            out_channels = int(out_channels * width)
            setattr(self, name, DepthwiseSeparableBlock(channels, out_channels, stride))
            channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_outputs)
        self.feature_channels = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled features (B, feature_channels)."""
        x = self.relu(self.bn1(self.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 120, 120) normalised BGR crops -> (B, num_outputs) whitened parameters."""
        return self.fc(self.features(x))


def width_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> float:
    """Infer the width multiplier from ``conv1.weight`` (32 * width output channels)."""
    weight = state_dict["conv1.weight"]
    return weight.shape[0] / 32.0
