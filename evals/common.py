"""Shared plumbing for the paper-reproduction evals: model flags, settings, data mixes, a wall-clock
deadline, result files.

Why a deadline: `make evals` must finish in bounded time on 2 (shared) cores, but a token budget does
not bound wall time when the local model is slow. The deadline acts like the budget running out: after
it, every new model call raises `BudgetExhausted`, so a refinement run finalizes with what it has done
(the graph's normal path) and the result file says the run was cut short. Cached calls still replay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinelab.config import EMBEDDED, MOVED_TO_OPTIONS, ModelSpec, Roles, Settings, load_settings
from refinelab.errors import BudgetExhausted
from refinelab.io import load_dataset, read_jsonl
from refinelab.metrics.divergence import jensen_shannon
from refinelab.operations import Op
from refinelab.run_layout import CHANGES, REFINED
from refinelab.schema import Dataset, QAItem
from refinelab.tools.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DATA = ROOT.parent / "shared" / "data"
MMLU_TEST = DATA / "mmlu" / "test"
DEFAULT_MODEL = "qwen2.5-coder-1.5b"  # the embedded default (refinelab.config.ModelSpec)
UNIFORM_TARGETS = ROOT / "targets" / "uniform_mmlu.yaml"

# The paper's headline figures (arXiv 2511.06530), for the summary tables.
PAPER = {
    "jsd_reduction": ">90% coverage/difficulty JSD reduction",
    "correction": ">94% correction rate",
    "residual": "<4% residual error rate",
    "diversity": "distractor diversity x2",
}


# ------------------------------------------------------------------------------------------ flags

def add_common_args(parser: argparse.ArgumentParser, *, deadline_quick: float, deadline_full: float | None = None) -> None:
    """--endpoint/--model pick any OpenAI-compatible endpoint; --quick bounds size and wall time."""
    parser.add_argument("--endpoint", default=EMBEDDED, help="'embedded' (default) or an OpenAI-compatible base URL")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    parser.add_argument("--concurrency", type=int, default=2, help="calls in flight per role")
    parser.add_argument("--quick", action="store_true", help="small sizes and a wall-clock deadline (CI / 2 cores)")
    parser.add_argument("--deadline", type=float, default=None,
                        help=f"seconds of new model calls (quick: {deadline_quick:.0f}; "
                             f"full: {deadline_full or 'none'}); later calls count as out of budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "evals"), help="where the eval's run folders go")
    parser.add_argument("--no-cache", action="store_true", help="do not reuse cached model responses")
    parser.add_argument("--tag", default=None, help="result file name (default: the eval's name, _quick when --quick)")
    parser.set_defaults(_deadline_quick=deadline_quick, _deadline_full=deadline_full)


def deadline_seconds(args: argparse.Namespace) -> float | None:
    if args.deadline is not None:
        return args.deadline if args.deadline > 0 else None
    return args._deadline_quick if args.quick else args._deadline_full


def role_spec(args: argparse.Namespace, **update: Any) -> ModelSpec:
    fields: dict[str, Any] = {"endpoint": args.endpoint, "model": args.model, "api_key_env": args.api_key_env,
                              "concurrency": args.concurrency, "timeout_s": 900.0, "max_parse_retries": 1}
    return ModelSpec(**(fields | update))


def settings_for(args: argparse.Namespace) -> Settings:
    """Every role on the chosen model; long timeouts because local servers are shared and queue calls.
    Settings only (models, runs folder, cache): what the run does (rounds, planner mode, attempts, seed) is a
    run option, passed with `run_choices` in the options of `refine(...)` / `open_run_context(...)`."""
    base = load_settings(overrides={"runs_dir": args.runs_dir, "use_cache": not args.no_cache})
    roles = Roles(judge=role_spec(args, max_tokens=400), writer=role_spec(args, temperature=0.7, max_tokens=500),
                  validator=role_spec(args, max_tokens=400))
    return base.model_copy(update={"roles": roles})


#: the run choices that were settings until they became run options (`refinelab.config.MOVED_TO_OPTIONS`)
RUN_CHOICES = frozenset(MOVED_TO_OPTIONS)


def run_choices(args: argparse.Namespace, **choices: Any) -> dict[str, Any]:
    """The run options an eval used to put into its settings: `--seed`, plus any of `rounds`,
    `planner_mode`, `max_attempts` given here. Merge them into the run's options:
    `RunOptions(..., **run_choices(args, rounds=1))` or `{**options, **run_choices(args)}`."""
    unknown = sorted(set(choices) - RUN_CHOICES)
    if unknown:
        raise TypeError(f"run_choices: {', '.join(unknown)} not among {', '.join(sorted(RUN_CHOICES))}; "
                        "pass other run options to RunOptions directly")
    return {"seed": args.seed, **choices}


def model_label(args: argparse.Namespace) -> str:
    return args.model if args.endpoint == EMBEDDED else f"{args.model}@{args.endpoint}"


# ------------------------------------------------------------------------------------------- data

def mmlu() -> Dataset:
    return load_dataset(MMLU_TEST, on_invalid="quarantine")


def by_subject(dataset: Dataset) -> dict[str, list[QAItem]]:
    groups: dict[str, list[QAItem]] = defaultdict(list)
    for item in dataset:
        groups[item.subject].append(item)
    return groups


#: the skewed mix the coverage evals start from (eval_jsd_curve, eval_modes, eval_expand_examples): this
#: share of the items from these two subjects, the rest spread over the others
HEAVY = ("high_school_mathematics", "elementary_mathematics")
HEAVY_SHARE = 0.7


def skewed_mix(n: int, heavy: Sequence[str], heavy_share: float, seed: int,
               light: Sequence[str] | None = None) -> Dataset:
    """`heavy_share` of `n` items from the `heavy` subjects, the rest one or two per other subject, so the
    mix is skewed in domain (and, through the subjects, in skill and difficulty)."""
    groups = by_subject(mmlu())
    rng = random.Random(seed)
    n_heavy = round(n * heavy_share)
    picked: list[QAItem] = []
    for k, subject in enumerate(heavy):
        share = n_heavy // len(heavy) + (1 if k < n_heavy % len(heavy) else 0)
        picked += rng.sample(groups[subject], share)
    others = list(light) if light else sorted(s for s in groups if s not in heavy)
    rng.shuffle(others)
    position = 0
    while len(picked) < n:
        subject = others[position % len(others)]
        pool = [i for i in groups[subject] if i not in picked]
        picked.append(rng.choice(pool))
        position += 1
    return Dataset(picked, name=f"mmlu-skewed-{n}")


def domain_marginal(coverage: Mapping[str, float]) -> dict[str, float]:
    """'domain|skill' shares → domain shares."""
    out: dict[str, float] = defaultdict(float)
    for cell, share in coverage.items():
        out[cell.split("|", 1)[0]] += share
    return dict(out)


def domain_jsd(coverage: Mapping[str, float], target: Mapping[str, float]) -> float | None:
    """JSD between the domain shares of a 'domain|skill' coverage dict and target domain shares."""
    if not coverage or not target:
        return None
    return jensen_shannon(domain_marginal(coverage), target)


def measured_buckets(run_dir: Path, targets: Any) -> dict[str, tuple[str, str]]:
    """item id -> (who wrote it, the difficulty bucket the panel measured for it under `targets`, or
    "unmeasured"), over a run's refined set: where its items, new ones above all, landed."""
    return {item.id: (item.provenance.created_by,
                      "unmeasured" if item.difficulty is None else targets.bucket(float(item.difficulty)))
            for item in read_jsonl(Path(run_dir) / REFINED)}


