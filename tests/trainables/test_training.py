"""Trial: training loop, EGF against a hand computation, checkpoints, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snas.core import metrics as M
from snas.core.config import SpaceConfig
from trainables.kernels import KERNELS, MaskedLinear, make_kernel
from trainables.training import GradientFlowMeter, Trial


def space(**sections) -> SpaceConfig:
    base = {
        "dataset": {"name": "synthetic", "synthetic_shape": [1, 4, 4], "synthetic_size": 256},
        "model": {"name": "mlp", "hidden_layers": 2, "width": 16},
        "training": {"epochs": 3, "batch_size": 64, "lr": 0.05, "device": "cpu"},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return SpaceConfig.from_dict(base)


def test_egf_equals_hand_computation():
    """EGF_p = mean over layers of ||dC/dW_eff * mask||_p, for a tiny two-layer network."""
    from snas.core.config import KernelConfig

    kernel = make_kernel(KernelConfig(name="dnw"))
    gen = torch.Generator().manual_seed(0)
    l1 = MaskedLinear(5, 4, bias=True, kernel=kernel)
    l2 = MaskedLinear(4, 3, bias=True, kernel=kernel)
    l1.configure(0.5, gen)
    l2.configure(0.25, gen)
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    loss = F.cross_entropy(l2(torch.relu(l1(x))), y)
    loss.backward()
    meter = GradientFlowMeter([l1, l2], [l1.weight, l1.bias, l2.weight, l2.bias], torch.device("cpu"))
    meter.update()
    got = meter.result()

    # by hand: effective weights as leaves, gradients by autograd, masks applied
    w1 = (l1.weight.detach() * l1.mask).requires_grad_(True)
    w2 = (l2.weight.detach() * l2.mask).requires_grad_(True)
    b1, b2 = l1.bias.detach().requires_grad_(True), l2.bias.detach().requires_grad_(True)
    hand_loss = F.cross_entropy(torch.relu(x @ w1.T + b1) @ w2.T + b2, y)
    g1, g2, gb1, gb2 = torch.autograd.grad(hand_loss, [w1, w2, b1, b2])
    m1, m2 = g1 * l1.mask, g2 * l2.mask
    egf1 = (m1.abs().sum() + m2.abs().sum()) / 2
    egf2 = (m1.norm() + m2.norm()) / 2
    assert got[M.EGF_1] == pytest.approx(float(egf1), rel=1e-5)
    assert got[M.EGF_2] == pytest.approx(float(egf2), rel=1e-5)
    # classic norm: all trainable gradients, DNW's straight-through weight grads unmasked
    classic2 = torch.cat([g.flatten() for g in (g1, gb1, g2, gb2)]).norm()
    assert got[M.GRAD_NORM_2] == pytest.approx(float(classic2), rel=1e-5)


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_trial_reports_every_metric(kernel):
    trial = Trial(space(kernel={"name": kernel}), 0.5)
    record = trial.run_epoch()
    for key in M.EPOCH_SCALARS:
        assert key in record, key
    assert record[M.EPOCH] == 1
    assert record[M.EGF_2] > 0 and record[M.GRAD_NORM_2] > 0
    assert record[M.ACTIVE_WEIGHTS] < record[M.TOTAL_WEIGHTS]
    summary = trial.summary()
    assert 0.0 <= summary[M.TEST_ACCURACY] <= 1.0
    assert len(summary["history"]) == 1 and summary["epochs"] == 1


def test_training_learns_and_is_deterministic():
    a = Trial(space(), [0.5, 0.7, 1.0])
    b = Trial(space(), [0.5, 0.7, 1.0])
    ha = [a.run_epoch() for _ in range(3)]
    hb = [b.run_epoch() for _ in range(3)]
    assert [r[M.TRAIN_LOSS] for r in ha] == [r[M.TRAIN_LOSS] for r in hb]
    assert ha[-1][M.TRAIN_LOSS] < ha[0][M.TRAIN_LOSS]


@pytest.mark.parametrize("kernel", ["set", "edge_popup"])
def test_checkpoint_resume_continues_identically(kernel, tmp_path):
    cfg = space(kernel={"name": kernel})
    straight = Trial(cfg, 0.4)
    for _ in range(3):
        straight.run_epoch()
    first = Trial(cfg, 0.4)
    first.run_epoch()
    path = tmp_path / "ckpt.pt"
    torch.save(first.state_dict(), path)
    resumed = Trial(cfg, 0.4)
    resumed.load_state_dict(torch.load(path, weights_only=False))
    for _ in range(2):
        resumed.run_epoch()
    assert resumed.epoch == 3
    assert [r[M.TRAIN_LOSS] for r in resumed.history] == pytest.approx(
        [r[M.TRAIN_LOSS] for r in straight.history], rel=1e-6)
    x = torch.randn(4, 1, 4, 4)
    straight.model.eval(), resumed.model.eval()
    torch.testing.assert_close(straight.model(x), resumed.model(x))


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("density", [0.5, [0.9, 0.3, 0.5, 0.4, 1.0]], ids=["uniform", "vector"])
def test_every_kernel_learns_digits_with_exact_density(kernel, density):
    """Acceptance: mlp_digits.yaml, 20 epochs, test accuracy >= 0.90, exact counts."""
    from pathlib import Path

    from snas.core.config import load_space
    from trainables.kernels import kept_count

    path = Path(__file__).parents[2] / "search_spaces" / "mlp_digits.yaml"
    space = load_space(path, [f"kernel.name={kernel}", "training.device=cpu"])
    trial = Trial(space, density)
    for _ in range(space.training.epochs):
        trial.run_epoch()
    summary = trial.summary()
    assert summary["test_accuracy"] >= 0.90, summary["test_accuracy"]
    for layer, d, r in zip(summary["layers"], summary["density"], summary["realized_density"]):
        n = layer["shape"][0] * layer["shape"][1]
        assert round(r * n) == kept_count(d, n)


@pytest.mark.parametrize("overrides,error,message", [
    ({"training": {"lr": 10.0, "optimizer": "sgd", "momentum": 0.99}, "model": {"batch_norm": False}},
     "TrialDiverged", "diverged: train loss is"),
    ({"training": {"max_seconds": 1e-6}}, "TrialTimeLimit", "training.max_seconds=1e-06"),
    ({"training": {"max_memory_mb": 1}}, "TrialMemoryLimit", "training.max_memory_mb=1"),
])
def test_trial_fails_with_a_stated_reason(overrides, error, message):
    import trainables.training as T

    trial = Trial(space(**overrides), 1.0)
    with pytest.raises(getattr(T, error), match=message.replace("(", r"\(")) as info:
        for _ in range(3):
            trial.run_epoch()
    assert isinstance(info.value, T.TrialFailed)
    assert "\n" not in str(info.value)
