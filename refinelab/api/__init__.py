"""The public Python API: profile, screen, plan (dry run), refine, resume, report, export, open_run, list_runs.

Every function opens its folder through `refinelab.api.context.open_run_context`; the CLI is a thin layer
that parses arguments and calls these.

The names load on first use (`refinelab.lazy_exports`), as `refinelab`'s own do: importing one light
submodule (the CLI's `refinelab.api.run_lock`, for its lock error) runs this file first, and importing
`runs` here would pull in LangGraph, LangChain and the model client, ~2.5 s, before `refinelab --help` or
a one-line input error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from refinelab.lazy_exports import lazy_exports

_EXPORTS = {
    "plan": "refinelab.api.planning",
    "profile": "refinelab.api.profiling", "ProfileResult": "refinelab.api.profiling",
    "list_runs": "refinelab.api.run_list", "RunEntry": "refinelab.api.run_list",
    "refine": "refinelab.api.runs", "resume": "refinelab.api.runs", "RunResult": "refinelab.api.runs",
    "screen": "refinelab.api.screening", "ScreenResult": "refinelab.api.screening",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily (below)
    from refinelab.api.planning import plan
    from refinelab.api.profiling import ProfileResult, profile
    from refinelab.api.run_list import RunEntry, RunLocation, list_runs
    from refinelab.api.runs import RunResult, refine, resume
    from refinelab.api.screening import ScreenResult, screen


def find_run(run: str | Path, runs_dir: str | Path | None = None) -> RunLocation:
    """The run that `run` names, for every Python function that opens one: a run id in `runs_dir` (default:
    the configured runs folder, settings `runs_dir` / REFINELAB_RUNS_DIR, where `refine` wrote it) or a path
    to a run folder. The rule is the CLI's (`run_list.locate_run`), so an id or a path that one command
    takes, every other takes too. Here it lives because `report` and `export` must not load the graph
    (`runs`, ~2.5 s) to find a folder. A missing run, or a folder that is not a run (a plan's, a profile's, any
    other), is one `RunNotFound`: it used to be a DataError, a ReportError or a FileNotFoundError depending on
    the function, and `open_run` accepted any folder, failing only later with "resume it first"."""
    from refinelab.api.run_list import NOT_A_RUN_FOLDER, is_run_folder, locate_run
    from refinelab.errors import RunNotFound

    name = str(run)
    where = locate_run(name, runs_dir)  # RunNotFound: neither an id in the runs folder nor a run folder there
    if not where.path.is_dir():
        here = Path(name)
        aside = (f"; {here.resolve()} is a folder but not a RefineLab run folder" if here.is_dir() else "")
        raise RunNotFound(name, f"no run of that id in the runs folder {where.runs_dir}{aside}")
    if not is_run_folder(where.path):
        raise RunNotFound(str(where.path), NOT_A_RUN_FOLDER)
    return where


def open_run(run_dir: str | Path, *, runs_dir: str | Path | None = None) -> RunResult:
    """An existing run as a `RunResult` (to export it: `.to_hf()`, `.save(path, format=…)`): its id in the
    runs folder (`runs_dir`, default the configured one) or a path to its folder (`find_run`)."""
    from refinelab.api.runs import RunResult

    return RunResult.open(run_dir, runs_dir=runs_dir)


def report(run_dir: str | Path, output: str | Path | None = None, *, runs_dir: str | Path | None = None) -> Path:
    """Write the run's `report.html` (or `output`): distributions before/after, budget, edits, leftovers.
    `run_dir`: the run's id in the runs folder (`runs_dir`, default the configured one) or its folder."""
    from refinelab.api.report_html import build_report  # matplotlib loads only when a report is made

    return build_report(find_run(run_dir, runs_dir).path, output)


def export(run_dir: str | Path, lm_eval_dir: str | Path, task_name: str | None = None,
           choice_format: Literal["letters", "text"] = "letters", *, runs_dir: str | Path | None = None) -> Path:
    """Write the refined set as an lm-eval-harness task (YAML + JSONL) into `lm_eval_dir`; the YAML path.
    `run_dir`: the run's id in the runs folder (`runs_dir`, default the configured one) or its folder;
    `task_name` defaults to `refinelab_<run id>`; `choice_format="letters"` lists the options under the
    question and scores the answer's letter (MMLU style), `"text"` scores each option's text after the
    question (ARC style)."""
    from refinelab.api.export_lmeval import export_lm_eval

    return export_lm_eval(find_run(run_dir, runs_dir).path, lm_eval_dir, task_name, choice_format)


__all__ = ["ProfileResult", "RunEntry", "RunResult", "ScreenResult", "export", "list_runs", "open_run", "plan",
           "profile", "refine", "report", "resume", "screen"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