def last_attempts(run_dir: Path, operations: Collection[str]) -> dict[str, dict[str, Any]]:
    """edit id -> the last attempt recorded in a run's changes.jsonl, for the edits of `operations`: how
    each edit ended (committed, or the reason its last try was refused)."""
    last: dict[str, dict[str, Any]] = {}
    for line in (Path(run_dir) / CHANGES).read_text(encoding="utf-8").splitlines():
        change = json.loads(line)
        if change.get("operation") in operations:
            last[change["edit_id"]] = change
    return last


def expand_landings(run_dir: Path) -> list[tuple[dict[str, Any], str | None]]:
    """Each expand's last attempt in a run, with the cell its new item was measured into (its label in the
    refined set) when it was committed, else None. The cell comes from the refined set, never from the
    change's `after`: that is the draft as written, which carries the cell it was written for."""
    cells = {item.id: item.cell.key for item in read_jsonl(Path(run_dir) / REFINED)}
    return [(change, cells.get(str((change.get("after") or {}).get("id")), "not in the refined set")
             if change.get("outcome") == "committed" else None)
            for change in last_attempts(run_dir, {Op.EXPAND.value}).values()]


def reduction(before: float | None, after: float | None) -> float | None:
    """Relative reduction (1 = divergence gone); None when undefined."""
    if before is None or after is None or before <= 0:
        return None
    return (before - after) / before


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------- deadline

