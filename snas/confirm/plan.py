"""What a confirmation trains: the searched vectors, their references at equal cost, seeds.

A confirmation of search ``NAME`` retrains its ``top`` vectors (the ranking of ``snas
show``, the dense baseline left out) and, for each, every reference allocation of
:mod:`snas.core.allocations` at that vector's cost (in the search's cost resource: FLOPs
under a FLOPs budget, else weights), each with ``seeds`` training seeds, full epochs, no
early stopping, on the search's own data split. ``dense`` is one shared reference. Two
candidates with the same density vector share one set of trials.

Seeds are ``base + 1 .. base + seeds`` where ``base`` is the search's ``training.seed``:
the seed the search selected on is not reused, so the search's lucky draws do not enter the
confirmation. No torch here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snas.core import metrics as M
from snas.core.allocations import ALLOCATIONS, matching_cost, reference_allocation
from snas.core.density import density_key
from snas.core.errors import ConfigError, SearchError

#: What every confirmation trial's config carries besides the space and the densities.
CONFIG_KEY = "confirm"
#: The suffix of the stored record of a confirmation (``NAME.confirm``).
RECORD_SUFFIX = ".confirm"
#: The suffix of the one-trial run that trains the dense network whose weights
#: ``global_magnitude`` prunes, when the search has no dense baseline checkpoint.
DENSE_SUFFIX = ".dense"
SEARCHED, REFERENCE = "searched", "reference"
DEFAULT_TOP, DEFAULT_SEEDS = 3, 3
DEFAULT_REFERENCES = ("uniform", "erk", "dense")


@dataclass(frozen=True)
class Candidate:
    """One density vector the confirmation trains over seeds.

    ``kind``: ``searched`` (a vector the search found; ``trial_id`` is its search trial) or
    ``reference`` (the allocation ``reference`` at the cost of ``reference_of``, the label of
    a searched candidate; None for ``dense``, which has no cost to match).
    """

    label: str
    kind: str
    density: tuple[float, ...]
    reference: str | None = None
    reference_of: str | None = None
    trial_id: str | None = None

    @property
    def key(self) -> str:
        """Identifies the vector: candidates with equal vectors share trials."""
        return ",".join(f"{d:.12g}" for d in self.density)


@dataclass(frozen=True)
class ConfirmPlan:
    """The candidates, the seeds, and the cost resource the references match."""

    search: str
    candidates: tuple[Candidate, ...]
    seeds: tuple[int, ...]
    resource: str
    references: tuple[str, ...]
    top: int
    space: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def record_name(self) -> str:
        return record_name(self.search)

    def vectors(self) -> list[tuple[str, tuple[float, ...]]]:
        """(key, density) of each distinct vector, in candidate order."""
        seen: dict[str, tuple[float, ...]] = {}
        for c in self.candidates:
            seen.setdefault(c.key, c.density)
        return list(seen.items())

    def trial_configs(self) -> list[dict[str, Any]]:
        """One Tune config per (distinct vector, seed): the space with that training seed,
        the density keys, and :data:`CONFIG_KEY` naming the vector and the seed."""
        configs = []
        for key, density in self.vectors():
            for seed in self.seeds:
                space = copy.deepcopy(dict(self.space))
                space["training"] = {**dict(space.get("training") or {}), "seed": seed}
                configs.append({"space": space,
                                **{density_key(i): d for i, d in enumerate(density)},
                                CONFIG_KEY: {"vector": key, "seed": seed}})
        return configs

    @classmethod
    def from_params(cls, search: str, params: Mapping[str, Any],
                    space: Mapping[str, Any]) -> ConfirmPlan:
        """The plan a confirmation's stored record holds (:meth:`params` read back)."""
        candidates = tuple(Candidate(c["label"], c["kind"], tuple(c["density"]),
                                     c.get("reference"), c.get("reference_of"),
                                     c.get("trial_id")) for c in params["candidates"])
        return cls(search, candidates, tuple(params["seeds"]), params["resource"],
                   tuple(params["references"]), params["top"], space=space)

    def params(self) -> dict[str, Any]:
        """What the stored record of the confirmation says about its plan."""
        return {"confirms": self.search, "top": self.top, "seeds": list(self.seeds),
                "references": list(self.references), "resource": self.resource,
                "candidates": [{"label": c.label, "kind": c.kind, "density": list(c.density),
                                "reference": c.reference, "reference_of": c.reference_of,
                                "trial_id": c.trial_id} for c in self.candidates]}


