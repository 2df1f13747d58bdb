"""The MLP search space of Tessera ch. 4: chained sparse ResNet-like cells.

Layout for ``hidden_layers = H`` (H hidden activations, H + 1 maskable Linear layers)::

    stem:   Linear(in, width) -> BN -> act
    blocks: H - 1 hidden Linear layers in cells of two,
            cell(x) = act(BN(Linear(drop(act(BN(Linear(x)))))) + x)
            (a final cell of one layer when H - 1 is odd: act(BN(Linear(x)) + x))
    head:   drop -> Linear(width, classes)

``skip: false`` drops the ``+ x``, ``batch_norm: false`` the BN layers. BatchNorm is
non-affine when the kernel asks for it (edge-popup) and layers get no biases then.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from snas.core.catalog import MLPOptions
from trainables.kernels import MaskedLinear, MaskKernel

ACTIVATIONS = {
    "relu": lambda width: nn.ReLU(),
    "prelu": lambda width: nn.PReLU(),
    "swish": lambda width: nn.SiLU(),
    "elu": lambda width: nn.ELU(),
    "sigmoid": lambda width: nn.Sigmoid(),
}


class _Layer(nn.Module):
    """Linear -> BN (pre-activation output; the cell adds the skip before activating)."""

    def __init__(self, in_f: int, out_f: int, options: MLPOptions, kernel: MaskKernel):
        super().__init__()
        self.linear = MaskedLinear(in_f, out_f, bias=options.bias, kernel=kernel)
        self.norm = (nn.BatchNorm1d(out_f, affine=kernel.affine_norm) if options.batch_norm
                     else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.linear(x))


class ResidualCell(nn.Module):
    """One or two hidden layers with a skip connection around them."""

    def __init__(self, n_layers: int, options: MLPOptions, kernel: MaskKernel):
        super().__init__()
        width = options.width
        self.layers = nn.ModuleList(_Layer(width, width, options, kernel) for _ in range(n_layers))
        self.acts = nn.ModuleList(ACTIVATIONS[options.activation](width)
                                  for _ in range(n_layers))
        self.drop = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        self.skip = options.skip

    def forward(self, x: Tensor) -> Tensor:
        h = x
        last = len(self.layers) - 1
        for i, (layer, act) in enumerate(zip(self.layers, self.acts)):
            h = layer(h)
            if i == last:
                return act(h + x if self.skip else h)
            h = self.drop(act(h))
        return h  # unreachable: a cell has at least one layer


class MLP(nn.Module):
    """Chained sparse ResNet-like cells; every Linear layer is masked by ``kernel``."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, options: MLPOptions,
                 kernel: MaskKernel):
        super().__init__()
        in_features = math.prod(input_shape)
        self.stem = _Layer(in_features, options.width, options, kernel)
        self.stem_act = ACTIVATIONS[options.activation](options.width)
        n_hidden = options.hidden_layers - 1
        sizes = [2] * (n_hidden // 2) + [1] * (n_hidden % 2)
        self.blocks = nn.ModuleList(ResidualCell(n, options, kernel) for n in sizes)
        self.drop = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        self.head = MaskedLinear(options.width, num_classes, bias=options.bias, kernel=kernel)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.stem_act(self.stem(x.flatten(1))))
        for block in self.blocks:
            h = self.drop(block(h))
        return self.head(h)


def build_mlp(options: MLPOptions, kernel: MaskKernel, input_shape: tuple[int, ...],
              num_classes: int) -> MLP:
    return MLP(input_shape, num_classes, options, kernel)
