"""Small options for every shipped model, so tests can build and train each one quickly.

``SMALL_CNN`` (the CNN, DAG and neural-graph models) and ``SMALL_MODELS`` (every entry of
:data:`~snas.core.catalog.MODELS`) map a model name to ``(options, input shape, number of
maskable layers)``; ``SLOW_MODELS`` are too big for a fast test (the contract suite marks
them slow). A new model adds its row here: ``tests/test_contracts.py`` fails until it does.
"""

from __future__ import annotations

SMALL_CNN = {
    "resnet_cifar": (dict(depth=8, base_width=4), (1, 12, 12), 8),
    "wide_resnet": (dict(depth=10, widen_factor=2), (3, 8, 8), 11),  # 1 + 6 + 3 shortcuts + 1
    "conv2": (dict(width_multiplier=0.0625), (3, 8, 8), 5),
    "conv4": (dict(width_multiplier=0.0625), (1, 12, 12), 7),
    "conv6": (dict(width_multiplier=0.0625, batch_norm=True), (3, 8, 8), 9),
    "conv8": (dict(width_multiplier=0.0625), (3, 16, 16), 11),
    "dag": (dict(nodes=7, channels=3), (1, 8, 8), 6),
    "neural_graph": (dict(stages=2, blocks=3, nodes_per_block=3), (1, 8, 8), 2),
}

# The torchvision ResNets have no size options: a small input is all that can shrink.
SMALL_MODELS = {
    **SMALL_CNN,
    "mlp": (dict(hidden_layers=3, width=8), (1, 8, 8), 4),
    "resnet18": ({}, (3, 16, 16), 21),
    "resnet50": ({}, (3, 16, 16), 54),
    "wide_resnet50_2": ({}, (3, 16, 16), 54),
}

# The builder of resnet18 at 2.5x and 6x the weights: seconds to build and step on a CPU.
SLOW_MODELS = frozenset({"resnet50", "wide_resnet50_2"})
