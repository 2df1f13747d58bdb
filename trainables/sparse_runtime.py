"""Standalone runtime for snas sparse model exports (format ``snas-sparse-model``, version 1).

This file imports only torch and the Python standard library. ``snas export NAME --model
OUT`` copies it into every export folder as ``snas_sparse_runtime.py``, so an export loads
on a machine without snas::

    import sys; sys.path.insert(0, "OUT")
    import snas_sparse_runtime as rt
    model = rt.load("OUT")               # a torch.nn.Module in eval mode, CPU
    logits = model(x)                    # x: (N, *input_shape) or (N, features), normalised
                                         # as in training
    logits = model(model.preprocess(raw))  # or raw pixel/feature values (see model.json)

``python OUT/snas_sparse_runtime.py OUT`` prints the layers, their non-zeros and the
removed neurons.

An export folder holds:

- ``model.json``: format and version, input shape and preprocessing, the forward graph
  (``graph``: a list of ops over named feature vectors), one record per layer (dense
  shape, exported shape, nnz, density, storage, removed rows/columns) and the removed
  neurons per hidden vector;
- ``tensors.pt``: a dict of plain dense tensors (CSR weights as ``NAME.crow_indices``,
  ``NAME.col_indices``, ``NAME.values``; biases, index vectors, activation parameters),
  read with ``torch.load(weights_only=True)``;
- ``snas_sparse_runtime.py``: this file.

Ops (activations are kept feature-major, shape ``(features, N)``, so a sparse layer is one
``addmm`` of a CSR matrix with a contiguous dense matrix and gathers are row gathers):

- ``flatten``: ``input`` (N, ...) -> (features, N);
- ``linear``: ``out = W @ in + bias`` with ``W`` in CSR (or dense when loaded with
  ``weights="dense"``); BatchNorm is already folded into ``W`` and ``bias``;
- ``activation``: ``relu``, ``prelu`` (``weight``: one value or one per feature), ``silu``,
  ``elu`` (``alpha``), ``sigmoid``, elementwise;
- ``add``: ``out = a + b`` where ``b``'s features are aligned to ``a``'s: feature
  ``b_src[i]`` of ``b`` is added to feature ``b_dst[i]`` of ``a`` (both absent: the same
  features in the same order);
- the vector named by ``output`` (N, classes) is the result (logits).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMAT = "snas-sparse-model"
VERSION = 1
MODEL_FILE = "model.json"
TENSORS_FILE = "tensors.pt"
RUNTIME_FILE = "snas_sparse_runtime.py"
ACTIVATIONS = ("relu", "prelu", "silu", "elu", "sigmoid")
WEIGHT_STORAGES = ("sparse", "dense")


class ExportFormatError(ValueError):
    """The folder is not a readable snas sparse model of a version this runtime knows."""


def activation(kind: str, x: Tensor, params: dict[str, Any]) -> Tensor:
    """The activation ``kind`` applied elementwise to ``x`` (features first for ``prelu``
    weights with one value per feature)."""
    if kind == "relu":
        return torch.relu(x)
    if kind == "prelu":
        weight = params["weight"].to(x.dtype)
        if weight.numel() > 1:  # one slope per feature, features first
            weight = weight.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(x >= 0, x, x * weight)
    if kind == "silu":
        return F.silu(x)
    if kind == "elu":
        return F.elu(x, alpha=float(params["alpha"]))
    if kind == "sigmoid":
        return torch.sigmoid(x)
    raise ExportFormatError(f"unknown activation {kind!r}; this runtime knows "
                            f"{', '.join(ACTIVATIONS)}")


def read_description(path: str | Path) -> dict[str, Any]:
    """``model.json`` of the export folder ``path``, with format and version checked."""
    file = Path(path) / MODEL_FILE
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportFormatError(f"{str(file)!r} not found: not a snas sparse model "
                                "folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportFormatError(f"cannot read {str(file)!r}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ExportFormatError(f"{str(file)!r} is not a {FORMAT} description")
    if doc.get("version") != VERSION:
        raise ExportFormatError(f"{str(file)!r} has {FORMAT} version {doc.get('version')!r}; "
                                f"this runtime reads version {VERSION}")
    return doc


class SparseModel(nn.Module):
    """An exported snas network: runs the ops of ``description["graph"]`` on ``tensors``.

    ``weights="sparse"`` keeps linear weights in CSR layout (as exported); ``"dense"``
    converts them to dense matrices (same values: useful to compare speed). The model holds
    no trainable parameters and runs on CPU (``.to(device)`` is not supported for CSR
    weights on every device; move the tensors yourself if you need to).
    """

    def __init__(self, description: dict[str, Any], tensors: dict[str, Tensor],
                 weights: str = "sparse"):
        super().__init__()
        if weights not in WEIGHT_STORAGES:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_STORAGES)}, "
                             f"got {weights!r}")
        self.description = description
        self.weights = weights
        self.input_shape = tuple(description["input"]["shape"])
        self.features = int(description["input"]["features"])
        self.output = description["output"]
        self._tensors = tensors
        self._ops = [self._compile(op) for op in description["graph"]]
        pre = description["input"].get("preprocess") or {}
        self._divide_by = float(pre.get("divide_by", 1.0))
        self._mean = torch.tensor(pre.get("mean", [0.0]), dtype=torch.float32)
        self._std = torch.tensor(pre.get("std", [1.0]), dtype=torch.float32)

    def _tensor(self, name: str | None) -> Tensor | None:
        if name is None:
            return None
        try:
            return self._tensors[name]
        except KeyError:
            raise ExportFormatError(f"tensor {name!r} named in {MODEL_FILE} is missing "
                                    f"from {TENSORS_FILE}") from None

    def _compile(self, op: dict[str, Any]) -> tuple:
        kind = op.get("op")
        if kind == "flatten":
            return ("flatten", op["in"], op["out"])
        if kind == "linear":
            rows, cols = (int(s) for s in op["shape"])
            bias = self._tensor(op["bias"]).to(torch.float32).view(rows, 1)
            if op.get("storage", "csr") == "csr":
                crow = self._tensor(f"{op['weight']}.crow_indices")
                col = self._tensor(f"{op['weight']}.col_indices")
                values = self._tensor(f"{op['weight']}.values")
                with warnings.catch_warnings():  # "CSR support is in beta": it works here
                    warnings.simplefilter("ignore", UserWarning)
                    weight = torch.sparse_csr_tensor(crow, col, values, size=(rows, cols),
                                                     check_invariants=True)
                if self.weights == "dense":
                    weight = weight.to_dense()
            elif op["storage"] == "dense":
                weight = self._tensor(op["weight"])
                if self.weights == "sparse":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)
                        weight = weight.to_sparse_csr()
            else:
                raise ExportFormatError(f"linear {op.get('name')!r}: unknown storage "
                                        f"{op['storage']!r} (csr, dense)")
            if tuple(weight.shape) != (rows, cols):
                raise ExportFormatError(f"linear {op.get('name')!r}: weight has shape "
                                        f"{tuple(weight.shape)}, {MODEL_FILE} says {(rows, cols)}")
            return ("linear", op["in"], op["out"], weight, bias)
        if kind == "activation":
            params = {k: (self._tensor(v) if k == "weight" else v)
                      for k, v in (op.get("params") or {}).items()}
            if op["kind"] not in ACTIVATIONS:
                raise ExportFormatError(f"unknown activation {op['kind']!r}")
            return ("activation", op["in"], op["out"], op["kind"], params)
        if kind == "add":
            src, dst = self._tensor(op.get("b_src")), self._tensor(op.get("b_dst"))
            return ("add", op["a"], op["b"], op["out"], src, dst)
        raise ExportFormatError(f"unknown op {kind!r} in {MODEL_FILE} (flatten, linear, "
                                "activation, add)")

    def preprocess(self, raw: Tensor) -> Tensor:
        """Raw inputs (pixel values as stored by the dataset) -> the normalised inputs the
        model was trained on: divide by ``divide_by``, then per-channel ``(x - mean) / std``
        (flat feature vectors count as one channel)."""
        x = raw.to(torch.float32) / self._divide_by
        channels = self._mean.numel()
        if channels == 1:  # flat features: one channel, one mean and std
            return (x - self._mean) / self._std
        shape = (1, channels) + (1,) * (x.dim() - 2)  # images (N, C, H, W): per channel
        return (x - self._mean.view(shape)) / self._std.view(shape)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, classes) of inputs ``x`` (N, *input_shape) or (N, features), normalised
        as in training."""
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.features:
            raise ValueError(f"input must have shape (N, {', '.join(map(str, self.input_shape))})"
                             f" or (N, {self.features}), got {tuple(x.shape)}")
        values: dict[str, Tensor] = {"input": x.to(torch.float32)}
        for op in self._ops:
            kind = op[0]
            if kind == "linear":
                _, src, dst, weight, bias = op
                values[dst] = torch.addmm(bias, weight, values[src])
            elif kind == "activation":
                _, src, dst, name, params = op
                values[dst] = activation(name, values[src], params)
            elif kind == "add":
                _, a, b, dst, b_src, b_dst = op
                if b_src is None:
                    values[dst] = values[a] + values[b]
                else:
                    values[dst] = values[a].index_add(0, b_dst, values[b].index_select(0, b_src))
            else:  # flatten: feature-major from here on
                _, src, dst = op
                values[dst] = values[src].flatten(1).t().contiguous()
        return values[self.output].t()


