"""The one exception family of snas.

Every error a user can cause (a bad file, a bad flag, an unreachable store) is raised as a
subclass of :class:`SnasError` with a one-line message that names the problem and the
allowed values. The CLI prints that line and exits with code 2; ``--debug`` shows the
traceback.
"""


class SnasError(Exception):
    """Base class of every error snas reports to a user."""


class ConfigError(SnasError, ValueError):
    """A search-space file, a ``--set`` override or a CLI flag is invalid."""


class DataError(SnasError):
    """A dataset cannot be loaded (missing files, bad folder)."""


class StoreError(SnasError):
    """The results store cannot be reached or refuses an operation."""


class SearchError(SnasError):
    """A search cannot be started, resumed or found."""
