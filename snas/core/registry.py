"""The one registry style of snas: names -> plug-ins, each entry carrying its options class.

Kernels, models, datasets, searchers and CLI commands are all registered the same way::

    MODELS.register("mlp", "trainables.models.mlp:build_mlp", options="trainables.models.mlp:MLPOptions")

A target (and an options class) is either the object itself or a lazy ``"module:attr"``
(or, for a target that is a whole module, ``"module"``) string, imported the first time it is asked for: optional or heavy dependencies (torch,
Optuna, torchvision) load only when an entry is used, and this module stays torch-free.
An entry's options class is the frozen dataclass that its section of a search-space file
parses into (``model: {name: mlp, width: 64}`` -> ``MLPOptions(width=64)``).

A registry is a read-only mapping of names to (loaded) plug-ins, in registration order.
Registering a name twice raises; looking up an unknown name raises the one-line
:class:`~snas.core.errors.ConfigError` ``unknown model 'mpl'; choose one of conv2, ..., mlp``
(names sorted); :meth:`Registry.check`, used by the config parser, raises the section's
form ``model.name must be one of conv2, conv4, ..., got 'mpl'`` (registration order).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from snas.core.errors import ConfigError

T = TypeVar("T")


def _load(ref: Any) -> Any:
    """Import a ``"module:attr"`` (or ``"module"``) reference; anything else is returned as
    it is."""
    if not isinstance(ref, str):
        return ref
    module, sep, attr = ref.partition(":")
    if not module or (sep and not attr):
        raise ValueError(f"a lazy registry reference is 'module:attr' or 'module', got {ref!r}")
    obj = importlib.import_module(module)
    if not sep:
        return obj
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry:
    """One registered plug-in: its name, target and options class (both maybe lazy)."""

    name: str
    target: Any
    options: Any = None
    meta: dict[str, Any] | None = None

    def load(self) -> Any:
        self.target = _load(self.target)
        return self.target

    def load_options(self) -> type | None:
        self.options = _load(self.options)
        return self.options


class Registry(Mapping[str, T], Generic[T]):
    """A name -> plug-in registry for one kind of thing (``kind`` names it in errors)."""

    def __init__(self, kind: str, where: str | None = None) -> None:
        self.kind = kind
        #: What an unknown-name error names, e.g. ``model.name`` (default: the kind).
        self.where = where
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: T | str, *, options: type | str | None = None,
                 **meta: Any) -> T | str:
        """Add ``target`` under ``name`` (and return it, so this works as a plain call or
        inside a decorator). ``meta``: small facts about the entry that callers may read
        without loading it (e.g. ``multi_objective=True``)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, options, dict(meta))
        return target

    def decorator(self, name: str, *, options: type | str | None = None, **meta: Any) -> Any:
        """``@REGISTRY.decorator("name", options=Opts)`` registers the decorated object."""

        def decorate(obj: T) -> T:
            self.register(name, obj, options=options, **meta)
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests that register a throw-away plug-in)."""
        self._entries.pop(name, None)

    def entry(self, name: Any) -> Entry:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of "
                              f"{', '.join(sorted(self._entries))}") from None

    def check(self, name: Any) -> str:
        """``name`` if registered, else the config form of the error (see the module doc)."""
        if name not in self:
            raise ConfigError(f"{self.where or self.kind} must be one of "
                              f"{', '.join(self._entries)}, got {name!r}")
        return name

    def __getitem__(self, name: Any) -> T:
        """The (loaded) plug-in registered under ``name``."""
        return self.entry(name).load()

    def get(self, name: Any, default: Any = None) -> Any:
        return self[name] if name in self else default

    def options(self, name: Any) -> type:
        """The options class of ``name``; an entry without one takes no options."""
        cls = self.entry(name).load_options()
        return cls if cls is not None else _NoOptions

    def meta(self, name: Any, key: str, default: Any = None) -> Any:
        return (self.entry(name).meta or {}).get(key, default)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


@dataclass(frozen=True)
class _NoOptions:
    """The options of a plug-in that takes none."""


__all__ = ["Entry", "Registry"]
