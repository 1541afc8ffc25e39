"""RefineLab: refine multiple-choice QA datasets under a token budget, with an audit trail.

    import refinelab
    result = refinelab.refine("data.jsonl", budget=50_000)   # or a datasets.Dataset, DataFrame, list of dicts
    result.save("refined/", format="parquet")                # data + README.md dataset card

The public API (`profile`, `screen`, `plan`, `refine`, `resume`, `report`, `export`, `open_run`, `list_runs`,
`build_graph`, `load_settings`, `load_dataset`, `as_dataset`), its types (`RunOptions`, `RunHooks`, `RunResult`,
`ProfileResult`, `ScreenResult`, `Settings`, `Targets`, `Dataset`, `QAItem`) and the errors it raises on purpose
(`RefineLabError`, the base of `DataError`, `ConfigError` and `RunNotFound`; docs/python_api.md "Errors")
are imported on first use: LangGraph is heavy to import, and `refinelab --help` should not pay for it.
`help(refinelab)` and `dir(refinelab)` load them, so their typed signatures and docstrings show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refinelab.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "profile": "refinelab.api", "plan": "refinelab.api", "refine": "refinelab.api", "resume": "refinelab.api",
    "report": "refinelab.api", "export": "refinelab.api", "open_run": "refinelab.api", "RunResult": "refinelab.api",
    "ProfileResult": "refinelab.api", "screen": "refinelab.api", "ScreenResult": "refinelab.api",
    "list_runs": "refinelab.api",
    "build_graph": "refinelab.graph.build",
    "RunOptions": "refinelab.agents.options", "RunHooks": "refinelab.agents.options",
    "Settings": "refinelab.config", "load_settings": "refinelab.config", "Targets": "refinelab.metrics.targets",
    "Dataset": "refinelab.schema", "QAItem": "refinelab.schema", "load_dataset": "refinelab.io",
    "as_dataset": "refinelab.io",
    "RefineLabError": "refinelab.errors", "DataError": "refinelab.errors", "ConfigError": "refinelab.errors",
    "RunNotFound": "refinelab.errors",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily (below)
    from refinelab.agents.options import RunHooks, RunOptions
    from refinelab.api import (
        ProfileResult,
        RunResult,
        ScreenResult,
        export,
        list_runs,
        open_run,
        plan,
        profile,
        refine,
        report,
        resume,
        screen,
    )
    from refinelab.config import Settings, load_settings
    from refinelab.errors import ConfigError, DataError, RefineLabError, RunNotFound
    from refinelab.graph.build import build_graph
    from refinelab.io import as_dataset, load_dataset
    from refinelab.metrics.targets import Targets
    from refinelab.schema import Dataset, QAItem

__all__ = [  # the same names as _EXPORTS (a test checks), spelled out for linters and type checkers
    "ConfigError", "DataError", "Dataset", "ProfileResult", "QAItem", "RefineLabError", "RunHooks", "RunNotFound",
    "RunOptions", "RunResult", "ScreenResult", "Settings", "Targets", "__version__", "as_dataset", "build_graph", "export", "list_runs", "load_dataset", "load_settings", "open_run", "plan",
    "profile", "refine", "report", "resume", "screen",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