def record_name(search: str) -> str:
    return f"{search}{RECORD_SUFFIX}"


def check_options(top: Any, seeds: Any, references: Sequence[str]) -> None:
    """One-line errors for bad ``--top``/``--seeds``/``--references``."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"--top must be an integer >= 1, got {top!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"--seeds must be an integer >= 2 (a spread needs two), got {seeds!r}")
    for name in references:
        if name not in ALLOCATIONS:
            raise ConfigError(f"--references: unknown reference allocation {name!r}; choose "
                              f"from {', '.join(ALLOCATIONS.names())}")
    if len(set(references)) != len(references):
        raise ConfigError(f"--references lists an allocation twice: {','.join(references)}")


def layer_table(view: Any) -> list[dict[str, Any]]:
    """The search's layer table (name, shape, positions), as the budget code reads it."""
    layers = view.params.get("layers") or []
    if not layers or any(not isinstance(layer, Mapping) or "shape" not in layer
                         for layer in layers):
        raise SearchError(f"search {view.name!r} has no layer table; it cannot be confirmed")
    return [{"name": layer["name"], "shape": list(layer["shape"]),
             "positions": layer.get("positions", 1)} for layer in layers]


def resource_of(view: Any) -> str:
    return "flops" if view.cost == M.ACTIVE_FLOPS else "weights"


def searched_vectors(view: Any, top: int) -> list[tuple[str, tuple[float, ...]]]:
    """(trial id, density) of the ``top`` best trials, the dense baseline left out."""
    n_layers = len(layer_table(view))
    out = []
    for t in view.scored:
        if t.get("is_baseline") or not t.get("density"):
            continue
        density = [float(d) for d in t["density"]]
        if len(density) == 1 and n_layers > 1:  # a uniform search
            density = density * n_layers
        out.append((t["trial_id"], tuple(density)))
        if len(out) == top:
            break
    if not out:
        raise SearchError(f"search {view.name!r} has no finished trial besides the dense "
                          "baseline; nothing to confirm")
    return out


def make_plan(view: Any, top: int, seeds: int, references: Sequence[str],
              dense_weights: Any = None) -> ConfirmPlan:
    """The confirmation plan of a search (``dense_weights``: the trained dense network's
    weights per layer, needed only for ``global_magnitude``)."""
    check_options(top, seeds, references)
    layers = layer_table(view)
    resource = resource_of(view)
    candidates: list[Candidate] = []
    for rank, (trial_id, density) in enumerate(searched_vectors(view, top), 1):
        label = f"rank {rank}"
        candidates.append(Candidate(label, SEARCHED, density, trial_id=trial_id))
        fraction = matching_cost(layers, list(density), resource)
        for ref in references:
            if ref == "dense":
                continue
            vector = reference_allocation(ref, layers, fraction, resource, weights=dense_weights)
            candidates.append(Candidate(f"{ref} @ {label}", REFERENCE, tuple(vector),
                                        reference=ref, reference_of=label))
    if "dense" in references:
        candidates.append(Candidate("dense", REFERENCE, (1.0,) * len(layers), reference="dense"))
    base = int((view.space.get("training") or {}).get("seed", 0))
    return ConfirmPlan(view.name, tuple(candidates), tuple(range(base + 1, base + 1 + seeds)),
                       resource, tuple(references), top, space=view.space)


__all__ = ["CONFIG_KEY", "Candidate", "ConfirmPlan", "DEFAULT_REFERENCES", "DEFAULT_SEEDS",
           "DEFAULT_TOP", "DENSE_SUFFIX", "RECORD_SUFFIX", "check_options", "layer_table",
           "make_plan", "record_name", "resource_of", "searched_vectors"]
