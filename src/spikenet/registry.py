"""One registration pattern for every pluggable part: encoders, neurons, surrogates, tasks, dataset readers.

Each kind of part has one ``Registry``, beside the parts it holds (``spikenet.models.ENCODERS``,
``spikenet.neurons.NEURONS``, ``spikenet.neurons.SURROGATES``, ``spikenet.tasks.TASKS``,
``spikenet.data.READERS``). A part registers itself where it is defined, with a decorator::

    @ENCODERS.register("myenc", spiking=True)
    class MyEncoder(Encoder): ...

Keyword arguments are the entry's metadata (``check`` for a function that validates the part's config
before any data is read, ``files`` for readers, ``tiny``: the overrides of a small, fast run of the part,
which tests and smoke scripts use, ...). Everything that
enumerates parts (tests, benchmarks, ablation presets) reads the registries, so a new part is covered
without editing them. Parts from outside this repository register the same way from a module that the
``plugins`` config key imports (``load_plugins``; docs/extending.md).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PLUGINS_ENV = "SPIKENET_PLUGINS"
"""Comma-separated plugin modules that tools without a run config (pytest, benchmarks) import."""


class PluginError(ImportError):
    """A plugin module that cannot be imported; the message is one line naming it."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered part: its name, the object (a class or a builder) and its metadata."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)
    module: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.meta[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)


class Registry(Generic[T]):
    """Names -> parts of one kind (``kind``: what an error calls them; ``key``: the config key choosing one)."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: register the decorated class or function as ``name``; a name is registered once."""

        def wrap(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return wrap

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register ``obj`` as ``name`` (the decorator's work, for parts made at run time)."""
        module = getattr(obj, "__module__", "") or ""
        old = self._entries.get(name)
        if old is not None and (old.module, getattr(old.obj, "__qualname__", None)) != (
                module, getattr(obj, "__qualname__", None)):
            raise ValueError(f"{self.kind} '{name}' is registered twice: by {old.module} and by {module}")
        self._entries[name] = Entry(name, obj, dict(meta), module)

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that register a temporary part)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry ``name``; an unknown name raises ``ValueError`` in one line with the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"{self.key}: unknown {self.kind} '{name}'; choose one of {', '.join(self.names())} "
                             f"(a part of your own: plugins=[your.module], docs/extending.md)") from None

    def get(self, name: str) -> T:
        """The registered object ``name`` (see ``entry``)."""
        return self.entry(name).obj

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order (built-in parts first)."""
        return tuple(self._entries)

    def entries(self) -> tuple[Entry[T], ...]:
        return tuple(self._entries.values())

    def where(self, **meta: Any) -> tuple[str, ...]:
        """The names whose metadata has every given value (``ENCODERS.where(spiking=True)``)."""
        return tuple(e.name for e in self._entries.values() if all(e.meta.get(k) == v for k, v in meta.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def plugin_modules(configured: Sequence[str] = ()) -> list[str]:
    """The plugin modules to import: ``configured`` (the ``plugins`` key) then ``$SPIKENET_PLUGINS``, once each."""
    names = [str(m).strip() for m in configured]
    names += [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")]
    return list(dict.fromkeys(m for m in names if m))


_LOADED: dict[str, Any] = {}


def load_plugins(configured: Sequence[str] = ()) -> list[Any]:
    """Import each plugin module (its decorators register its parts); returns the modules.

    A module that cannot be imported raises ``PluginError`` in one line naming it and why.
    """
    modules = []
    for name in plugin_modules(configured):
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            missing = getattr(err, "name", None)
            why = f"no module named '{missing}'" if isinstance(err, ModuleNotFoundError) and missing else str(err)
            raise PluginError(f"plugins: cannot import '{name}': {why} (is its folder on PYTHONPATH?)") from None
        _LOADED[name] = modules[-1]
    return modules


def plugin_config_dirs(modules: Sequence[Any] | None = None) -> list[Path]:
    """The ``conf/`` folder beside each plugin module's file (its group options: ``conf/model/myenc.yaml``, ...);
    ``modules``: by default every plugin imported so far."""
    modules = list(_LOADED.values()) if modules is None else modules
    dirs = [Path(m.__file__).resolve().parent / "conf" for m in modules if getattr(m, "__file__", None)]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))
