"""Error screening, cheapest first: deterministic item checks, then evidence pooling into p_error + error type.

The deterministic checks work on validated `QAItem`s and on raw rows (``{"question", "choices",
"answer"}``) because the items most worth screening are the ones that failed or bypassed validation
(empty or duplicate options, a key that points nowhere).

`combine_error_evidence` pools, in log-odds, (1) the flags of the deterministic checks, (2) the panel's
disagreement with the key and (3) an optional validator verdict (as its `validator_diagnostic`) into
p_error in [0, 1] and a predicted MMLU-Redux error type. Each source's weight is an explicit, documented
parameter so the error-screening eval can calibrate it on the MMLU-Redux dev labels.

Score convention for every Diagnostic here: 1.0 = no problem found, lower = more likely a problem
(score = 1 − p_error); `flag` says the check fired; `evidence` says why.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from refinelab.schema import LETTERS, Diagnostic, QAItem, normalise_text
from refinelab.state import SETTLED_CONFIDENCE, UNDECIDED_OUTCOMES, Verdict

ErrorType = Literal[
    "ok",
    "wrong_groundtruth",
    "no_correct_answer",
    "multiple_correct_answers",
    "bad_question_clarity",
    "bad_options_clarity",
]
#: The MMLU-Redux taxonomy's error types: every ErrorType but "ok".
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)[1:]
ERROR_TYPE_LABELS: dict[str, str] = {kind: kind.replace("_", " ").replace("groundtruth", "ground truth")
                                     for kind in get_args(ErrorType)}


@dataclass(frozen=True)
class CheckSpec:
    """A deterministic check: the error type it points to and P(error | it fires), used as its log-odds weight."""

    name: str
    error_type: ErrorType
    severity: float
    description: str


CHECKS: dict[str, CheckSpec] = {c.name: c for c in (
    CheckSpec("blank_question", "bad_question_clarity", 0.95, "the stem is empty or whitespace"),
    CheckSpec("too_few_options", "bad_options_clarity", 0.90, "fewer than two options"),
    CheckSpec("empty_option", "bad_options_clarity", 0.90, "an option is empty after normalisation"),
    CheckSpec("duplicate_options", "bad_options_clarity", 0.85, "two options are identical after normalisation"),
    CheckSpec("key_out_of_range", "no_correct_answer", 0.95, "the answer key is missing or points to no option"),
    CheckSpec("near_duplicate_options", "multiple_correct_answers", 0.60,
              "two options differ only in spacing or punctuation"),
    CheckSpec("option_count_mismatch", "bad_options_clarity", 0.30,
              "the item has a different number of options than most of the dataset"),
    CheckSpec("all_none_of_the_above", "bad_options_clarity", 0.12,
              "an 'all/none of the above'-style option (a known item-writing flaw)"),
    CheckSpec("answer_leak", "bad_question_clarity", 0.15,
              "the key's text appears verbatim in the stem while no distractor's does"),
    CheckSpec("key_length_giveaway", "bad_options_clarity", 0.08,
              "the key is much longer than every distractor"),
    CheckSpec("label_only_options", "bad_options_clarity", 0.60,
              "every option is a bare letter (A, B, ...): the options' text is missing"),
)}

# "all of the above", "none of these", "both A and C", "every option listed", ...
_META_OPTION = re.compile(
    r"\b(all|none|both|neither)\s+(of\s+)?(the\s+)?(above|these|those|the\s+options|the\s+choices|options\s+listed)\b"
    r"|\b(every|each)\s+option\s+(listed|above)\b"
    r"|^\s*(both|all|neither)\s+\(?[a-j]\)?\s*(,\s*\(?[a-j]\)?\s*)*(and|&|nor)\s+\(?[a-j]\)?\s*$",
    re.IGNORECASE,
)
# "A and D", "A, B and C", "B or C": an option that is only a list of other options' letters
_LETTER_LIST_OPTION = re.compile(r"^\s*\(?[a-j]\)?\s*(,\s*\(?[a-j]\)?\s*)*(and|&|or)\s+\(?[a-j]\)?\s*\.?\s*$",
                                 re.IGNORECASE)


def refers_to_other_options(text: str) -> bool:
    """Whether an option's meaning depends on the other options ("all of the above", "A and D"): such an
    item's distractors cannot be replaced one by one without changing what its key says."""
    return bool(_META_OPTION.search(text) or _LETTER_LIST_OPTION.match(text))


