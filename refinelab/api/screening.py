"""Screen a dataset for errors without refining it; optionally calibrate the screen on the data itself.

`screen` asks the panel for each item's option probabilities (two option orders, one-token logprobs),
turns the evidence into features and scores them with a screening model:
- a `calibration.json` fitted on *this* dataset (`screen(..., calibrate=True)` or an earlier run), else
- the model shipped with RefineLab, fitted on MMLU-Redux dev's human labels (refinelab/data).

Calibration plants the MMLU-Redux error types into a sample of the user's items (metrics/injection.py),
screens the planted copies with the clean originals, fits the combiner on them and picks the threshold
that reaches the target precision at the assumed error prevalence. The estimated precision and recall
per error type — out of fold, so not flattered by the fit — are written with the model, and the
profiler uses the model when a run names it (`RunOptions.screening_model`).

Outputs in `out_dir`: `screening.jsonl` (one line per input item: id, p_error, flag, error_type,
p_options, evidence), `summary.json` (counts, threshold, model source, tokens spent) and, when
calibrating, `calibration.json`. The store, ledger and trace of the screening live there too, so a
re-run asks only what is missing.
"""

from __future__ import annotations

import contextvars
import json
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from refinelab.agents.batching import batch_panel
from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.panel import answer_panel
from refinelab.agents.screening import check_fit
from refinelab.api.context import working_folder
from refinelab.api.run_settings import validate_budget
from refinelab.api.runs import as_options
from refinelab.atomic import atomic_write_text
from refinelab.config import Settings, load_settings
from refinelab.errors import BudgetExhausted, ConfigError, DataError
from refinelab.io import DatasetInput, as_dataset, require_items
from refinelab.metrics.error_checks import ERROR_TYPES
from refinelab.metrics.injection import inject
from refinelab.metrics.screen_calibration import ErrorMix, choose_threshold, shipped_error_mix
from refinelab.metrics.screening_model import (
    SHIPPED_FEATURES,
    ScreeningModel,
    fit_screening_model,
    item_features,
)
from refinelab.run_layout import SCREEN_CALIBRATION, SCREEN_SUMMARY, SCREENING_JSONL
from refinelab.schema import QAItem

#: The panel a screen asks when the options name none. Not a profile's default (the judge alone,
#: agents/difficulty.default_panel): the shipped screening model (refinelab/data/screening_model.json) reads
#: pooled p(key) as the embedded 1.5B's two-order probe gave it on MMLU-Redux dev (evals/eval_screening.py),
#: so its threshold holds for that member's probabilities, not for whatever model the judge is.
SCREEN_DEFAULT_PANEL = ("qwen2.5-coder-1.5b",)


@dataclass
class ScreenResult:
    """What `screen` wrote and found.

    The repr is one line (folder, screened, flagged, threshold): `rows` holds every item's evidence, and the
    default repr printed all of it as a notebook cell's last expression."""

    out_dir: Path
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    calibration: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.out_dir / SCREENING_JSONL

    def __repr__(self) -> str:
        summary = self.summary
        stopped = f", stopped={summary['stopped']!r}" if summary.get("stopped") else ""
        calibrated = ", calibrated" if self.calibration is not None else ""
        return (f"ScreenResult(out_dir={str(self.out_dir)!r}, items={summary.get('items')}, "
                f"screened={summary.get('screened')}, flagged={summary.get('flagged')}, "
                f"threshold={summary.get('threshold')}{calibrated}{stopped})")


def shipped_model() -> ScreeningModel:
    """The combiner fitted on MMLU-Redux dev (human labels), over member-independent features."""
    source = resources.files("refinelab.data").joinpath("screening_model.json")
    if not source.is_file():
        raise ConfigError("this install ships no fitted screening model (refinelab/data/screening_model.json); "
                          "use --calibrate or --calibration FILE")
    return ScreeningModel.from_json(json.loads(source.read_text(encoding="utf-8")), "refinelab/data/screening_model.json")


def load_model(path: str | Path) -> ScreeningModel:
    """A calibration file's model (the `model` field of calibration.json, or a bare model)."""
    return ScreeningModel.load(Path(path))


