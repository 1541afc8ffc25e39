"""RefineLab: refine multiple-choice QA datasets under a token budget, with an audit trail."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "build_graph", "refine"]


def build_graph(config: Any = None, **kwargs: Any) -> Any:
    """The compiled LangGraph graph (imported lazily: LangGraph is heavy to import)."""
    from refinelab.graph.build import build_graph as _build

    return _build(config, **kwargs)


def refine(dataset: Any, budget: int, targets: Any = None, **kwargs: Any) -> Any:
    """Run the whole refinement on `dataset` within `budget` tokens; returns a RunResult."""
    from refinelab.api import refine as _refine

    return _refine(dataset, budget=budget, targets=targets, **kwargs)
