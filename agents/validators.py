"""The validator methods a pack can name, the PoT-or-RAG router, and the entry point for profiling.

`default_validators()` is what `agents.validator.validate` uses when `ctx.extras` has no "validators":
`pot`, `rag` and `pot_or_rag`. The router decides by item type: cheap regex signals first (numbers,
units, equations, numeric options), an LLM classification (prompt `classify_item`) only when they are
ambiguous. `check_original` validates an existing item for profiling; `to_validator_verdict` turns the
result into the shape profiling's error model pools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.refiner import EditTask
from refinelab.agents.validator import Verdict, answer_check, available_validators, choose_method
from refinelab.agents.validator_pot import parse_number, pot_check
from refinelab.agents.validator_rag import rag_check
from refinelab.errors import LLMCallFailed
from refinelab.schema import QAItem
from refinelab.tools.ledger import CallTag

ValidatorFn = Callable[[AgentContext, EditTask, QAItem], Verdict]

_UNITS = (r"%|percent|kg|g|mg|km|m|cm|mm|nm|µm|s|ms|min|h|hours?|seconds?|minutes?|days?|years?|m/s|km/h|mph|"
          r"N|J|kJ|eV|W|kW|V|A|Ω|ohms?|Hz|Pa|kPa|atm|mol|M|L|mL|K|°C|°F|°|degrees?|cal|kcal|T|C|dollars?|cents?")
_NUMBER_UNIT = re.compile(rf"\d(?:[\d,.]*\d)?\s*(?:{_UNITS})(?![A-Za-z])")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)?")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})$")
_EQUATION = re.compile(r"\d\s*[-+*/×÷^=]\s*\(?\s*[\dxyzn]|[a-z]\s*\^\s*\d|[a-z]\s*=\s*[-\d(]|√|∫|∑|"
                       r"\b(?:sqrt|log|ln|sin|cos|tan|derivative|integral)\b", re.IGNORECASE)
_COMPUTE_WORDS = re.compile(r"\b(?:calculate|compute|how (?:many|much|long|far|fast)|what is the (?:value|"
                            r"probability|ratio|rate|speed|total|sum|product|average|mean)|solve|evaluate|"
                            r"estimate|find the|determine the)\b", re.IGNORECASE)


class ItemKind(BaseModel):
    """The LLM's routing call when the regex signals are ambiguous."""

    reason: str = Field(max_length=200)
    kind: Literal["compute", "lookup"]


def route_signals(item: QAItem) -> dict[str, Any]:
    """Cheap evidence that an item is computable: numbers (not years) and units in the stem, equations,
    compute verbs, and the share of options that are numbers."""
    stem_numbers = [n for n in _NUMBER.findall(item.question) if not _YEAR.match(n.replace(",", ""))]
    numeric_options = sum(parse_number(c) is not None for c in item.choices) / len(item.choices)
    return {
        "stem_numbers": len(stem_numbers),
        "units": len(_NUMBER_UNIT.findall(item.question)),
        "equation": bool(_EQUATION.search(item.question)),
        "compute_words": bool(_COMPUTE_WORDS.search(item.question)),
        "numeric_options": round(numeric_options, 2),
    }


def regex_route(signals: dict[str, Any]) -> str | None:
    """'pot', 'rag', or None when the signals do not settle it (then the LLM decides)."""
    quantitative = signals["stem_numbers"] >= 2 or signals["units"] >= 1 or signals["equation"]
    if quantitative and (signals["numeric_options"] >= 0.5 or signals["compute_words"]):
        return "pot"
    if (signals["stem_numbers"] == 0 and not signals["equation"] and signals["numeric_options"] == 0
            and not signals["compute_words"]):
        return "rag"
    return None