def ask_panel(ctx: AgentContext, items: list[QAItem], members: list[str],
              progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Panel evidence per item id (stored; a re-run asks only what is missing). Stops at the budget.

    With `options.batch` every probe still missing goes through the members' Batch API first (half price
    on hosted APIs); the calls below then find their answers already paid for."""
    ctx.store.load_items(items)  # items already held are left as they are
    if ctx.options.batch:
        batch_panel(ctx, items, members)
    workers = max(1, ctx.settings.roles.judge.total_concurrency())
    done: dict[str, dict[str, Any]] = {}
    stopped = False

    def one(item: QAItem) -> tuple[str, dict[str, Any]] | None:
        nonlocal stopped
        if stopped:
            return None
        try:
            diag = answer_panel(ctx, item, members)
        except BudgetExhausted:
            stopped = True
            return None
        if diag is not None:
            ctx.store.put_diagnostics([diag])
        stored = ctx.store.diagnostic(item.id, "panel")
        return (item.id, stored.evidence) if stored is not None else None

    # with solved examples (panel_shots) a subject's probes share a long prompt prefix: asked together, the
    # server's prompt cache reuses it; interleaved (as `--limit` spreads items over subjects) each re-reads it
    asked = sorted(items, key=lambda item: item.subject) if ctx.options.panel_shots else items
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, item) for item in asked]
        for count, future in enumerate(futures, 1):
            got = future.result()
            if got is not None:
                done[got[0]] = got[1]
            if progress is not None:
                progress(count, len(futures))
    return done


def screen_rows(items: list[QAItem], evidence: Mapping[str, Mapping[str, Any]], model: ScreeningModel,
                members: list[str]) -> list[dict[str, Any]]:
    """One screening.jsonl row per item; items the panel never answered get p_error None and no flag."""
    rows = []
    for item in items:
        ev = evidence.get(item.id)
        if ev is None:
            rows.append({"id": item.id, "p_error": None, "flag": False, "error_type": None, "p_options": None,
                         "evidence": {"why": "not screened (budget or endpoint)"}})
            continue
        features = item_features(item, ev, members)
        p_error = model.p_error([features])[0]
        flag = p_error >= model.threshold
        rows.append({"id": item.id, "p_error": round(p_error, 4), "flag": flag,
                     "error_type": model.error_type(features) if flag else None,
                     "p_options": ev.get("pooled"),
                     "evidence": {"key": item.answer, "members": ev.get("probs", {}),
                                  "features": {k: round(v, 4) for k, v in features.items()}}})
    return rows


def calibrate(ctx: AgentContext, items: list[QAItem], members: list[str], *, sample: int = 60, seed: int = 0,
              target_precision: float = 0.5, prevalence: float = 0.1, mix: ErrorMix | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Plant errors into a sample of `items`, screen planted and clean copies, fit the combiner, choose the
    threshold and estimate precision/recall per error type out of fold (metrics/screen_calibration.py).
    Returns the calibration record (with `model`).

    The combiner reads the shipped model's features (p(key) and three stem/key text signals; per-member
    p(key) too when there are several members), not every feature: the planted copies carry text marks of
    their own ("Essentially, …" restatements, a cut stem ending in "…"), and a combiner free to weight the
    option-overlap and length features learned those marks. On MMLU-Redux dev that combiner separated real
    errors at AUROC 0.62, the shipped features' at 0.67 (evals/eval_calibration.py)."""
    rng = random.Random(seed)
    clean = rng.sample(items, min(sample, len(items)))
    planted = inject(clean, seed=seed)
    if len(clean) < 10 or len(planted) < 10:
        raise DataError("dataset", None, None,
                        f"calibration needs at least 10 items that can carry planted errors; got {len(planted)}")
    everything = clean + planted
    evidence = ask_panel(ctx, everything, members, progress)
    scored = [i for i in everything if i.id in evidence]
    labels = [str(i.metadata.get("injected", "ok")) for i in scored]
    features = [item_features(i, evidence[i.id], members) for i in scored]
    names = calibration_features(members)
    groups = [i.id.split("#inject:")[0] for i in scored]
    mix = mix or shipped_error_mix()
    try:
        oof = _out_of_fold(features, labels, groups, names, folds=5, seed=seed)
        model = fit_screening_model(features, labels, features=names)
        planted_scores = {t: [s for s, lab in zip(oof, labels, strict=True) if lab == t]
                          for t in ERROR_TYPES if t in labels}
        clean_scores = [s for s, lab in zip(oof, labels, strict=True) if lab == "ok"]
        point = choose_threshold(planted_scores, clean_scores, mix, prevalence, target_precision)
    except ValueError as exc:  # e.g. the panel answered only clean or only planted copies (budget, endpoint)
        raise DataError("dataset", None, None, f"calibration could not be fitted on {len(scored)} screened "
                                               f"copies: {exc}") from None
    model.threshold = min(0.999, max(1e-6, point["threshold"]))
    model.fitted_on = {"items": len(scored), "planted": len(scored) - len(clean_scores), "members": members,
                       "source": "planted errors in the dataset (screen --calibrate)"}
    reached = ("reached" if point["target_reached"] else
               "not reachable with this panel on these items: the threshold is the best estimated F1")
    return {"model": model.to_json(), "threshold": model.threshold, "target_precision": target_precision,
            "target_reached": point["target_reached"], "prevalence_assumed": prevalence, "sample": len(clean),
            "members": members, "error_mix": mix.to_json(),
            "estimates": {"overall": {k: point[k] for k in ("precision", "recall", "fpr")},
                          "per_type": point["per_type"]},
            "scores": {"clean": [round(s, 4) for s in clean_scores],
                       "planted": {t: [round(s, 4) for s in v] for t, v in planted_scores.items()}},
            "note": f"target precision {target_precision} {reached}. Precision and recall are out-of-fold "
                    "estimates on planted errors at the assumed prevalence, recall weighted by the error mix; "
                    "planted errors are a little easier to see than real ones, so recall tends to be "
                    "over-estimated (checked against MMLU-Redux's human labels: evals/results/calibration_dev.md)"}


