"""One trial: build data, kernel and masked model from a SpaceConfig, train, measure.

:class:`Trial` is used by ``snas train`` (a plain loop over epochs) and by the Ray Tune
trainable (one Tune iteration = one call of :meth:`Trial.run_epoch`). It owns all state
that a checkpoint must carry (model with masks and scores, optimizer, LR schedule, RNG
states, history) and round-trips it through :meth:`state_dict`/:meth:`load_state_dict`.

Per-epoch metrics (names in :mod:`snas.core.metrics`): train/val loss and accuracy, Effective
Gradient Flow ``egf_1``/``egf_2`` (mean over maskable layers of ||dC/dW_eff * mask||_p,
averaged over the epoch's steps from the gradients each step computed anyway), the classic
whole-network gradient norms ``grad_norm_1``/``grad_norm_2`` (||concat(all trainable
grads)||_p), realised density per layer, active/total weights, seconds, learning rate.

Mask trace: a trial whose kernel rewires masks between epochs (it overrides
:meth:`MaskKernel.epoch_end`; today ``set``) keeps every layer's mask after every epoch,
epoch 0 being the initial mask, bit-packed (``np.packbits``, one bit per weight) in
:attr:`Trial.mask_trace`; it travels in :meth:`Trial.state_dict` under ``"mask_trace"``, so
every checkpoint holds the masks of all epochs so far (total weights / 8 bytes per epoch).
:func:`unpack_mask_trace` turns it back into boolean arrays. Other kernels keep no trace.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snas.core import metrics as M
from snas.core.config import SpaceConfig, TrainingConfig
from trainables.data import DeviceDataset, load_dataset
from trainables.kernels import MaskedLayer, MaskKernel, make_kernel
from trainables.models import build_model, layer_specs, maskable_layers


class TrialFailed(RuntimeError):
    """A trial ended as failed for a stated reason (the message is recorded in the store)."""


class TrialDiverged(TrialFailed):
    """The training loss became NaN or infinite."""


class TrialTimeLimit(TrialFailed):
    """The trial trained longer than ``training.max_seconds``."""


class TrialMemoryLimit(TrialFailed):
    """The trial process used more resident memory than ``training.max_memory_mb``."""


def resident_memory_mb() -> float | None:
    """Resident memory of this process in MB (Linux /proc), or None where unknown."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    from snas.core.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"training.device {name!r} asked for but no CUDA device is "
                          "available; use cpu or auto")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_schedule(optimizer: torch.optim.Optimizer, cfg: TrainingConfig
                  ) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def rewires_between_epochs(kernel: MaskKernel) -> bool:
    """Whether ``kernel`` changes masks between epochs (it overrides ``epoch_end``, as SET
    does): the trials whose masks :class:`Trial` traces per epoch."""
    return type(kernel).epoch_end is not MaskKernel.epoch_end


def unpack_mask_trace(trace: dict[str, Any]
                      ) -> tuple[list[str], list[int], list[list[np.ndarray]]]:
    """``(layer names, epochs, masks)`` of a ``state_dict()["mask_trace"]``: ``masks[i][l]``
    is layer l's boolean mask (numpy, the weight's shape) after epoch ``epochs[i]``
    (epoch 0 = the initial mask)."""
    shapes = [tuple(int(n) for n in shape) for shape in trace["shapes"]]
    masks = []
    for packed_layers in trace["masks"]:
        masks.append([np.unpackbits(np.asarray(packed), count=int(np.prod(shape)))
                      .astype(bool).reshape(shape)
                      for packed, shape in zip(packed_layers, shapes, strict=True)])
    return list(trace["names"]), [int(e) for e in trace["epochs"]], masks


class GradientFlowMeter:
    """Accumulates EGF and classic gradient norms over an epoch's steps, on the device
    (no host sync per step)."""

    def __init__(self, layers: Sequence[MaskedLayer], params: Sequence[nn.Parameter],
                 device: torch.device):
        self.layers = list(layers)
        self.params = list(params)
        self.sums = torch.zeros(4, device=device)  # egf_1, egf_2, grad_norm_1, grad_norm_2
        self.steps = 0

    def update(self) -> None:
        grads = [g for g in (layer.masked_gradient() for layer in self.layers) if g is not None]
        if not grads:
            return
        l1 = torch.stack([torch.linalg.vector_norm(g, 1) for g in grads])
        l2 = torch.stack([torch.linalg.vector_norm(g, 2) for g in grads])
        all_grads = [p.grad for p in self.params if p.grad is not None]
        classic1 = torch.nn.utils.get_total_norm(all_grads, norm_type=1.0)
        classic2 = torch.nn.utils.get_total_norm(all_grads, norm_type=2.0)
        # EGF averages over ALL maskable layers (docs/definitions.md: 1/L sum_l ||g_l||_p).
        n = len(self.layers)
        self.sums += torch.stack([l1.sum() / n, l2.sum() / n, classic1, classic2])
        self.steps += 1

    def result(self) -> dict[str, float]:
        values = (self.sums / max(self.steps, 1)).tolist()
        return dict(zip((M.EGF_1, M.EGF_2, M.GRAD_NORM_1, M.GRAD_NORM_2), values, strict=True))


