"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016): ``depth = 6n + 4``, widen factor k.

Layout: stem conv3x3(in, 16); three groups of n pre-activation blocks with widths 16k,
32k, 64k (stride 2 at the start of groups 2 and 3); BN -> ReLU -> global average pooling ->
Linear(64k, classes). A block is ``conv2(drop(relu(bn2(conv1(relu(bn1(x))))))) +
shortcut(x)`` where the shortcut is a 1x1 conv when the shape changes, else the identity.
Maskable layers, in order: the stem conv, per block conv1, conv2 (and the 1x1 shortcut
conv, registered last in its block), then the Linear. ``first_layer_dense`` /
``last_layer_dense`` make the stem conv / the head dense. Edge-popup: non-affine BN, no
biases.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from snas.core.catalog import WideResNetOptions
from trainables.kernels import MaskKernel
from trainables.models._wiring import ChannelGraph, make_conv, make_linear, walk_resnet


class WideBlock(nn.Module):
    """Pre-activation basic block with optional dropout between the two convs."""

    def __init__(self, in_c: int, out_c: int, stride: int, dropout: float, kernel: MaskKernel):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_c, affine=kernel.affine_norm)
        self.conv1 = make_conv(in_c, out_c, 3, stride=stride, padding=1, kernel=kernel)
        self.bn2 = nn.BatchNorm2d(out_c, affine=kernel.affine_norm)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = make_conv(out_c, out_c, 3, padding=1, kernel=kernel)
        self.shortcut = (make_conv(in_c, out_c, 1, stride=stride, kernel=kernel)
                         if stride != 1 or in_c != out_c else None)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        h = self.conv2(self.drop(F.relu(self.bn2(self.conv1(a)))))
        return h + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    """WRN-depth-k; see the module docstring."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 options: WideResNetOptions, kernel: MaskKernel):
        super().__init__()
        n = (options.depth - 4) // 6
        k = options.widen_factor
        self.in_channels = input_shape[0]
        self.conv1 = make_conv(input_shape[0], 16, 3, padding=1, kernel=kernel,
                               dense=options.first_layer_dense)
        blocks, stages = [], []
        in_c = 16
        for stage, width in enumerate((16 * k, 32 * k, 64 * k)):
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                blocks.append(WideBlock(in_c, width, stride, options.dropout, kernel))
                stages.append(stage)
                in_c = width
        self.blocks = nn.Sequential(*blocks)
        self.block_stages = stages
        self.bn = nn.BatchNorm2d(in_c, affine=kernel.affine_norm)
        self.fc = make_linear(in_c, num_classes, kernel=kernel, dense=options.last_layer_dense)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.conv1(x))
        h = F.relu(self.bn(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def wiring_graph(self, max_edges: int | None = None):
        """Channel-level wiring (see :mod:`trainables.models._wiring`)."""
        blocks = [([b.conv1, b.conv2], b.shortcut) for b in self.blocks]
        return walk_resnet(ChannelGraph(max_edges), [self.conv1], blocks, self.fc,
                           self.in_channels, self.block_stages)


def build_wide_resnet(options: WideResNetOptions, kernel: MaskKernel,
                      input_shape: tuple[int, ...], num_classes: int) -> WideResNet:
    return WideResNet(input_shape, num_classes, options, kernel)
