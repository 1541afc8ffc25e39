"""A package's public names imported on first use (PEP 562), for `refinelab` and `refinelab.api`.

Why: the names live in modules that load LangGraph, LangChain and the model client (~2.5 s on 2 cores).
Importing a package runs its `__init__` first, so a package that imported them eagerly made every user of
any light submodule pay that: `refinelab --help`, `--version` and a one-line input error included.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Mapping


def lazy_exports(package: str, homes: Mapping[str, str], public: Collection[str],
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`'s `__init__`: a name of `homes` (name -> its module) is
    imported on first use, then kept as an ordinary module attribute; `dir()` lists `public`, so `help()`
    loads and shows the typed API."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        if name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
            namespace[name] = value  # once loaded, an ordinary module attribute
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