@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[dict[str, Any]]:
    """Past `seconds`, `Ledger.reserve` raises BudgetExhausted (see the module doc). Yields a dict whose
    `hit` says whether the deadline stopped anything."""
    state: dict[str, Any] = {"seconds": seconds, "hit": False}
    if seconds is None:
        yield state
        return
    original = Ledger.reserve
    end = time.monotonic() + seconds

    def reserve(self: Ledger, tokens: int, tag: Any, **kwargs: Any) -> Any:
        if time.monotonic() > end:
            state["hit"] = True
            raise BudgetExhausted(tokens, 0, self.cap or 0)
        return original(self, tokens, tag, **kwargs)

    Ledger.reserve = reserve  # type: ignore[method-assign]
    try:
        yield state
    finally:
        Ledger.reserve = original  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------- results

def _head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "refinelab"],
                               cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""
    return f"{head}+uncommitted" if head and dirty else head


#: the commit whose code this eval runs: read when the eval starts (the library is imported then), not
#: when it writes its results, since commits made while a long eval runs are not what it measured
LAUNCH_COMMIT = _head()


def git_commit() -> str:
    return LAUNCH_COMMIT


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(ROOT)
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def write_results(tag: str, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """evals/results/<tag>.json and .md, both naming the command that made them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"command": command_line(), "commit": git_commit(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    result = {**meta, **result}
    json_path, md_path = RESULTS / f"{tag}.json", RESULTS / f"{tag}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    footer = f"\nCommand: `{meta['command']}` (commit {meta['commit'] or '?'}, {meta['finished']})\n"
    md_path.write_text(markdown.rstrip() + "\n" + footer)
    return json_path, md_path


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- summary

def _load(tag: str) -> dict[str, Any] | None:
    path = RESULTS / f"{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary_rows(suffix: str = "_quick") -> list[list[str]]:
    """One row per headline figure: experiment, measured, paper, result file (missing files say so)."""
    rows: list[list[str]] = []
    jsd = _load(f"jsd_curve{suffix}")
    if jsd:
        best = max(jsd["curve"], key=lambda r: r["budget"])
        rows.append(["1. coverage JSD reduction (domain x skill cells)",
                     f"{pct(best['coverage_jsd_reduction'])} ({num(best['coverage_jsd_before'])}→{num(best['coverage_jsd_after'])}, "
                     f"budget {best['budget']:,}, {jsd['n']} items)", PAPER["jsd_reduction"], f"jsd_curve{suffix}.md"])
        rows.append(["1. domain JSD reduction (the built-in skew)",
                     f"{pct(best['domain_jsd_reduction'])} ({num(best['domain_jsd_before'])}→{num(best['domain_jsd_after'])})",
                     PAPER["jsd_reduction"], f"jsd_curve{suffix}.md"])
        rows.append(["1. difficulty JSD reduction",
                     f"{pct(best['difficulty_jsd_reduction'])} ({num(best['difficulty_jsd_before'])}→{num(best['difficulty_jsd_after'])})",
                     PAPER["jsd_reduction"], f"jsd_curve{suffix}.md"])
    cor = _load(f"correction{suffix}")
    if cor:
        s = cor["scores"]
        rows.append(["2. wrong-key correction rate", f"{pct(s['correction_rate'])} of {s['injected']} injected",
                     PAPER["correction"], f"correction{suffix}.md"])
        rows.append(["2. residual error rate", f"{pct(s['residual_error_rate'])} (before {pct(s['error_rate_before'])})",
                     PAPER["residual"], f"correction{suffix}.md"])
    scr = _load(f"error_screening_panel{suffix}")
    if scr:
        for set_name, by_stage in scr["results"].items():
            stage = list(by_stage)[-1]
            o = by_stage[stage]["overall"]
            rows.append([f"3. error detection P/R/F1, {set_name} ({stage})",
                         f"{o['precision']:.2f} / {o['recall']:.2f} / {o['f1']:.2f} (n={o['n']}, AUROC {o['auroc']})",
                         "(paper: detection feeds the >94% correction)", f"error_screening_panel{suffix}.md"])
    det = _load(f"error_screening_all{suffix}")
    if det:
        for set_name, by_stage in det["results"].items():
            o = by_stage["deterministic"]["overall"]
            rows.append([f"3. error detection P/R/F1, {set_name}, deterministic, all rows",
                         f"{o['precision']:.2f} / {o['recall']:.2f} / {o['f1']:.2f} (n={o['n']})", "",
                         f"error_screening_all{suffix}.md"])
    dis = _load(f"distractors{suffix}")
    if dis:
        s = dis["scores"]
        rows.append(["4. distractor diversity (whole set / rewritten items)",
                     f"x{num(s['set_ratio'], 2)} / x{num(s['edited_ratio'], 2)}; validator pass {pct(s['pass_rate'])}, "
                     f"key kept {pct(s['key_kept_rate'])}", PAPER["diversity"], f"distractors{suffix}.md"])
    pan = _load(f"panel{suffix}")
    if pan:
        o, r = pan["original"], pan["refined"]
        rows.append(["5. model spread, original → refined", f"{pct(o['spread'])} → {pct(r['spread'])}",
                     "larger on refined", f"panel{suffix}.md"])
        rows.append(["5. ranking consistency (bootstrap Kendall tau)",
                     f"{num(o['kendall_tau_mean'])} → {num(r['kendall_tau_mean'])}", "higher on refined",
                     f"panel{suffix}.md"])
    mod = _load(f"modes{suffix}")
    if mod:
        cells = [f"{r['mode']} {num(r['gain']['total'])}" for r in mod["runs"]]
        rows.append(["6. realised gain at equal budget (ilp / lp-round / greedy / random)", ", ".join(cells),
                     "ilp ≥ lp-round ≥ greedy > random", f"modes{suffix}.md"])
    return rows


def write_summary(suffix: str = "_quick", elapsed_s: float | None = None) -> str:
    rows = summary_rows(suffix)
    text = "\n".join([
        f"# Eval summary ({suffix.strip('_') or 'full'})", "",
        table(["experiment", "measured", "paper", "file"], rows or [["(no result files)", "", "", ""]]),
        "", f"Elapsed: {elapsed_s:.0f} s." if elapsed_s is not None else "",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"summary{suffix}.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "summary":
        print(write_summary(sys.argv[2] if len(sys.argv) > 2 else "_quick",
                            float(sys.argv[3]) if len(sys.argv) > 3 else None))
