"""Topology of trained sparse networks: NNSTD between masks, SET mask traces, and the RBF
similarity of wiring-graph statistics; the ``snas topology`` command.

The parts: :mod:`~snas.topology.nnstd` (NNSTD, Liu et al. 2020, with the neuron groups
that skip connections tie together), :mod:`~snas.topology.trace` (NNSTD of a SET trial's
mask per epoch to its initial mask), :mod:`~snas.topology.similarity` (Janik & Nowak's RBF
similarity of graph statistics) and :mod:`~snas.topology.command` (the CLI contract,
re-exported here for the command registry). The procedures are described in each module's
docstring.

numpy and scipy only at import; torch (checkpoints) is imported inside :func:`run`.
"""

from snas.topology.command import DEFAULT_TOP, DESCRIPTION, HELP, add_arguments, run
from snas.topology.nnstd import (
                                 INPUT_GROUP,
                                 OUTPUT_GROUP,
                                 STREAM_GROUP,
                                 Group,
                                 NNSTDResult,
                                 chain_groups,
                                 has_skips,
                                 match_neurons,
                                 mlp_groups,
                                 ned_matrix,
                                 nnstd,
                                 nnstd_matrix,
                                 unmatched_distance,
)
from snas.topology.similarity import (
                                 GRAPH_FEATURES,
                                 graph_feature_matrix,
                                 graph_feature_values,
                                 rbf_similarity,
)
from snas.topology.trace import trace_distances

__all__ = ["DEFAULT_TOP", "DESCRIPTION", "GRAPH_FEATURES", "HELP", "INPUT_GROUP",
           "OUTPUT_GROUP", "STREAM_GROUP", "Group", "NNSTDResult", "add_arguments",
           "chain_groups", "graph_feature_matrix", "graph_feature_values", "has_skips",
           "match_neurons", "mlp_groups", "ned_matrix", "nnstd", "nnstd_matrix",
           "rbf_similarity", "run", "trace_distances", "unmatched_distance"]