def classify_item(ctx: AgentContext, task: EditTask, item: QAItem) -> tuple[str, dict[str, Any]]:
    """(method, routing evidence) for a `pot_or_rag` item; the LLM is asked only when regex is unsure."""
    signals = route_signals(item)
    method = regex_route(signals)
    if method is not None:
        return method, {"by": "regex", "signals": signals, "tokens": 0}
    tag = CallTag(node="validate", operation=task.operation, item_id=task.item_id)
    messages = ctx.pack(item).messages("classify_item", item=item)
    try:
        result = ctx.client("validator").structured(messages, ItemKind, tag, max_tokens=120)
    except LLMCallFailed as exc:  # no usable call: retrieval, which itself falls back to the answer check
        return "rag", {"by": "default", "signals": signals, "error": str(exc), "tokens": 0}
    method = "pot" if result.parsed.kind == "compute" else "rag"
    return method, {"by": "llm", "signals": signals, "kind": result.parsed.kind, "reason": result.parsed.reason,
                    "tokens": result.tokens}


def routed_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """`pot_or_rag`: classify, then run PoT or RAG; the routing decision joins the evidence."""
    method, route = classify_item(ctx, task, item)
    verdict = (pot_check if method == "pot" else rag_check)(ctx, task, item)
    verdict.evidence["route"] = {k: v for k, v in route.items() if k != "tokens"}
    verdict.tokens += int(route["tokens"])
    return verdict


def default_validators() -> dict[str, ValidatorFn]:
    """The built-in model-based methods by the name packs use in `validator:`."""
    return {"pot": pot_check, "rag": rag_check, "pot_or_rag": routed_check}


# ---------------------------------------------------------------------------------------- profiling


def check_original(ctx: AgentContext, item: QAItem) -> Verdict:
    """Validate an existing (suspect) item with its pack's method, for profiling. No structural checks:
    profiling runs those itself."""
    task = EditTask(edit_id=f"check:{item.id}", item_id=item.id, operation="check", round=0)
    method = choose_method(ctx, item)
    if method == "answer":
        return answer_check(ctx, task, item)
    return available_validators(ctx)[method](ctx, task, item)  # type: ignore[no-any-return]


_DECISIVE = {"match_key", "match_other", "no_match", "supported", "contradicted"}


def to_validator_verdict(verdict: Verdict) -> Any:
    """The verdict as profiling's `ValidatorVerdict`: key_correct is None when the method itself could not
    decide (sandbox unavailable); a fallback answer check counts, with lower confidence."""
    from refinelab.metrics.error_checks import ValidatorVerdict

    ev = verdict.evidence
    outcome = ev.get("outcome") or ev.get("rag_verdict") or ""
    if outcome == "unavailable" and "fallback" not in ev:
        return ValidatorVerdict(key_correct=None, method=verdict.method, evidence=ev)
    error_type = None
    if not verdict.passed:
        error_type = "no_correct_answer" if outcome == "no_match" else "wrong_groundtruth"
    confidence = 0.85 if outcome in _DECISIVE and "fallback" not in ev else 0.7
    return ValidatorVerdict(key_correct=verdict.passed, error_type=error_type, confidence=confidence,
                            method=verdict.method, evidence=ev)


def validation_context(run_dir: str | Path, settings: Any = None, *, chat_models: dict[str, Any] | None = None,
                       extras: dict[str, Any] | None = None, budget: int | None = None) -> AgentContext:
    """A context for using the validator outside a run (evals, notebooks): its own store, ledger, cache
    and trace under `run_dir`."""
    from refinelab.config import load_settings
    from refinelab.metrics.targets import Targets
    from refinelab.tools.cache import ResponseCache
    from refinelab.tools.ledger import Ledger
    from refinelab.tools.store import RunStore
    from refinelab.tools.tracing import Tracer

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = settings or load_settings()
    return AgentContext(
        run_dir=run_dir, settings=settings, store=RunStore(run_dir / "store.sqlite"),
        ledger=Ledger(run_dir / "ledger.sqlite", cap=budget), tracer=Tracer(run_dir / "trace.jsonl"),
        targets=Targets(), cache=ResponseCache(settings.cache_path) if settings.use_cache else None,
        chat_models=dict(chat_models or {}), extras=dict(extras or {}),
    )
