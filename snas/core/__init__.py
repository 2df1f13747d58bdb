"""The torch-free core of snas: what the application (``snas``) and the trainables
(``trainables``) both rely on.

- :mod:`snas.core.errors`: the one exception family (``SnasError`` and its subclasses);
- :mod:`snas.core.metrics`: metric names;
- :mod:`snas.core.config`: the search-space schema and its strict parser;
- :mod:`snas.core.density`: density rules (kept counts, the density-vector wire format);
- :mod:`snas.core.budget`: cost models and budgets over density vectors;
- :mod:`snas.core.graphs`: wiring-graph statistics on numpy masks and networkx graphs;
- :mod:`snas.core.registry`: the one registry style for plug-ins;
- :mod:`snas.core.faults`: named fault-injection points for the kill tests.

Nothing here imports torch or Ray (a subprocess test checks it), so the CLI can validate
input and the store, dashboard and report can read results without loading either.
"""
