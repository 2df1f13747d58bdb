"""torchvision's ImageNet ResNets (``resnet18``, ``resnet50``, ``wide_resnet50_2``), masked.

The network is torchvision's own, built with ``weights=None`` (nothing is downloaded),
then every ``nn.Conv2d`` (stem, block convs, downsample convs) and ``fc`` is replaced, in
place, by a masked layer of the same shape, so the density vector follows torchvision's
module order. The stem conv takes the dataset's channel count. ``first_layer_dense`` /
``last_layer_dense`` keep ``conv1`` / ``fc`` as they are (dense). For kernels without
affine normalisation (edge-popup) every BatchNorm is replaced by a non-affine one; biases
are dropped where the kernel forbids them.
"""

from __future__ import annotations

from torch import nn

from snas.core.catalog import TorchvisionResNetOptions
from trainables.kernels import MaskedConv2d, MaskedLinear, MaskKernel
from trainables.models._wiring import ChannelGraph, walk_resnet


def _masked_copy(module: nn.Module, kernel: MaskKernel) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        if k[0] != k[1] or module.dilation != (1, 1) or module.stride[0] != module.stride[1] \
                or module.padding[0] != module.padding[1]:
            raise ValueError(f"cannot mask conv {module}: only square, undilated convs")
        return MaskedConv2d(module.in_channels, module.out_channels, k[0],
                            stride=module.stride[0], padding=module.padding[0],
                            groups=module.groups, bias=module.bias is not None, kernel=kernel)
    if isinstance(module, nn.Linear):
        return MaskedLinear(module.in_features, module.out_features,
                            bias=module.bias is not None, kernel=kernel)
    if isinstance(module, nn.BatchNorm2d) and not kernel.affine_norm:
        return nn.BatchNorm2d(module.num_features, affine=False)
    return module


def _replace(parent: nn.Module, kernel: MaskKernel, keep: set[str], prefix: str = "") -> None:
    for name, child in parent.named_children():
        full = f"{prefix}{name}"
        if full in keep:
            continue
        new = _masked_copy(child, kernel)
        if new is not child:
            setattr(parent, name, new)
        else:
            _replace(child, kernel, keep, full + ".")


class TorchvisionResNet(nn.Module):
    """Wraps the masked torchvision model as ``self.net``; forward is the model's."""

    def __init__(self, arch: str, input_shape: tuple[int, ...], num_classes: int,
                 options: TorchvisionResNetOptions, kernel: MaskKernel):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
        if input_shape[0] != 3:
            net.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
        keep = set()
        if options.first_layer_dense:
            keep.add("conv1")
        if options.last_layer_dense:
            keep.add("fc")
        _replace(net, kernel, keep)
        if not kernel.allows_bias:
            for name in keep:
                layer = getattr(net, name)
                if layer.bias is not None:
                    layer.bias = None
        self.net = net
        self.in_channels = input_shape[0]

    def forward(self, x):
        return self.net(x)

    def wiring_graph(self, max_edges: int | None = None):
        """Channel-level wiring (see :mod:`trainables.models._wiring`)."""
        blocks, stages = [], []
        for stage, layer in enumerate((self.net.layer1, self.net.layer2, self.net.layer3,
                                       self.net.layer4)):
            for block in layer:
                convs = [block.conv1, block.conv2] + ([block.conv3] if hasattr(block, "conv3")
                                                      else [])
                shortcut = block.downsample[0] if block.downsample is not None else None
                blocks.append((convs, shortcut))
                stages.append(stage)
        return walk_resnet(ChannelGraph(max_edges), [self.net.conv1], blocks, self.net.fc,
                           self.in_channels, stages)


def _builder(arch: str):
    def build(options: TorchvisionResNetOptions, kernel: MaskKernel,
              input_shape: tuple[int, ...], num_classes: int) -> TorchvisionResNet:
        return TorchvisionResNet(arch, input_shape, num_classes, options, kernel)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"torchvision {arch} (weights=None) with masked convs and fc."
    return build


build_resnet18, build_resnet50, build_wide_resnet50_2 = (
    _builder(a) for a in ("resnet18", "resnet50", "wide_resnet50_2"))
