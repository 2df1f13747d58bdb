"""Sparse export: a trained masked MLP as a real sparse model that runs without snas.

``snas export NAME --model OUT`` picks a trial and calls :func:`export_checkpoint`; in Python,
:func:`export_model` exports any :class:`~trainables.models.mlp.MLP` and
:func:`sparse_model` returns the export in memory. The result is a folder (format
``snas-sparse-model`` version 1, read by the standalone :mod:`trainables.sparse_runtime`,
which is copied into the folder as ``snas_sparse_runtime.py``): ``model.json`` (forward
graph, layer shapes, nnz and density per layer, removed neurons, provenance, the
preprocessing of the inputs) and ``tensors.pt`` (plain tensors: CSR components of every
Linear weight, dense biases, index vectors, activation parameters).

What the export computes, for the model in eval mode (what ``snas`` evaluates):

1. Every Linear weight is the *effective* weight the masked model uses in eval mode
   (``layer.effective_weight()``: ``w * mask`` for every kernel: the trained weights of
   ``random``/``set``/``dnw``, the frozen weights selected by the learned scores of
   ``edge_popup``). Entries that are exactly zero are not stored.
2. BatchNorm in eval mode is an affine map per neuron, ``y = s * z + t`` with
   ``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s`` (gamma = 1,
   beta = 0 when non-affine). It is folded into the preceding Linear layer: row ``j`` of
   the weight is multiplied by ``s_j`` (the sparsity pattern does not change) and the bias
   becomes ``s * b + t``. Dropout is the identity in eval mode and is left out.
3. *Constant* neurons are found by propagation from the input: a pre-activation is
   constant when none of its active weights reads a non-constant neuron (in particular
   when it has no active incoming weight: BN's shift then makes it a constant, usually
   not zero); an activation of a constant is constant; a residual sum is constant when
   both summands are. Their values are computed exactly (in float64) and folded into the
   biases of the layers that read them: bias_j += sum_i W_ji * c_i for a Linear layer, and
   for a skip connection the constant is added to the bias of the row it is summed with.
4. *Unused* neurons are found by propagation from the output: a neuron is needed when an
   active weight of a needed neuron reads it, or when a skip connection carries it into a
   needed neuron of the next cell; every logit is needed.
5. A hidden neuron is removed when it is constant or unused, together with its row of the
   Linear layer before it, its column of every Linear layer after it, and its entry in
   the skip connections. The residual stream of a cell may keep a different set of neurons
   than the stream before it; the ``add`` op carries the index pairs (``b_src``,
   ``b_dst``) that align them. The output layer keeps every class; input features are not
   removed (a feature nothing reads is an empty CSR column and costs nothing).

Why predictions stay equal: every removed neuron either contributes nothing to a needed
neuron (unused: by definition no active weight or skip connection leads from it to a
needed neuron) or contributes a value that does not depend on the input (constant), which
is now in a bias. The remaining arithmetic is the same network with BN folded; it differs
from the masked model only by float32 rounding (the folding is done in float64), about
1e-6 relative. :func:`export_model` checks this on inputs it is given (the test split for
``snas export``) and records the largest logit difference and the argmax agreement in
``model.json`` (``check``).

Only MLPs are exported (:data:`SUPPORTED_MODELS`); CNNs and graph models are refused with
a one-line error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from snas.core.errors import ConfigError, SearchError
from trainables import sparse_runtime as runtime
from trainables.models.mlp import MLP

SUPPORTED_MODELS = ("mlp",)
#: Logit differences up to this (times max(1, max |logit|)) count as float rounding.
CHECK_TOLERANCE = 1e-4

_ACTIVATION_KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.ReLU, "relu"), (nn.PReLU, "prelu"), (nn.SiLU, "silu"), (nn.ELU, "elu"),
    (nn.Sigmoid, "sigmoid"),
)


# ---------------------------------------------------------------------------------------
# The MLP as a list of ops over named vectors (full width, float64)


def _folded_linear(layer: nn.Module) -> tuple[np.ndarray, np.ndarray, bool]:
    """(W, b, bn_folded) of an MLP ``_Layer`` (Linear -> BN) or a bare masked Linear, in
    float64, with eval-mode BatchNorm folded in (module docstring, step 2)."""
    linear = getattr(layer, "linear", layer)
    weight = linear.effective_weight().detach().to("cpu", torch.float64)
    bias = (linear.bias.detach().to("cpu", torch.float64) if linear.bias is not None
            else torch.zeros(weight.shape[0], dtype=torch.float64))
    norm = getattr(layer, "norm", None)
    folded = isinstance(norm, nn.BatchNorm1d)
    if folded:
        if norm.running_mean is None or norm.running_var is None:
            raise ConfigError("sparse export needs BatchNorm with running statistics "
                              "(track_running_stats=True)")
        mean = norm.running_mean.detach().to("cpu", torch.float64)
        var = norm.running_var.detach().to("cpu", torch.float64)
        scale = 1.0 / torch.sqrt(var + norm.eps)
        shift = -mean * scale
        if norm.affine:
            gamma = norm.weight.detach().to("cpu", torch.float64)
            beta = norm.bias.detach().to("cpu", torch.float64)
            scale, shift = scale * gamma, shift * gamma + beta
        weight = weight * scale[:, None]
        bias = bias * scale + shift
    elif norm is not None and not isinstance(norm, nn.Identity):
        raise ConfigError(f"sparse export knows BatchNorm1d or no normalisation, got "
                          f"{type(norm).__name__}")
    return weight.numpy(), bias.numpy(), folded


def _activation_spec(module: nn.Module) -> tuple[str, dict[str, Any]]:
    for cls, kind in _ACTIVATION_KINDS:
        if isinstance(module, cls):
            if kind == "prelu":
                return kind, {"weight": module.weight.detach().to("cpu", torch.float64).numpy()}
            if kind == "elu":
                return kind, {"alpha": float(module.alpha)}
            return kind, {}
    raise ConfigError(f"sparse export knows the activations "
                      f"{', '.join(k for _, k in _ACTIVATION_KINDS)}, got {type(module).__name__}")


def _mlp_ops(model: MLP) -> list[tuple]:
    """The eval-mode forward of ``model`` as ops (see :mod:`trainables.sparse_runtime`).

    ``("linear", in, out, layer_name, W, b, bn_folded)``, ``("act", in, out, kind,
    params)``, ``("add", a, b, out)``. Vector names are the names of the modules that
    produce them: ``x`` is the flattened input, ``head`` the logits.
    """
    def linear(src: str, dst: str, name: str, layer: nn.Module) -> tuple:
        return ("linear", src, dst, name, *_folded_linear(layer))

    ops: list[tuple] = [linear("x", "stem", "stem.linear", model.stem),
                        ("act", "stem", "stem_act", *_activation_spec(model.stem_act))]
    h = "stem_act"
    for k, block in enumerate(model.blocks):
        cell_input, cur = h, h
        last = len(block.layers) - 1
        for i, (layer, act) in enumerate(zip(block.layers, block.acts, strict=True)):
            z = f"blocks.{k}.layers.{i}"
            ops.append(linear(cur, z, f"{z}.linear", layer))
            if i == last and block.skip:
                ops.append(("add", z, cell_input, f"blocks.{k}.skip"))
                z = f"blocks.{k}.skip"
            cur = f"blocks.{k}.acts.{i}"
            ops.append(("act", z, cur, *_activation_spec(act)))
        h = cur
    ops.append(linear(h, "head", "head", model.head))
    return ops


def _act64(kind: str, values: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    p = {k: (torch.from_numpy(np.asarray(v)) if k == "weight" else v) for k, v in params.items()}
    return runtime.activation(kind, torch.from_numpy(values), p).numpy()


# ---------------------------------------------------------------------------------------
# Constant / needed analysis and emission


def _analyse(ops: Sequence[tuple], in_features: int) -> tuple[dict, dict, dict]:
    """(const, value, need) per vector: module docstring, steps 3 and 4."""
    const: dict[str, np.ndarray] = {"x": np.zeros(in_features, bool)}
    value: dict[str, np.ndarray] = {"x": np.zeros(in_features)}
    for op in ops:
        if op[0] == "linear":
            _, src, dst, _, w, b, _ = op
            reads_live = ((w != 0) & ~const[src][None, :]).any(axis=1)
            const[dst] = ~reads_live
            value[dst] = np.where(const[dst], b + w @ np.where(const[src], value[src], 0.0), 0.0)
        elif op[0] == "act":
            _, src, dst, kind, params = op
            const[dst] = const[src].copy()
            value[dst] = np.where(const[dst], _act64(kind, value[src], params), 0.0)
        else:  # add
            _, a, b, dst = op
            const[dst] = const[a] & const[b]
            value[dst] = np.where(const[dst], value[a] + value[b], 0.0)
    need: dict[str, np.ndarray] = {name: np.zeros(len(c), bool) for name, c in const.items()}
    need["head"][:] = True
    for op in reversed(ops):
        if op[0] == "linear":
            _, src, dst, _, w, _, _ = op
            need[src] |= (w[need[dst]] != 0).any(axis=0)
        elif op[0] == "act":
            need[op[1]] |= need[op[2]]
        else:
            _, a, b, dst = op
            need[a] |= need[dst]
            need[b] |= need[dst]
    return const, value, need


def sparse_model(model: MLP, *, source: Mapping[str, Any] | None = None,
                 input_info: Mapping[str, Any] | None = None
                 ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(description, tensors) of the sparse export of ``model`` (see the module docstring).

    ``source`` (provenance: search, trial, kernel, ...) goes into the description as given;
    ``input_info`` gives the sample shape (``shape``, default: flat features) and the
    preprocessing of raw inputs (``preprocess``: ``divide_by``, ``mean``, ``std``). The
    model's mode is restored afterwards; the model itself is not changed.
    """
    if not isinstance(model, MLP):
        raise ConfigError(f"sparse export supports the models {', '.join(SUPPORTED_MODELS)}; "
                          f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ops = _mlp_ops(model)
    finally:
        model.train(was_training)
    in_features = ops[0][4].shape[1]
    const, value, need = _analyse(ops, in_features)

    # Which features of each vector are materialised (module docstring, step 5).
    emitted = {name: np.flatnonzero(need[name] & ~const[name]) for name in const}
    emitted["x"] = np.arange(in_features)
    emitted["head"] = np.arange(len(const["head"]))
    extra_bias = {name: np.zeros(len(c)) for name, c in const.items()}
    for op in ops:
        if op[0] == "add":
            _, z, b, s = op
            emitted[z] = emitted[s]  # z's constant rows are emitted as bias-only rows
            folded = np.setdiff1d(emitted[s], emitted[b])
            assert const[b][folded].all(), "a needed non-constant skip input was not kept"
            extra_bias[z][folded] += value[b][folded]

    tensors: dict[str, Tensor] = {}
    graph: list[dict[str, Any]] = [{"op": "flatten", "in": "input", "out": "x"}]
    layers: list[dict[str, Any]] = []
    for op in ops:
        if op[0] == "linear":
            _, src, dst, name, w, b, bn_folded = op
            rows, cols = emitted[dst], emitted[src]
            w_rows = w[rows]
            in_kept = np.zeros(w.shape[1], bool)
            in_kept[cols] = True
            folded = const[src] & ~in_kept
            assert not (w_rows[:, ~in_kept & ~folded] != 0).any(), "a read neuron was removed"
            bias = b[rows] + w_rows[:, folded] @ value[src][folded] + extra_bias[dst][rows]
            sub = torch.from_numpy(np.ascontiguousarray(w_rows[:, cols])).to(torch.float32)
            with warnings.catch_warnings():  # "CSR support is in beta": it works here
                warnings.simplefilter("ignore", UserWarning)
                csr = sub.to_sparse_csr()
            tensors[f"{name}.crow_indices"] = csr.crow_indices().clone()
            tensors[f"{name}.col_indices"] = csr.col_indices().clone()
            tensors[f"{name}.values"] = csr.values().clone()
            tensors[f"{name}.bias"] = torch.from_numpy(bias).to(torch.float32)
            graph.append({"op": "linear", "name": name, "in": src, "out": dst, "weight": name,
                          "bias": f"{name}.bias", "shape": [len(rows), len(cols)],
                          "storage": "csr"})
            nnz = int(csr.values().numel())
            dense = int(w.size)
            layers.append({
                "name": name,
                "dense_shape": list(w.shape),
                "shape": [len(rows), len(cols)],
                "nnz": nnz,
                "density": nnz / dense,
                "storage": "csr",
                "batch_norm_folded": bn_folded,
                "constant_inputs_folded": int((w_rows[:, folded] != 0).sum()),
                "removed_rows": np.setdiff1d(np.arange(w.shape[0]), rows).tolist(),
                "removed_columns": np.setdiff1d(np.arange(w.shape[1]), cols).tolist(),
            })
        elif op[0] == "act":
            _, src, dst, kind, params = op
            assert np.array_equal(emitted[src], emitted[dst])
            entry: dict[str, Any] = {"op": "activation", "kind": kind, "in": src, "out": dst}
            if kind == "prelu":
                weight = np.asarray(params["weight"]).reshape(-1)
                kept = weight if weight.size == 1 else weight[emitted[dst]]
                tensors[f"{dst}.weight"] = torch.from_numpy(kept.copy()).to(torch.float32)
                entry["params"] = {"weight": f"{dst}.weight"}
            elif kind == "elu":
                entry["params"] = {"alpha": params["alpha"]}
            graph.append(entry)
        else:
            _, z, b, s = op
            entry = {"op": "add", "a": z, "b": b, "out": s, "b_src": None, "b_dst": None}
            if not np.array_equal(emitted[s], emitted[b]):
                common, dst_pos, src_pos = np.intersect1d(emitted[s], emitted[b],
                                                          return_indices=True)
                tensors[f"{s}.b_src"] = torch.from_numpy(src_pos.astype(np.int64))
                tensors[f"{s}.b_dst"] = torch.from_numpy(dst_pos.astype(np.int64))
                entry["b_src"], entry["b_dst"] = f"{s}.b_src", f"{s}.b_dst"
            graph.append(entry)

    removed: dict[str, Any] = {}
    hidden = removed_total = 0
    for op in ops:
        if op[0] != "act":
            continue
        name = op[2]
        unused = np.flatnonzero(~need[name])
        constant = np.flatnonzero(need[name] & const[name])
        removed[name] = {"width": int(len(need[name])), "kept": int(len(emitted[name])),
                         "constant": constant.tolist(), "unused": unused.tolist()}
        hidden += len(need[name])
        removed_total += len(unused) + len(constant)
    nnz = sum(layer["nnz"] for layer in layers)
    dense = sum(int(np.prod(layer["dense_shape"])) for layer in layers)
    description = {
        "format": runtime.FORMAT,
        "version": runtime.VERSION,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": dict(source or {}),
        "input": {"shape": list(input_info.get("shape", [in_features])) if input_info
                  else [in_features],
                  "features": int(in_features),
                  "unread_features": int((~need["x"]).sum()),
                  **({"preprocess": dict(input_info["preprocess"])}
                     if input_info and input_info.get("preprocess") else {})},
        "num_classes": int(len(const["head"])),
        "output": "head",
        "tensors": runtime.TENSORS_FILE,
        "runtime": runtime.RUNTIME_FILE,
        "graph": graph,
        "layers": layers,
        "removed_neurons": removed,
        "totals": {"nnz": nnz, "dense_weights": dense, "density": nnz / dense if dense else 0.0,
                   "hidden_neurons": hidden, "neurons_removed": removed_total},
        "notes": ("BatchNorm folded into the Linear layers (eval mode); removed neurons: "
                  "'constant' ones (no input-dependent active weight) are folded into the "
                  "biases of the layers that read them, 'unused' ones reach no output; "
                  "density = nnz / weights of the dense layer"),
    }
    return description, tensors


# ---------------------------------------------------------------------------------------
# Writing the folder


def check_model_out(path: str | os.PathLike) -> Path:
    """Refuse an export folder path that cannot be written, before any work is done.

    ``path`` may not exist yet (its parent must be a writable folder), or be an empty
    folder or an earlier snas sparse export (both are replaced); anything else is an error.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--model {str(out)!r} is a file; give a folder path (the sparse "
                          "model is a folder)")
    if out.is_dir() and any(out.iterdir()):
        try:
            runtime.read_description(out)
        except runtime.ExportFormatError:
            raise ConfigError(f"--model {str(out)!r} is a folder that holds other files; give "
                              "a new path (only an earlier sparse export is replaced)") from None
    parent = out.resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"--model folder's parent does not exist: {str(parent)!r}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--model {str(out)!r}: cannot write in {str(parent)!r} "
                          "(permission denied)")
    return out


def write_export(description: Mapping[str, Any], tensors: Mapping[str, Tensor],
                 out: str | os.PathLike) -> Path:
    """Write the export folder atomically: into a temporary sibling folder, then renamed,
    so ``out`` is never half-written (an earlier export at ``out`` is replaced)."""
    out = check_model_out(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        (tmp / runtime.MODEL_FILE).write_text(json.dumps(description, indent=1) + "\n",
                                              encoding="utf-8")
        torch.save(dict(tensors), tmp / runtime.TENSORS_FILE)
        shutil.copyfile(runtime.__file__, tmp / runtime.RUNTIME_FILE)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise ConfigError(f"cannot write --model {str(out)!r}: {exc.strerror or exc}") from None
    shutil.rmtree(old, ignore_errors=True)
    return out


def _check(model: nn.Module, exported: runtime.SparseModel, inputs: Tensor) -> dict[str, Any]:
    """Compare the masked model (eval mode) and the export on ``inputs``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            want = torch.cat([model(chunk.to(device)).cpu() for chunk in inputs.split(512)])
    finally:
        model.train(was_training)
    got = exported(inputs.cpu())
    diff = float((got - want).abs().max()) if len(inputs) else 0.0
    agree = float((got.argmax(1) == want.argmax(1)).float().mean()) if len(inputs) else 1.0
    scale = max(1.0, float(want.abs().max())) if len(inputs) else 1.0
    return {"samples": int(len(inputs)), "max_abs_logit_difference": diff,
            "argmax_agreement": agree, "passed": diff <= CHECK_TOLERANCE * scale}


def export_model(model: MLP, out: str | os.PathLike, *, check_inputs: Tensor | None = None,
                 check_split: str | None = None, source: Mapping[str, Any] | None = None,
                 input_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Export ``model`` to the folder ``out`` and return its description (``model.json``).

    With ``check_inputs`` (normalised samples), the export's logits are compared with the
    masked model's before anything is written; the result goes to ``description["check"]``
    and a difference beyond float rounding raises ``RuntimeError`` (a bug, not a user
    error).
    """
    out = check_model_out(out)
    if check_inputs is not None and not (input_info or {}).get("shape"):
        input_info = {**(input_info or {}), "shape": list(check_inputs.shape[1:])}
    description, tensors = sparse_model(model, source=source, input_info=input_info)
    if check_inputs is not None:
        check = _check(model, runtime.SparseModel(description, tensors), check_inputs)
        description["check"] = {"split": check_split, **check}
        if not check["passed"]:
            raise RuntimeError(f"sparse export differs from the masked model: max |logit "
                               f"difference| {check['max_abs_logit_difference']:.3g}")
    write_export(description, tensors, out)
    return description


# ---------------------------------------------------------------------------------------
# From a trial's checkpoint


def _input_info(data: Any) -> dict[str, Any]:
    from trainables.data import DATASETS

    scale = float(DATASETS[data.config.name](data.config).scale) if data.config else 1.0
    return {"shape": list(data.input_shape),
            "preprocess": {"divide_by": scale, "mean": data.mean.cpu().tolist(),
                           "std": data.std.cpu().tolist(),
                           "note": "x = (raw / divide_by - mean) / std, per channel (flat "
                                   "features: one channel); the model takes x"}}


def export_checkpoint(checkpoint: str | os.PathLike, space: Any, out: str | os.PathLike, *,
                      source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Export the network of a trial's checkpoint folder to the folder ``out``; checked on
    the test split.

    ``space`` is the trial's validated :class:`~snas.core.config.SpaceConfig` (the space
    the checkpoint holds, when it holds one, wins). ``source`` is the provenance the
    caller knows (search, trial id, rank, status, metrics); the export adds the model,
    kernel, dataset, density, epochs and checkpoint path to it (``model.json``'s
    ``source``). Which trial to export is the caller's choice (``snas export --model``
    picks it from the results store); this function reads the checkpoint only.
    """
    from snas.core.config import SpaceConfig
    from trainables.checkpoint import load_state
    from trainables.data import load_dataset
    from trainables.kernels import make_kernel
    from trainables.models import build_model

    out = check_model_out(out)
    source = dict(source or {})
    if space.model.name not in SUPPORTED_MODELS:
        raise ConfigError(f"sparse export supports the models {', '.join(SUPPORTED_MODELS)}; "
                          f"got model.name {space.model.name!r}")
    try:
        state = load_state(checkpoint)
    except Exception as exc:  # a torn or foreign file: one line, whatever torch raised
        raise SearchError(f"cannot read the checkpoint of trial "
                          f"{source.get('trial_id', str(checkpoint))}: {exc}") from None
    if isinstance(state.get("space"), dict):
        space = SpaceConfig.from_dict(state["space"])
    data = load_dataset(space.dataset, "cpu")
    model = build_model(space.model, make_kernel(space.kernel), data.input_shape,
                        data.num_classes, [float(d) for d in state["density"]],
                        torch.Generator().manual_seed(0))
    model.load_state_dict(state["model"])
    source.update({"epochs": state.get("epoch"), "model": space.model.name,
                   "kernel": space.kernel.name, "dataset": space.dataset.name,
                   "density": [float(d) for d in state["density"]],
                   "checkpoint": str(checkpoint)})
    return export_model(model, out, check_inputs=data.test_x, check_split="test",
                        source=source, input_info=_input_info(data))


def export_summary(description: Mapping[str, Any], name: str, out: str | os.PathLike) -> str:
    """What ``snas export NAME --model OUT`` prints: the trial, the size of the sparse
    model against the dense one, removed neurons, the check, and how to load it."""
    source = description["source"]
    check = description.get("check") or {}
    rank = f"rank {source['rank']}" if source.get("rank") else "unranked"
    accuracy = source.get("test_accuracy")
    accuracy = f"{accuracy:.4f}" if isinstance(accuracy, (int, float)) else "-"
    lines = [f"exported trial {source.get('trial_id')} ({rank}, {source.get('kernel')} kernel, "
             f"test_accuracy {accuracy}) of {name} to {out}",
             runtime.summary(description)]
    if check:
        lines.append(f"check on the {check['split']} split ({check['samples']} samples): max "
                     f"|logit difference| {check['max_abs_logit_difference']:.2g}, argmax "
                     f"agreement {check['argmax_agreement']:.4f}")
    lines.append(f"load it without snas: sys.path.insert(0, {str(out)!r}); import "
                 f"snas_sparse_runtime as rt; model = rt.load({str(out)!r})")
    return "\n".join(lines)


__all__ = ["SUPPORTED_MODELS", "check_model_out", "export_checkpoint", "export_model",
           "export_summary", "sparse_model", "write_export"]
