"""Registries by name whose entries are imported on first use.

The config layer checks names against the registries of datasets, architectures and noise
models when the workflow is parsed; the objects behind the names (builders, ``nn.Module``
classes) import torch. A :class:`LazyRegistry` lists the names without importing anything and
imports an entry, written ``"module:attribute"``, the first time it is looked up (as
:meth:`memristor_mat.methods.Method.hook_class` does for the methods' hooks).
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Any, Iterator, Mapping

__all__ = ["LazyRegistry", "resolve"]


def resolve(target: str) -> Any:
    """The object named by ``"module:attribute"`` (imports the module)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class LazyRegistry(Mapping[str, Any]):
    """A read-only mapping name -> object, each object given as ``"module:attribute"`` and
    imported when first looked up. Membership, iteration and ``len`` import nothing."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._targets = MappingProxyType(dict(targets))
        self._resolved: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        target = self._targets[name]
        if name not in self._resolved:
            self._resolved[name] = resolve(target)
        return self._resolved[name]

    def __contains__(self, name: object) -> bool:
        # Mapping's own __contains__ would look the entry up, importing it.
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def target(self, name: str) -> str:
        """Where entry ``name`` lives, ``"module:attribute"``, without importing it."""
        return self._targets[name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._targets)!r})"