def load(path: str | Path, weights: str = "sparse") -> SparseModel:
    """The exported model in folder ``path`` (``model.json`` + ``tensors.pt``), eval mode."""
    description = read_description(path)
    file = Path(path) / description.get("tensors", TENSORS_FILE)
    try:
        tensors = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ExportFormatError(f"{str(file)!r} not found") from None
    except Exception as exc:  # a torn or foreign file: one line, whatever torch raised
        raise ExportFormatError(f"cannot read {str(file)!r}: {exc}") from None
    if not isinstance(tensors, dict):
        raise ExportFormatError(f"{str(file)!r} does not hold a dict of tensors")
    return SparseModel(description, tensors, weights).eval()


def summary(description: dict[str, Any]) -> str:
    """A few lines: source, layers with shapes, nnz and density, removed neurons."""
    lines = []
    source = description.get("source") or {}
    if source:
        lines.append(f"{FORMAT} v{description['version']}: search {source.get('search')!r} "
                     f"trial {source.get('trial_id')} ({source.get('model')} / "
                     f"{source.get('kernel')} on {source.get('dataset')})")
    lines.append(f"{'layer':<24}{'dense shape':>14}{'exported':>14}{'nnz':>10}{'density':>9}")
    for layer in description["layers"]:
        dense = "x".join(str(s) for s in layer["dense_shape"])
        shape = "x".join(str(s) for s in layer["shape"])
        lines.append(f"{layer['name']:<24}{dense:>14}{shape:>14}{layer['nnz']:>10}"
                     f"{layer['density']:>9.4f}")
    totals = description.get("totals") or {}
    if totals:
        lines.append(f"total nnz {totals['nnz']} of {totals['dense_weights']} dense weights "
                     f"(density {totals['density']:.4f}); hidden neurons removed "
                     f"{totals['neurons_removed']} of {totals['hidden_neurons']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(f"usage: python {RUNTIME_FILE} EXPORT_FOLDER", file=sys.stderr)
        sys.exit(2)
    try:
        print(summary(read_description(sys.argv[1])))
    except ExportFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
