"""On CUDA a training step of every kernel makes no host synchronisation.

The top-k selection runs on the device (:class:`trainables.kernels.DeviceTopK`: k is a
Python int, the k-th value and the tie split stay tensors), so ``torch.cuda.
set_sync_debug_mode("error")`` around a few steps (forward, backward, the EGF gradient of
every masked layer, SGD step) must not raise, for a small masked MLP and a small masked
conv net. The loss is read for logging only outside that region. Skipped without CUDA; the
selector's logic is tested on CPU in ``test_kernels.py``
(``test_device_selector_exact_k_with_ties``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snas.core.catalog import KERNELS, MODELS
from snas.core.config import KernelConfig, ModelConfig
from trainables.kernels import DeviceTopK, MaskedLayer, kept_count, make_kernel
from trainables.models import build_model, maskable_layers

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

MODELS_UNDER_TEST = {
    "mlp": ((1, 8, 8), {"hidden_layers": 2, "width": 64}),
    "resnet_cifar": ((3, 16, 16), {"depth": 8, "base_width": 8}),
}


def build(model: str, kernel: str) -> tuple[nn.Module, tuple[int, ...]]:
    shape, options = MODELS_UNDER_TEST[model]
    cfg = ModelConfig(name=model, options=MODELS.options(model)(**options))
    net = build_model(cfg, make_kernel(KernelConfig(name=kernel)), shape, 10, 0.3,
                      torch.Generator().manual_seed(0))
    return net.cuda(), shape


@pytest.mark.parametrize("model", sorted(MODELS_UNDER_TEST))
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_training_steps_make_no_host_sync(model, kernel):
    net, shape = build(model, kernel)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05,
                          momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator(device="cuda").manual_seed(0)
    batches = [(torch.randn(16, *shape, device="cuda", generator=gen),
                torch.randint(0, 10, (16,), device="cuda", generator=gen)) for _ in range(4)]
    layers = [layer for _, layer in maskable_layers(net)]

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        egf = [torch.linalg.vector_norm(g, 1) for g in
               (layer.masked_gradient() for layer in layers) if g is not None]
        opt.step()
        return loss.detach() + 0 * torch.stack(egf).sum()

    net.train()
    step(*batches[0])  # first step outside: lazy CUDA library setup, selectors created
    losses = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches[1:]:
            losses.append(step(x, y))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(float(loss)) for loss in losses)  # .item() outside the region
    for layer in layers:
        assert isinstance(layer, MaskedLayer)
        assert int(layer.mask.sum()) == kept_count(layer.density, layer.weight.numel())
        if kernel in ("dnw", "edge_popup"):
            assert isinstance(layer.selector, DeviceTopK)
