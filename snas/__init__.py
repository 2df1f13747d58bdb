"""snas: search for per-layer density vectors of sparse networks on Ray Tune."""

from snas.core.errors import ConfigError, DataError, SearchError, SnasError, StoreError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "SearchError", "SnasError", "StoreError", "__version__"]
