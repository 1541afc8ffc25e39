"""Error screening for the profiler, cheapest first: deterministic checks, panel disagreement, validator.

The paid evidence (panel answers, validator verdicts) is stored as its own Diagnostic, so the pooled
``error`` Diagnostic is recomputed for free whenever new evidence arrives. The validator
(`validation.verdicts.check_original`, or `hooks.check_original`) can be switched off with
`options.validate_suspects`: then screening stops after the panel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import measuring_panel
from refinelab.agents.options import RunOptions
from refinelab.agents.validation.verdicts import check_original
from refinelab.errors import ConfigError
from refinelab.metrics.error_checks import ErrorModel, check_row, combine_error_evidence, validator_diagnostic
from refinelab.metrics.screening_model import ScreeningModel, item_features
from refinelab.schema import Diagnostic, QAItem
from refinelab.state import Verdict

#: The validator on an existing item: `validation.verdicts.check_original`, or `hooks.check_original`.
CheckOriginal = Callable[[AgentContext, QAItem], Verdict]


def error_model(ctx: AgentContext) -> ErrorModel:
    """The run's evidence-pooling weights (`options.error_model`; hand-set defaults)."""
    return ctx.options.error_model


def load_check_original(ctx: AgentContext) -> CheckOriginal | None:
    """The validator's verdict on an existing item: `hooks.check_original` when given, else the validator's
    own `check_original`; None when `options.validate_suspects` is off. A hook must return a `Verdict`, the
    shape every validator method returns: anything else is refused in a line naming the hook, not read by
    guessing at its attributes (a misspelt field, read as "undecided", would leave p_error where it was, unseen)."""
    if not ctx.options.validate_suspects:
        return None
    hook = ctx.hooks.check_original
    if hook is None:
        return check_original

    def checked(ctx: AgentContext, item: QAItem) -> Verdict:
        verdict = hook(ctx, item)
        if not isinstance(verdict, Verdict):
            raise ConfigError(f"hooks.check_original returned a {type(verdict).__name__} for item {item.id!r}; it "
                              "must return a refinelab.state.Verdict")
        return verdict

    return checked


def error_diagnostic(ctx: AgentContext, item: QAItem, expected_choices: int | None) -> Diagnostic:
    """Pool every stored piece of evidence for `item` into its `error` Diagnostic (no model call)."""
    panel = ctx.store.diagnostic(item.id, "panel")
    distractors = ctx.store.diagnostic(item.id, "distractors")
    validator = ctx.store.diagnostic(item.id, "validator")
    answers = list(panel.evidence.get("answers", {}).values()) if panel else None
    assessment = combine_error_evidence(
        item.id, check_row(item, expected_choices=expected_choices),
        panel_answers=answers, key=item.answer, validator=validator, distractors=distractors,
        model=error_model(ctx),
    )
    diag = assessment.to_diagnostic()
    stages = ["deterministic"] + (["panel"] if answers else []) + (["distractors"] if distractors else []) \
        + (["validator"] if validator is not None else [])
    diag.evidence["stages"] = stages
    if ctx.options.screening_model and panel is not None and panel.evidence.get("probs"):
        diag = _fitted_p_error(ctx, item, diag, panel.evidence)
    return diag


_MODELS: dict[str, ScreeningModel] = {}


def _model_at(path: str) -> ScreeningModel:
    """The calibration at `path`, read and validated once per process (every item of a profile scores with it)."""
    if path not in _MODELS:
        _MODELS[path] = ScreeningModel.load(Path(path))
    return _MODELS[path]


def check_fit(model: ScreeningModel, source: str, panel: Sequence[str]) -> None:
    """Refuse a calibration that cannot score `panel`'s answers, before any model call:

    - it scores the panel's answers, so a run that asks no panel would never use it;
    - a model fitted with members' own p(key) (`p_key[NAME]`) needs those members: a member the panel
      lacks reads as uniform, and p_error would be wrong unseen;
    - a calibration records the members it was fitted on (`screen --calibrate`): its threshold is theirs,
      and another model's probabilities sit on another scale, so other members are refused, not silently
      mis-scored."""
    members = list(panel)
    if not members:
        raise ConfigError(f"{source}: a calibration scores the panel's answers, and this run asks no panel "
                          "(set a panel, or difficulty_method irt, which asks the judge)")
    if missing := [m for m in model.member_features if m not in members]:
        raise ConfigError(f"{source}: fitted on the answers of {', '.join(model.member_features)}; this run's "
                          f"panel ({', '.join(members)}) lacks {', '.join(missing)}")
    fitted = model.fitted_on.get("members")
    if isinstance(fitted, list) and fitted and sorted(map(str, fitted)) != sorted(members):
        raise ConfigError(f"{source}: fitted on the answers of {', '.join(map(str, fitted))}, and its threshold is "
                          f"theirs; this run's panel is {', '.join(members)}: ask the same members (--panel "
                          f"{','.join(map(str, fitted))}) or calibrate with this panel")


def run_screening_model(options: RunOptions) -> ScreeningModel | None:
    """The fitted combiner the run names (`options.screening_model`), checked against the panel that will
    answer (`difficulty.measuring_panel`); None when it names none. A new run, profile or plan asks it
    before any folder is made (`api/runs.checked_options`): a missing file or one that cannot score this
    run's panel fails in a line instead of after the profile's model calls."""
    if not options.screening_model:
        return None
    path = str(options.screening_model)
    model = _model_at(path)
    check_fit(model, path, measuring_panel(options))
    return model


def _fitted_p_error(ctx: AgentContext, item: QAItem, diag: Diagnostic, panel: dict[str, Any]) -> Diagnostic:
    """p_error from the calibrated combiner (the run's `screening_model`); the hand-set pooling's value is
    kept as evidence, and a deterministic defect or a validator's "wrong" still raises p_error."""
    path = str(ctx.options.screening_model)
    model = _model_at(path)
    members = model.member_features
    features = item_features(item, panel, members)
    fitted = model.p_error([features])[0]
    pooled = float(diag.evidence["p_error"])
    contributions = diag.evidence.get("contributions", {})
    hard = pooled if any(name != "panel" and llr > 0 for name, llr in contributions.items()) else 0.0
    p_error = max(fitted, hard)
    flag = p_error >= model.threshold
    evidence = {**diag.evidence, "p_error": p_error, "p_error_pooling": pooled, "screening_model": path}
    if flag and fitted >= hard:
        evidence["error_type"] = model.error_type(features)
    return diag.model_copy(update={"flag": flag, "score": 1.0 - p_error, "evidence": evidence})


def validate_suspect(ctx: AgentContext, check: CheckOriginal, item: QAItem) -> Diagnostic:
    """Run the validator on one suspect item; its verdict as the `validator` diagnostic the profiler stores."""
    return validator_diagnostic(item.id, check(ctx, item))
