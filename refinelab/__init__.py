"""RefineLab: refine multiple-choice QA datasets under a token budget, with an audit trail.

The public API (`profile`, `plan`, `refine`, `resume`, `report`, `export`, `build_graph`) and its types
(`RunOptions`, `RunHooks`, `RunResult`, `Settings`) are imported lazily: LangGraph is heavy to import,
and `refinelab --help` should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "profile": "refinelab.api", "plan": "refinelab.api", "refine": "refinelab.api", "resume": "refinelab.api",
    "report": "refinelab.api", "export": "refinelab.api", "RunResult": "refinelab.api",
    "ProfileResult": "refinelab.api", "build_graph": "refinelab.graph.build",
    "RunOptions": "refinelab.agents.options", "RunHooks": "refinelab.agents.options",
    "Settings": "refinelab.config", "Targets": "refinelab.metrics.targets",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'refinelab' has no attribute {name!r}")
