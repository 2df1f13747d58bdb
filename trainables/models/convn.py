"""Conv2 / Conv4 / Conv6 / Conv8: the VGG-like networks of the edge-popup paper (table 1).

ConvN has N/2 pairs of 3x3 convs (padding 1) with 64, 128, 256, 512 channels, each pair
followed by 2x2 max-pooling, then FC 256 -> FC 256 -> FC classes on the flattened feature
map; every width is multiplied by ``width_multiplier`` (rounded, at least 1). ReLU after
every layer but the last. As in the paper's code there is no normalisation unless
``batch_norm: true`` (non-affine for edge-popup). Maskable layers, in order: the N convs,
then the 3 FC layers; ``first_layer_dense`` / ``last_layer_dense`` make the first conv /
the last FC dense. Convs and FC layers have biases unless the kernel forbids them
(edge-popup), as torch's defaults do.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from snas.core.catalog import ConvNOptions
from snas.core.errors import ConfigError
from trainables.kernels import MaskKernel
from trainables.models._wiring import ChannelGraph, make_conv, make_linear

CONV_WIDTHS = (64, 128, 256, 512)
FC_WIDTHS = (256, 256)


class ConvN(nn.Module):
    """``depth`` convs in pairs, max-pooling after each pair, three FC layers."""

    def __init__(self, depth: int, input_shape: tuple[int, ...], num_classes: int,
                 options: ConvNOptions, kernel: MaskKernel):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"model conv{depth} needs image input (channels, height, width), "
                              f"got input shape {list(input_shape)}")
        c, h, w = input_shape
        pairs = depth // 2
        if h >> pairs < 1 or w >> pairs < 1:
            raise ConfigError(f"model conv{depth} pools {pairs} times and needs inputs of at "
                              f"least {2 ** pairs}x{2 ** pairs}, got {h}x{w}")
        scale = options.width_multiplier

        def width(x: int) -> int:
            return max(1, round(x * scale))

        self.in_channels = c
        convs: list[nn.Module] = []
        norms: list[nn.Module] = []
        for i in range(depth):
            out_c = width(CONV_WIDTHS[i // 2])
            convs.append(make_conv(c, out_c, 3, padding=1, bias=True, kernel=kernel,
                                   dense=options.first_layer_dense and i == 0))
            norms.append(nn.BatchNorm2d(out_c, affine=kernel.affine_norm) if options.batch_norm
                         else nn.Identity())
            c = out_c
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.flat_channels, self.flat_positions = c, (h >> pairs) * (w >> pairs)
        sizes = [c * self.flat_positions, *(width(f) for f in FC_WIDTHS), num_classes]
        self.fcs = nn.ModuleList(
            make_linear(a, b, kernel=kernel, dense=options.last_layer_dense and i == 2)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))

    def forward(self, x: Tensor) -> Tensor:
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            if i < len(self.fcs) - 1:
                x = F.relu(x)
        return x

    def wiring_graph(self, max_edges: int | None = None):
        """Channel-level wiring; the first FC layer's inputs are folded to the last conv's
        channels (an edge where any of a channel's positions has an active weight)."""
        cg = ChannelGraph(max_edges)
        cur = cg.tensor("input", self.in_channels)
        for i, conv in enumerate(self.convs):
            nxt = cg.tensor(f"conv{i}", conv.out_channels, stage=i // 2)
            cg.layer(f"conv{i}", cur, nxt, conv)
            cur = nxt
        stage = len(self.convs) // 2
        for i, fc in enumerate(self.fcs):
            last = i == len(self.fcs) - 1
            nxt = cg.tensor("output" if last else f"fc{i}", fc.out_features,
                            stage=None if last else stage)
            cg.layer(f"fc{i}", cur, nxt, fc, in_groups=self.flat_channels if i == 0 else 1)
            cur = nxt
        return cg.build("input", "output")


def _builder(depth: int):
    def build(options: ConvNOptions, kernel: MaskKernel, input_shape: tuple[int, ...],
              num_classes: int) -> ConvN:
        return ConvN(depth, input_shape, num_classes, options, kernel)

    build.__name__ = f"build_conv{depth}"
    build.__doc__ = f"Conv{depth} of the edge-popup paper (table 1)."
    return build


build_conv2, build_conv4, build_conv6, build_conv8 = (_builder(d) for d in (2, 4, 6, 8))
