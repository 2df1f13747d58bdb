"""CIFAR ResNet (He et al. 2016, section 4.2): ``depth = 6n + 2``.

Layout: stem conv3x3(in, w) -> BN -> ReLU; three stages of n basic blocks with widths
w, 2w, 4w (w = ``base_width``, 16 in the paper), the first block of stages 2 and 3 with
stride 2; global average pooling; Linear(4w, classes). A basic block is
``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))``; the shortcut is the paper's
option A (identity, subsampled with stride 2 and zero-padded to the new width where the
shape changes), so the network has exactly ``depth`` weight layers: 1 stem conv + 6n block
convs + 1 Linear, and they are the maskable layers, in that order. ``first_layer_dense`` /
``last_layer_dense`` make the stem conv / the head plain dense layers, which then leave the
density vector. BatchNorm is non-affine and nothing has a bias for edge-popup.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from snas.core.catalog import ResNetCifarOptions
from trainables.kernels import MaskKernel
from trainables.models._wiring import ChannelGraph, make_conv, make_linear, walk_resnet


class BasicBlock(nn.Module):
    """Two 3x3 convs with an option-A (parameter-free) shortcut."""

    def __init__(self, in_c: int, out_c: int, stride: int, kernel: MaskKernel):
        super().__init__()
        self.conv1 = make_conv(in_c, out_c, 3, stride=stride, padding=1, kernel=kernel)
        self.bn1 = nn.BatchNorm2d(out_c, affine=kernel.affine_norm)
        self.conv2 = make_conv(out_c, out_c, 3, padding=1, kernel=kernel)
        self.bn2 = nn.BatchNorm2d(out_c, affine=kernel.affine_norm)
        self.stride, self.pad = stride, out_c - in_c

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR ResNet-(6n+2); see the module docstring."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 options: ResNetCifarOptions, kernel: MaskKernel):
        super().__init__()
        n = (options.depth - 2) // 6
        w = options.base_width
        self.in_channels = input_shape[0]
        self.conv1 = make_conv(input_shape[0], w, 3, padding=1, kernel=kernel,
                               dense=options.first_layer_dense)
        self.bn1 = nn.BatchNorm2d(w, affine=kernel.affine_norm)
        blocks, stages = [], []
        in_c = w
        for stage, width in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                blocks.append(BasicBlock(in_c, width, 2 if (i == 0 and stage > 0) else 1, kernel))
                stages.append(stage)
                in_c = width
        self.blocks = nn.Sequential(*blocks)
        self.block_stages = stages
        self.fc = make_linear(in_c, num_classes, kernel=kernel, dense=options.last_layer_dense)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.blocks(h)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def wiring_graph(self, max_edges: int | None = None):
        """Channel-level wiring (see :mod:`trainables.models._wiring`)."""
        blocks = [([b.conv1, b.conv2], None) for b in self.blocks]
        return walk_resnet(ChannelGraph(max_edges), [self.conv1], blocks, self.fc,
                           self.in_channels, self.block_stages)


def build_resnet_cifar(options: ResNetCifarOptions, kernel: MaskKernel,
                       input_shape: tuple[int, ...], num_classes: int) -> ResNetCifar:
    return ResNetCifar(input_shape, num_classes, options, kernel)