class Trial:
    """Everything one trial needs: data, model, optimizer, schedule, RNGs and history.

    ``density`` is a scalar (every layer) or one entry per maskable layer. ``data`` may be
    passed in to share an already loaded dataset between trials of one process.
    """

    def __init__(self, space: SpaceConfig, density: float | Sequence[float],
                 device: str | torch.device | None = None, data: DeviceDataset | None = None):
        self.space = space
        cfg = space.training
        self.device = resolve_device(str(device) if device is not None else cfg.device)
        self.data = data if data is not None else load_dataset(space.dataset, self.device)
        torch.manual_seed(cfg.seed)  # dropout and anything else on the global RNG
        self.kernel = make_kernel(space.kernel)
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.model = build_model(space.model, self.kernel, self.data.input_shape,
                                 self.data.num_classes, density, init_gen).to(self.device)
        self.layers = [layer for _, layer in maskable_layers(self.model)]
        self.specs = layer_specs(self.model)
        self.density = [layer.density for layer in self.layers]
        self.asked_density = density
        self.optimizer = make_optimizer(self.model, cfg)
        self.schedule = make_schedule(self.optimizer, cfg)
        # Batch order and SET rewiring have their own seeded generators, so they are
        # reproducible and their state travels in checkpoints.
        self.batch_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.rewire_gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        # Per-epoch masks of kernels that rewire (module docstring); None: not traced.
        self.mask_trace: dict[str, Any] | None = None
        if rewires_between_epochs(self.kernel):
            self.mask_trace = {"names": [spec.name for spec in self.specs],
                               "shapes": [list(layer.mask.shape) for layer in self.layers],
                               "epochs": [], "masks": []}
            self._trace_masks()

    def _trace_masks(self) -> None:
        """Append the current masks, bit-packed, as the masks after epoch ``self.epoch``."""
        if self.mask_trace is None:
            return
        packed = [torch.from_numpy(np.packbits(layer.mask.detach().cpu().numpy().reshape(-1)))
                  for layer in self.layers]
        self.mask_trace["epochs"].append(self.epoch)
        self.mask_trace["masks"].append(packed)

    # ---- training -----------------------------------------------------------------
    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, y, label_smoothing=self.space.training.label_smoothing)
        # Models with a training cost of their own (the DAG's L1 edge cost) expose it.
        extra_loss = getattr(self.model, "extra_loss", None)
        if extra_loss is not None:
            loss = loss + extra_loss()
        return loss

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        meter = GradientFlowMeter(self.layers, params, self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for x, y in self.data.batches("train", self.space.training.batch_size, shuffle=True,
                                      generator=self.batch_gen):
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = self._loss(logits, y)
            loss.backward()
            meter.update()
            self.optimizer.step()
            loss_sum += loss.detach() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.numel()
        self.schedule.step()
        for layer in self.layers:
            layer.kernel.epoch_end(layer, self.rewire_gen)
            layer._eff = None  # drop the retained gradient graph between epochs
        return {M.TRAIN_LOSS: float(loss_sum) / seen, M.TRAIN_ACCURACY: float(correct) / seen,
                **meter.result()}

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float]:
        """(loss, accuracy) on ``split`` in eval mode (cached masks)."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for x, y in self.data.batches(split, self.space.training.eval_batch_size):
            logits = self.model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            seen += y.numel()
        if seen == 0:
            return float("nan"), float("nan")
        return float(loss_sum) / seen, float(correct) / seen

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, evaluate on the validation split, return the epoch's record."""
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        record: dict[str, Any] = {M.EPOCH: self.epoch + 1, **self.train_epoch()}
        record[M.VAL_LOSS], record[M.VAL_ACCURACY] = self.evaluate("val")
        record.update(self.weight_counts())
        record[M.LR] = lr
        record[M.EPOCH_SECONDS] = time.perf_counter() - start
        self.seconds += record[M.EPOCH_SECONDS]
        self.epoch += 1
        self.history.append(record)
        self._trace_masks()
        self._check_limits(record)
        return record

    def _check_limits(self, record: dict[str, Any]) -> None:
        """End the trial (raise) when it diverged or went over a configured limit."""
        loss = record[M.TRAIN_LOSS]
        if not math.isfinite(loss):
            raise TrialDiverged(f"diverged: train loss is {loss} at epoch {self.epoch}; "
                                "lower training.lr or keep model.batch_norm on")
        cfg = self.space.training
        if cfg.max_seconds is not None and self.seconds > cfg.max_seconds:
            raise TrialTimeLimit(f"time limit exceeded: {self.seconds:.1f}s of training after "
                                 f"epoch {self.epoch} > training.max_seconds={cfg.max_seconds:g}")
        rss = resident_memory_mb()
        if cfg.max_memory_mb is not None and rss is not None and rss > cfg.max_memory_mb:
            raise TrialMemoryLimit(f"memory limit exceeded: {rss:.0f} MB resident after epoch "
                                   f"{self.epoch} > training.max_memory_mb={cfg.max_memory_mb}")

    # ---- measurements ---------------------------------------------------------------
    def weight_counts(self) -> dict[str, Any]:
        active = [layer.active_weights for layer in self.layers]
        total = [layer.weight.numel() for layer in self.layers]
        return {M.ACTIVE_WEIGHTS: sum(active), M.TOTAL_WEIGHTS: sum(total),
                M.REALIZED_DENSITY: [a / t for a, t in zip(active, total, strict=True)]}

    def summary(self) -> dict[str, Any]:
        """The trial's final record: what ``snas train --json-out`` writes."""
        last = self.history[-1] if self.history else {}
        test_loss, test_acc = self.evaluate("test")
        counts = self.weight_counts()
        return {
            "density": list(self.density),
            "realized_density": counts[M.REALIZED_DENSITY],
            "layers": [{"name": s.name, "shape": list(s.shape)} for s in self.specs],
            M.ACTIVE_WEIGHTS: counts[M.ACTIVE_WEIGHTS],
            M.TOTAL_WEIGHTS: counts[M.TOTAL_WEIGHTS],
            M.VAL_LOSS: last.get(M.VAL_LOSS),
            M.VAL_ACCURACY: last.get(M.VAL_ACCURACY),
            M.TEST_LOSS: test_loss,
            M.TEST_ACCURACY: test_acc,
            M.EGF_1: last.get(M.EGF_1),
            M.EGF_2: last.get(M.EGF_2),
            M.GRAD_NORM_1: last.get(M.GRAD_NORM_1),
            M.GRAD_NORM_2: last.get(M.GRAD_NORM_2),
            "kernel": self.space.kernel.name,
            "model": self.space.model.name,
            "dataset": self.space.dataset.name,
            "seed": self.space.training.seed,
            "device": str(self.device),
            "epochs": self.epoch,
            "seconds": self.seconds,
            "history": list(self.history),
            # model-specific results, e.g. the DAG's accuracy before/after thresholding
            **(self.model.summary_extras(self.evaluate)
               if hasattr(self.model, "summary_extras") else {}),
        }

    # ---- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "batch_gen": self.batch_gen.get_state(),
            "rewire_gen": self.rewire_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.epoch,
            "history": self.history,
            "seconds": self.seconds,
            "density": self.density,
            # the search space as plain data, so a checkpoint alone rebuilds its model
            # (wiring records); load_state_dict does not read it
            "space": self.space.to_dict(),
            **({"mask_trace": {**self.mask_trace, "epochs": list(self.mask_trace["epochs"]),
                               "masks": [list(layers) for layers in self.mask_trace["masks"]]}}
               if self.mask_trace is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if [float(d) for d in state["density"]] != self.density:
            raise ValueError("checkpoint was written for another density vector")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.batch_gen.set_state(state["batch_gen"])
        self.rewire_gen.set_state(state["rewire_gen"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        self.seconds = state["seconds"]
        if self.mask_trace is not None:
            # Checkpoints written before traces existed have none: trace from here on.
            trace = state.get("mask_trace")
            self.mask_trace = {**self.mask_trace, "epochs": [], "masks": []}
            if trace is not None:
                self.mask_trace["epochs"] = list(trace["epochs"])
                self.mask_trace["masks"] = [list(layers) for layers in trace["masks"]]