def distractors_replaceable(choices: Sequence[str]) -> bool:
    """Whether an item's distractors may be replaced one by one: not when any option refers to the others
    (the planner then offers no rewrite, and the refiner refuses one: the same rule in both places)."""
    return not any(refers_to_other_options(c) for c in choices)


# "A", "(b)", "C.": an option that is only a letter label; numbers stay answers ("2", "5")
_BARE_LETTER = re.compile(r"^\s*\(?[a-j]\)?[.):]?\s*$", re.IGNORECASE)


def is_bare_letter(text: str) -> bool:
    """Whether an option is only a letter label, its text missing: a writer that lists letters instead of
    options (`label_only_options` here, a candidate distractor dropped in metrics/distractors.py)."""
    return bool(_BARE_LETTER.match(text))


_NONE_OPTION = re.compile(r"\b(none|neither)\b|\bno\s+(correct\s+)?(answer|option)\b", re.IGNORECASE)
_TRIVIAL_ANSWERS = {"true", "false", "yes", "no", "none", "all", "both", "neither", "wrong", "not wrong"}


@dataclass
class RawItem:
    """A row coerced just enough to be checked: choices as strings, key as an int or None."""

    id: str
    question: str
    choices: list[str]
    answer: int | None
    answer_raw: Any


def parse_answer(value: Any, n_choices: int | None = None) -> int | None:
    """0-based index from an int, a digit string or a letter (A–J); None when missing or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if len(text) == 1 and text.upper() in LETTERS:
        return LETTERS.index(text.upper())
    return None


def coerce_row(row: QAItem | Mapping[str, Any], index: int = 0) -> RawItem:
    """Accept a QAItem or a raw dict row (question, choices, answer, optional id) without validating it."""
    if isinstance(row, QAItem):
        return RawItem(row.id, row.question, list(row.choices), row.answer, row.answer)
    choices = row.get("choices")
    if choices is None:
        choices = []
    elif isinstance(choices, str):
        choices = [choices]
    choices = ["" if c is None else str(c) for c in choices]
    raw = row.get("answer")
    return RawItem(
        id=str(row.get("id", index)), question=str(row.get("question") or ""), choices=choices,
        answer=parse_answer(raw, len(choices)), answer_raw=raw,
    )


def _diag(item_id: str, name: str, fired: bool, **evidence: Any) -> Diagnostic:
    spec = CHECKS[name]
    evidence = {"error_type": spec.error_type, "severity": spec.severity, **evidence} if fired else evidence
    return Diagnostic(item_id=item_id, check=f"error.{name}", flag=fired,
                      score=1.0 - spec.severity if fired else 1.0, evidence=evidence)


def check_row(
    row: QAItem | Mapping[str, Any], *, expected_choices: int | None = None, index: int = 0
) -> list[Diagnostic]:
    """Run every deterministic check on one item; one Diagnostic per check (flag=False when it passes)."""
    it = coerce_row(row, index)
    out: list[Diagnostic] = []
    norm = [normalise_text(c) for c in it.choices]
    n = len(it.choices)
    key_ok = it.answer is not None and 0 <= it.answer < n

    out.append(_diag(it.id, "blank_question", not it.question.strip()))
    out.append(_diag(it.id, "too_few_options", n < 2, n_choices=n))
    empty = [LETTERS[i] if i < len(LETTERS) else str(i) for i, c in enumerate(norm) if not c]
    out.append(_diag(it.id, "empty_option", bool(empty), options=empty))
    counts = Counter(c for c in norm if c)
    dup = [LETTERS[i] for i, c in enumerate(norm) if c and counts[c] > 1]
    out.append(_diag(it.id, "duplicate_options", bool(dup), options=dup,
                     key_is_duplicated=bool(key_ok and it.answer is not None and LETTERS[it.answer] in dup)))
    out.append(_diag(it.id, "key_out_of_range", not key_ok, answer=it.answer_raw, n_choices=n))

    near: list[list[str]] = []
    squashed = [re.sub(r"\s+", "", re.sub(r"[\u2212\u2013\u2014]", "-", c)) for c in norm]  # "x − 1" ~ "x-1"
    for i in range(n):
        for j in range(i + 1, n):
            if norm[i] != norm[j] and squashed[i] and squashed[i] == squashed[j]:
                near.append([LETTERS[i], LETTERS[j]])
    out.append(_diag(it.id, "near_duplicate_options", bool(near), pairs=near))
    mismatch = expected_choices is not None and n >= 2 and n != expected_choices
    out.append(_diag(it.id, "option_count_mismatch", mismatch, n_choices=n, expected=expected_choices))

    meta = [LETTERS[i] for i, c in enumerate(it.choices) if _META_OPTION.search(c)]
    key_letter = LETTERS[it.answer] if key_ok and it.answer is not None else None
    meta_key_none = bool(key_letter in meta and _NONE_OPTION.search(it.choices[it.answer or 0]))
    out.append(_diag(it.id, "all_none_of_the_above", bool(meta), options=meta,
                     key_is_meta=key_letter in meta, key_is_none_of_the_above=meta_key_none))

    leak = False
    if key_ok and it.answer is not None:
        stem = normalise_text(it.question)
        key = norm[it.answer]

        def appears(text: str) -> bool:
            return bool(text) and re.search(r"(?<!\w)" + re.escape(text) + r"(?!\w)", stem) is not None

        specific = len(key.split()) >= 2 or len(key) >= 8  # single short words recur in stems by chance
        if specific and key not in _TRIVIAL_ANSWERS and appears(key):
            leak = not any(appears(c) for i, c in enumerate(norm) if i != it.answer)
    out.append(_diag(it.id, "answer_leak", leak, key=key_letter))

    giveaway = ""
    if key_ok and it.answer is not None and n >= 3:
        key_len = len(norm[it.answer])
        others = [len(c) for i, c in enumerate(norm) if i != it.answer]
        # only the "longest option is the key" cue: a short key ("Valid" vs "Invalid. Counterexample
        # when ...") is usually structure, not a giveaway
        if key_len >= 1.75 * max(others) and key_len - max(others) >= 15:
            giveaway = "longest"
    out.append(_diag(it.id, "key_length_giveaway", bool(giveaway), which=giveaway or None))
    # a writer that pasted the options into the stem and left their letters as options (a cold demo's fix
    # draft of "Why is the sky blue?"); one letter among real options is an answer, all of them is not
    label_only = n >= 2 and all(is_bare_letter(c) for c in it.choices)
    out.append(_diag(it.id, "label_only_options", label_only))
    return out


def modal_choice_count(rows: Sequence[QAItem | Mapping[str, Any]]) -> int | None:
    """Most common number of options in a dataset (the norm `option_count_mismatch` compares against)."""
    counts = Counter(len(coerce_row(r, i).choices) for i, r in enumerate(rows))
    return counts.most_common(1)[0][0] if counts else None


def validator_diagnostic(item_id: str, verdict: Verdict) -> Diagnostic:
    """check="validator": a validator method's verdict on an existing item's key, as screening stores it and
    `combine_error_evidence` pools it. The one writer of this diagnostic, and the pooling its one reader, so
    the record's keys live in this module: `key_correct` (None when the method's tool could not run and
    nothing decided instead, such as PoT without a sandbox), `error_type` (the diagnosis when the key is judged
    wrong: no option is the computed answer → no correct answer, else a wrong ground truth), `confidence`,
    `method`, `evidence` (the verdict's, with its reason and tokens) and `tokens` — the keys run folders have
    always held, so an old run's diagnostics pool as they did. Flag: the key judged wrong; score 1 right, 0
    wrong, 0.5 undecided.

    A method that could not decide (`UNDECIDED_OUTCOMES`: no usable answer, a tool that returned no verdict,
    a tool that could not run), and whose fallback (when it had one) could not either, is undecided here, as review reads it
    (validation/strength.py): a model that gave no answer is no evidence that the key is wrong. (Before
    this, only "unavailable" was; the other two pooled as a failed verdict at 0.7 and raised p_error.)"""
    deciding = verdict.fallback if verdict.fallback is not None else verdict
    key_correct = None if deciding.outcome in UNDECIDED_OUTCOMES else verdict.passed
    error_type: ErrorType | None = None
    if key_correct is False:
        error_type = "no_correct_answer" if verdict.outcome == "no_match" else "wrong_groundtruth"
    evidence = {"key_correct": key_correct, "error_type": error_type, "confidence": verdict.confidence,
                "method": verdict.method,
                "evidence": {**verdict.evidence, "tokens": verdict.tokens, "reason": verdict.reason},
                "tokens": verdict.tokens}
    return Diagnostic(item_id=item_id, check="validator", flag=key_correct is False,
                      score=0.5 if key_correct is None else float(key_correct), evidence=evidence)


class ErrorModel(BaseModel):
    """Weights of the evidence pooling; defaults are hand-set, calibrate them on MMLU-Redux dev. Unknown keys
    are refused: set from an options file, a mistyped weight would otherwise leave the default in force. So are
    infinity and NaN, and weights above 100 (far past certainty): the model is saved in settings.json, which
    must stay valid JSON for the run to be resumed."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prior: float = Field(default=0.065, gt=0, lt=1)  # MMLU-Redux: ~6.5% of items carry an error
    panel_accuracy_ok: float = Field(default=0.80, gt=0, lt=1)  # P(panel model agrees with key | item ok)
    panel_accuracy_error: float = Field(default=0.30, gt=0, lt=1)  # ... | item erroneous
    panel_weight: float = Field(default=1.0, ge=0, le=100)  # < 1 discounts correlated panel members
    deterministic_weight: float = Field(default=1.0, ge=0, le=100)
    threshold: float = Field(default=0.5, gt=0, lt=1)  # p_error at or above this flags the item
    consensus_share: float = Field(default=0.6, gt=0, le=1)  # dissenters agreeing on one option → WG
    # P(error | a distractor's embedding is a near-paraphrase of the key); on the MMLU-Redux injected
    # sets MiniLM cos >= 0.9 fires on ~35% of multiple-correct items and ~5% of the others
    distractor_close_severity: float = Field(default=0.15, gt=0, lt=1)


class ErrorAssessment(BaseModel):
    """The pooled verdict for one item."""

    item_id: str
    p_error: float
    error_type: ErrorType
    flag: bool
    contributions: dict[str, float]  # log-odds each source added
    type_scores: dict[str, float]  # positive evidence per error type
    panel: dict[str, Any] = Field(default_factory=dict)

    def to_diagnostic(self) -> Diagnostic:
        return Diagnostic(
            item_id=self.item_id, check="error", flag=self.flag, score=1.0 - self.p_error,
            evidence={"p_error": self.p_error, "error_type": self.error_type,
                      "error_label": ERROR_TYPE_LABELS[self.error_type], "contributions": self.contributions,
                      "type_scores": self.type_scores, "panel": self.panel},
        )


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def panel_summary(panel_answers: Sequence[int | None], key: int | None) -> dict[str, Any]:
    """Disagreement with the key and the dissenters' favourite option, from each panel model's choice."""
    votes = [a for a in panel_answers if a is not None]
    if not votes:
        return {"size": 0, "disagreement": None}
    dissent = [a for a in votes if a != key]
    top, top_n = Counter(dissent).most_common(1)[0] if dissent else (None, 0)
    return {
        "size": len(votes), "disagreement": len(dissent) / len(votes),
        "alternative": top, "alternative_share": top_n / len(dissent) if dissent else 0.0,
        "votes": dict(Counter(votes)),
    }


def combine_error_evidence(
    item_id: str,
    deterministic: Iterable[Diagnostic] = (),
    *,
    panel_disagreement: float | None = None,
    panel_size: int = 1,
    panel_answers: Sequence[int | None] | None = None,
    key: int | None = None,
    validator: Diagnostic | None = None,
    distractors: Diagnostic | None = None,
    model: ErrorModel | None = None,
) -> ErrorAssessment:
    """Pool deterministic flags, panel disagreement and the validator's verdict into p_error and an error type.

    Log-odds pooling (naive Bayes): start at logit(prior); each fired check adds logit(severity) −
    logit(prior); the panel adds the log-likelihood ratio of its agreement count under "item ok" vs
    "item erroneous"; a validator adds logit(P(error | its verdict)) − logit(prior). Give the panel as `panel_answers` (+ `key`,
    which also yields the dissenters' favourite option) or as `panel_disagreement` in [0, 1] with
    `panel_size`. `distractors` (the distractors.py Diagnostic) adds a multiple-correct-answers cue when
    a distractor is too close to the key; `validator` is the `validator_diagnostic` of the validator's verdict
    (an undecided one adds nothing). The type is the one with most positive evidence; below the
    threshold it is "ok".
    """
    m = model or ErrorModel()
    pooled = _Pooled(prior_logit=_logit(m.prior))
    _add_checks(pooled, deterministic, distractors, m)
    panel: dict[str, Any] = {}
    if panel_answers is not None:
        panel = panel_summary(panel_answers, key)
        panel_disagreement, panel_size = panel["disagreement"], panel["size"]
    if panel_disagreement is not None and panel_size > 0:
        _add_panel(pooled, panel, panel_disagreement, panel_size, m)
    if validator is not None:
        _add_validator(pooled, validator.evidence)
    return pooled.assessment(item_id, m.threshold, panel)


@dataclass
class _Pooled:
    """The evidence pooled so far: each source's log-odds, and the positive evidence per error type."""

    prior_logit: float
    contributions: dict[str, float] = field(default_factory=dict)
    type_scores: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ERROR_TYPES, 0.0))

    def add(self, source: str, llr: float, error_type: str) -> None:
        self.contributions[source] = llr
        self.type_scores[error_type] += max(llr, 0.0)

    def assessment(self, item_id: str, threshold: float, panel: dict[str, Any]) -> ErrorAssessment:
        """p_error from the summed log-odds; the type with most positive evidence when flagged, else "ok"."""
        total = self.prior_logit + sum(self.contributions.values())
        p_error = 1.0 / (1.0 + math.exp(-total))
        flag = p_error >= threshold
        best = max(self.type_scores, key=lambda t: self.type_scores[t])
        error_type: ErrorType = best if flag and self.type_scores[best] > 0 else "ok"  # type: ignore[assignment]
        if flag and error_type == "ok":
            error_type = "wrong_groundtruth"
        return ErrorAssessment(
            item_id=item_id, p_error=p_error, error_type=error_type, flag=flag, contributions=self.contributions,
            type_scores={k: v for k, v in self.type_scores.items() if v > 0}, panel=panel,
        )