def calibration_features(members: list[str]) -> list[str]:
    """What a calibrated combiner reads: the shipped model's features, plus p(key) per member when the
    panel has several (one member's p(key) is the pooled one)."""
    return list(SHIPPED_FEATURES) + ([f"p_key[{m}]" for m in members] if len(members) > 1 else [])


def _out_of_fold(features: list[dict[str, float]], labels: list[str], groups: list[str], names: list[str],
                 folds: int, seed: int) -> list[float]:
    keys = sorted(set(groups))
    random.Random(seed).shuffle(keys)
    fold_of = {g: k % folds for k, g in enumerate(keys)}
    scores = [0.0] * len(labels)
    for fold in range(folds):
        train = [k for k, g in enumerate(groups) if fold_of[g] != fold]
        test = [k for k, g in enumerate(groups) if fold_of[g] == fold]
        if not test or len({labels[k] != "ok" for k in train}) < 2:
            continue
        model = fit_screening_model([features[k] for k in train], [labels[k] for k in train], features=names)
        for k, p in zip(test, model.p_error([features[k] for k in test]), strict=True):
            scores[k] = p
    return scores


def screen(
    data: DatasetInput,
    *,
    out_dir: str | Path | None = None,
    settings: Settings | None = None,
    budget: int | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    hooks: RunHooks | None = None,
    prompts_dir: str | None = None,
    calibrate_sample: int = 0,
    calibration: str | Path | None = None,
    target_precision: float = 0.5,
    prevalence: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
    columns: Mapping[str, str | list[str]] | None = None,
    format: str | None = None,
    split: str | None = None,
    strict: bool = False,
) -> ScreenResult:
    """Screen `data` for errors; see the module docstring. `calibrate_sample` > 0 calibrates first on
    that many of the dataset's items; `calibration` names an existing calibration.json to use (else
    the options' `screening_model`, if set).

    `data` takes what `refine` takes: a path, our `Dataset`, a `datasets.Dataset`, a pandas DataFrame or a
    list of dicts; bad input (data, budget, model) raises `DataError` or `ConfigError` before any folder
    is made, so a failed call leaves nothing that looks like a screen. `out_dir` defaults to
    `settings.runs_dir/screen-TIME`.

    Args:
        budget: the most tokens the screen may use (paid and replayed from the cache); None: no cap. Items
            left when it runs out get `p_error` None and the summary says `stopped: "budget"`.
        options: `RunOptions` or a dict of them; `panel` names the members asked (default: the embedded
            1.5B model the shipped screening model was fitted for).
        hooks: live objects instead of the configured ones (`RunHooks`: chat models for the panel).
        target_precision: with calibration, the precision the threshold is chosen to reach (out-of-fold, on
            planted errors); when no threshold reaches it, the best estimated F1 is used and the record says so.
        prevalence: with calibration, the share of items assumed to be wrong: precision depends on it, so the
            threshold is chosen at it (0.1 = one item in ten).
        progress: called as `progress(done, total)` after each item asked, for a progress bar.
        columns: our field → the input's column (or the CLI's `question=…,choices=A,B,…,answer=…` text).
        format: the file format of a path when its name does not say it (`jsonl`, `csv`, `mmlu`, …).
        split: which split of a folder or `DatasetDict` holding several (`test`, `val`).
        strict: refuse the whole input at its first invalid row; by default invalid rows are set aside."""
    if budget is not None:
        validate_budget(budget)
    for name, value in (("target_precision", target_precision), ("prevalence", prevalence)):
        if not 0.0 < value < 1.0:  # a share; the CLI's flags of the same names reach this check
            raise ConfigError(f"{name} {value}: must lie strictly between 0 and 1")
    dataset = as_dataset(data, format=format, columns=columns, split=split,
                         on_invalid="error" if strict else "quarantine")
    require_items(dataset, "screen")  # before any folder exists, so bad input leaves nothing behind
    settings = settings or load_settings()
    out = Path(out_dir) if out_dir is not None else settings.runs_dir / time.strftime("screen-%Y%m%d-%H%M%S")
    run_options = as_options(options)
    members = list(run_options.panel) or list(SCREEN_DEFAULT_PANEL)
    run_options = run_options.model_copy(update={"panel": members})
    items = list(dataset.items)
    # the model is read (and checked against the panel) before the folder exists: a bad one leaves nothing
    given = calibration or run_options.screening_model
    if calibrate_sample <= 0:
        model, source = _given_model(given, members)
    with working_folder(out, items, settings=settings, budget=budget, options=run_options, hooks=hooks,
                        prompts_dir=prompts_dir) as ctx:
        ctx.store.load_items(items)  # the input first, in its order: the probes' examples (panel_shots) are its items
        record: dict[str, Any] | None = None
        if calibrate_sample > 0:
            record = calibrate(ctx, items, members, sample=calibrate_sample, target_precision=target_precision,
                               prevalence=prevalence, progress=progress)
            atomic_write_text(out / SCREEN_CALIBRATION, json.dumps(record, indent=2) + "\n")
            model, source = ScreeningModel.from_json(record["model"]), str(out / SCREEN_CALIBRATION)
        evidence = ask_panel(ctx, items, members, progress)
        rows = screen_rows(items, evidence, model, members)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write_text(out / SCREENING_JSONL, lines)
        summary = _summary(dataset.name, rows, ctx.ledger.summary(), model, source, run_options, budget)
        if run_options.panel_shots and record is None and given is None:
            # the shipped combiner read probes without examples; with them p(key) runs higher (0.38 against 0.31
            # on dev's ok rows), so its threshold is not this screen's
            summary["warning"] = ("the shipped combiner was fitted on probes without solved examples; with "
                                  f"panel_shots={run_options.panel_shots} calibrate on this data (--calibrate)")
        if record is not None:
            summary["calibration"] = record["estimates"] | {"target_precision": record["target_precision"],
                                                            "target_reached": record["target_reached"]}
        atomic_write_text(out / SCREEN_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return ScreenResult(out_dir=out, summary=summary, rows=rows, calibration=record)


def _given_model(given: str | Path | None, members: list[str]) -> tuple[ScreeningModel, str]:
    """The screening model when the screen does not calibrate, and where it came from: the calibration named
    (checked against the members who will answer: a threshold fitted on other members' probabilities is not
    this panel's), else the shipped one."""
    if given is not None:
        model = load_model(given)
        check_fit(model, str(given), members)
        return model, str(given)
    model = shipped_model()
    if model.member_features:  # the shipped model reads member-independent features only
        raise DataError("refinelab/data/screening_model.json", None, "features", "names panel members; refit it")
    return model, "shipped (MMLU-Redux dev)"


def _summary(dataset_name: str, rows: list[dict[str, Any]], ledger: Mapping[str, Any], model: ScreeningModel,
             source: str, options: RunOptions, budget: int | None) -> dict[str, Any]:
    """summary.json's counts, model and tokens."""
    flagged = [r for r in rows if r["flag"]]
    return {
        "dataset": dataset_name, "items": len(rows), "screened": sum(r["p_error"] is not None for r in rows),
        "flagged": len(flagged), "threshold": model.threshold, "model": source, "members": list(options.panel),
        "orders": options.panel_orders,
        "error_types": {t: sum(r["error_type"] == t for r in flagged) for t in ERROR_TYPES},
        # replayed answers (the response cache) count against the budget like paid ones: a re-screen reads
        # "tokens_spent": 0 and this says what it used
        "tokens_spent": ledger["spent"], "tokens_replayed": ledger["replayed"], "budget": budget,
        # of the prompt tokens spent, those the server read from its prompt cache (charged in full)
        "prompt_tokens": ledger["prompt_tokens"], "cached_prompt_tokens": ledger["cached_prompt_tokens"],
        "stopped": "budget" if any(r["p_error"] is None for r in rows) else None,
    }