def _add_checks(pooled: _Pooled, deterministic: Iterable[Diagnostic], distractors: Diagnostic | None,
                m: ErrorModel) -> None:
    """Each fired deterministic check at its severity, and a distractor too close to the key."""
    for diag in deterministic:
        name = diag.check.removeprefix("error.")
        if diag.flag and name in CHECKS:
            spec = CHECKS[name]
            error_type = spec.error_type
            if name == "duplicate_options" and diag.evidence.get("key_is_duplicated"):
                error_type = "multiple_correct_answers"  # the key's text is offered twice
            if name == "all_none_of_the_above" and diag.evidence.get("key_is_none_of_the_above"):
                error_type = "no_correct_answer"
            pooled.add(name, m.deterministic_weight * (_logit(spec.severity) - pooled.prior_logit), error_type)
    if distractors is not None and distractors.evidence.get("too_close"):
        pooled.add("distractor_too_close",
                   m.deterministic_weight * (_logit(m.distractor_close_severity) - pooled.prior_logit),
                   "multiple_correct_answers")


def _add_panel(pooled: _Pooled, panel: dict[str, Any], disagreement: float, size: int, m: ErrorModel) -> None:
    """The panel's agreement count as a likelihood ratio under "item ok" vs "item erroneous"."""
    if not 0.0 <= disagreement <= 1.0:
        raise ValueError(f"panel_disagreement must be in [0, 1], got {disagreement}")
    agree, dissent = (1 - disagreement) * size, disagreement * size
    a_ok, a_err = m.panel_accuracy_ok, m.panel_accuracy_error
    llr = m.panel_weight * (agree * math.log(a_err / a_ok) + dissent * math.log((1 - a_err) / (1 - a_ok)))
    pooled.contributions["panel"] = llr
    panel.setdefault("size", size)
    panel.setdefault("disagreement", disagreement)
    if llr > 0:
        share = panel.get("alternative_share")
        # one favoured alternative → the key is probably wrong; scattered dissent → the item is unclear
        if share is None or share >= m.consensus_share:
            pooled.type_scores["wrong_groundtruth"] += llr
        else:
            pooled.type_scores["bad_question_clarity"] += 0.6 * llr
            pooled.type_scores["wrong_groundtruth"] += 0.4 * llr


def _add_validator(pooled: _Pooled, judged: Mapping[str, Any]) -> None:
    """A decided validator verdict: like a check whose severity is its confidence (key wrong) or one minus it
    (key right); when it judged the key wrong, its diagnosis counts double (it looked)."""
    if judged.get("key_correct") is None:
        return
    key_correct, confidence = bool(judged["key_correct"]), float(judged.get("confidence", SETTLED_CONFIDENCE))
    p_given = 1 - confidence if key_correct else confidence
    llr = _logit(p_given) - pooled.prior_logit
    pooled.contributions[f"validator:{judged.get('method') or 'unknown'}"] = llr
    if not key_correct:
        diagnosis = judged.get("error_type")
        pooled.type_scores[diagnosis if diagnosis in pooled.type_scores else "wrong_groundtruth"] += 2 * llr
