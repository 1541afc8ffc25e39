"""Run options: every choice a run makes besides models and folders, as one typed, documented model.

`RunOptions` is what a user sets (flags, an options file, `refinelab.refine(options=…)`); it is saved in
the run's `settings.json` and read back by `resume`, so it holds plain data only. Models, endpoints,
folders and the response cache are `Settings` (config.py); nothing a run decides is read from there.
`RunHooks` is what a caller plugs in as live objects (a scripted chat model, a sandbox, a retriever, an
embedder): never saved, never read from a file — tests and notebooks use it, as LangGraph passes live
objects in its runtime context. Agents read both from `AgentContext.options` / `AgentContext.hooks`;
nothing else carries options around.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from refinelab.agents.style_examples import ExampleChoice
from refinelab.config import PlannerMode
from refinelab.errors import ConfigError, DataError, validation_problem
from refinelab.metrics.error_checks import ErrorModel
from refinelab.operations import OPERATION_NAMES, operation
from refinelab.planner.catalogue import ApplicabilityPolicy
from refinelab.safeload import load_yaml, loads_json
from refinelab.tools.corpus import corpus_sources

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from refinelab.schema import QAItem
    from refinelab.state import Verdict
    from refinelab.tools.corpus import Corpus
    from refinelab.tools.retrieval import Retriever
    from refinelab.tools.sandbox_base import CodeSandbox

DifficultyMethod = Literal["rating", "elo", "irt"]
SkillMethod = Literal["exemplars", "model", "probs"]
ValidatorName = Literal["pot", "rag", "pot_or_rag"]
ReviewMode = Literal["ask", "auto-accept", "auto-reject"]
_POLICY = ApplicabilityPolicy.model_fields  # the planner's own defaults for when an operation may be bought


class RunOptions(BaseModel):
    """What a run measures, may buy and how it checks edits. Defaults are the documented behaviour.

    No infinity or NaN, and every number has an upper bound far above any real use: an options file is
    untrusted text, and `pilot_share: .inf` would be written to settings.json as `Infinity`, which no JSON
    reader (ours included) accepts, so the run could never be resumed; `elo_bootstrap: 10**20` would loop
    for ever."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # --- planning
    operations: list[str] = Field(
        default_factory=lambda: list(OPERATION_NAMES),
        description="operations the planner may buy (names from the operation registry)")
    dry_run: bool = Field(False, description="plan and stop: no pilot, no edits")
    rounds: int = Field(2, ge=1, le=20, description="planned rounds after the pilot, each a plan, its edits and "
                        "the measuring of what they changed; the run stops sooner when the budget is spent or "
                        "a plan buys nothing (flag --rounds)")
    planner_mode: PlannerMode = Field(
        "ilp", description="how each round's plan is chosen (planner/ilp.py): ilp (the exact integer program), "
        "lp-round (its LP relaxation, rounded), greedy or random (the baselines) (flag --mode)")
    max_attempts: int = Field(2, ge=1, le=10, description="refine attempts per edit: the first try and the "
                              "loop-backs a rejection sends, the validator's reason fed back; the planner prices "
                              "an edit by the attempts it expects")
    pilot_per_op: int = Field(5, ge=0, le=1000, description="pilot edits per operation before the first plan; 0 = priors")
    pilot_share: float = Field(0.25, ge=0.0, le=1_000_000.0, description="share of the budget left the pilot may spend, by prior "
                               "estimate (>= 1: no share limit, only the ledger caps it)")
    min_size: int | None = Field(None, ge=0, le=10_000_000, description="the refined set keeps at least this many items; None = "
                                 "`min_keep` of the valid input (no floor with allow_shrink)")
    min_keep: float = Field(0.9, ge=0.0, le=1.0, description="default size floor as a share of the valid input items")
    measure_new_item_cells: bool = Field(
        True, description="commit an expand only when its new item is labelled into the cell it was written for "
        "or another under-covered cell (agents/validation/measured.py); off: a new item counts in the cell it "
        "was written for, unmeasured")
    measure_new_item_buckets: bool = Field(
        True, description="commit a generate only when its new item's difficulty, measured by the panel on the "
        "profile's IRT scale, falls in the bucket it was written for or another under-filled bucket "
        "(agents/validation/measured.py); off: a new item counts in the bucket it was written for, unmeasured")
    expand_batch: int = Field(4, ge=1, le=8, description="expand: new items for one cell the writer drafts in "
                              "one call (its instructions and examples paid once for them; each item is then "
                              "validated on its own; 1 = one call per new item; agents/expand_batches.py)")
    expand_aims_difficulty: bool = Field(
        False, description="expand: the plan deals each round's drafts the difficulty buckets the set is short of "
        "by the targets, and the writer is asked for them (agents/difficulty_aims.py); the new item still counts "
        "in the bucket the panel measures. Off by default: with the 1.5B writer 13 of 15 new items asked to be "
        "hard read easy, and the answer check refused twice as many of them")
    expand_examples: ExampleChoice = Field(
        "subject", description="expand: the set's items the writer is shown as examples of the style: subject "
        "(the template's subject's first two) or skill (items labelled the skill the cell is short of, the "
        "subject's first, then the domain's, then any; agents/style_examples.py). subject by default: at 50k skill "
        "kept 16 of 27 new items in the cell written for (20 of 40), but at 1,757 tokens each against 1,153")
    expand_spares: int = Field(0, ge=0, le=8, description="expand_batch > 1: drafts each batch asks for beyond "
                               "one per task; a retry takes an unused one instead of a writer call of its own. Off: at 50k two "
                               "spares made drafts cheaper but not new items (1,188 tokens each against 1,161)")
    calibrate_drafts: int = Field(3, ge=1, le=8, description="calibrate: drafts the writer is asked for; the "
                                  "panel measures each and the one whose p(correct) moved furthest in the "
                                  "intended direction is validated (1 = a single draft, unmeasured)")
    calibrate_swaps: bool = Field(True, description="calibrate: first swap distractors for more (harder) or less "
                                  "(easier) tempting ones, the stem and key kept, measured by the panel; the "
                                  "writer's stem drafts are asked for only when no swap moved the item far enough")
    allow_shrink: bool = Field(False, description="let the planner remove any item to rebalance coverage or "
                               "difficulty; without it, only defects (unfixable errors, duplicates) are removed")
    fix_min_p_error: float = Field(_POLICY["fix_min_p_error"].default, ge=0.0, le=1.0, description="an item is a "
                                   "candidate for `fix` only at this screened p_error or above (below it a fix is "
                                   "almost surely wasted: the correction eval's 7 unhandled wrong keys of 50 lay "
                                   "under 0.05, beside 30% of the clean items)")
    remove_min_p_error: float = Field(_POLICY["remove_min_p_error"].default, ge=0.0, le=1.0, description="without allow_shrink, an item is a "
                                      "defect `remove` may be bought for at this p_error or above (or a flagged "
                                      "item whose fix failed, or a duplicate)")

    # --- profiling
    difficulty_method: DifficultyMethod = Field(
        "irt", description="how difficulty is measured: irt (the panel's answers, the judge alone when no "
        "panel is set), elo (pairwise judgements) or rating (the labeller's 1-5 guess)")
    skill_method: SkillMethod = Field(
        "model", description="how an item's skill is labelled (computable items are `calculation` by their "
        "signals either way): model (the judge's constrained classification) or exemplars (the skill whose "
        "examples are nearest in MiniLM embedding space; no model call, weaker separation) or probs (the judge's "
        "first-token probability of each skill in two orders, divided by its answer to a content-free question)")
    label_batch: int = Field(1, ge=1, le=16, description="skill_method=model: items the judge labels in one "
                             "call (the instructions and skill list paid once per batch; 1 = one call per item)")
    elo_extra_rounds: int = Field(8, ge=0, le=1000, description="Elo: comparison rounds after the Swiss pairing")
    elo_bootstrap: int = Field(200, ge=0, le=100_000, description="Elo: bootstrap resamples for the confidence interval")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Elo: seed of its random draws (the order ties are "
                      "paired in, the bootstrap's resamples), so a rerun pairs and resamples alike")
    panel: list[str] = Field(default_factory=list,
                             description="models that answer every item (error screening, IRT); empty = none")
    panel_reasoning: bool = Field(False, description="letter method: members reason before the letter (slower)")
    panel_method: Literal["logprobs", "letter"] = Field(
        "logprobs", description="how a member answers: a probability per option from one-token logprobs, or a "
        "generated JSON letter (for endpoints without logprobs)")
    panel_orders: int = Field(2, ge=1, le=10, description="logprobs: option orders each item is asked in "
                              "(original, reversed, then cyclic shifts); their aligned distributions are averaged")
    panel_shots: int = Field(0, ge=0, le=8, description="logprobs: solved examples each letter probe shows first, "
                             "as earlier turns answered by their keys: the first N input items of the probed "
                             "item's subject, the item itself left out (agents/panel.probe_examples). The same "
                             "examples precede every item of a subject, so the server's prompt cache reuses them")
    distractors: bool = Field(True, description="score distractor sets (MiniLM embeddings + the panel's pick "
                              "rates; no model tokens), so the planner can buy measured distractor rewrites")
    validate_suspects: bool = Field(True, description="run the validator on items screening flags")
    validator_threshold: float = Field(0.5, ge=0.0, le=1.0,
                                       description="p_error at or above which a suspect is validated")
    error_model: ErrorModel = Field(default_factory=ErrorModel,
                                    description="weights of the error-evidence pooling")
    batch: bool = Field(False, description="send the profile's label calls (judge's endpoint) and the panel's "
                        "screening probes (each member's endpoint; profile and `screen`) through the OpenAI Batch "
                        "API (half price on hosted APIs; live calls where the server has none, e.g. the embedded "
                        "llama.cpp). The validator's checks of suspects stay live")
    screening_model: str | None = Field(
        None, description="a calibration.json from `refinelab screen --calibrate`: its fitted combiner "
        "scores the panel's option probabilities instead of the hand-set pooling")

    # --- validation
    validators: list[ValidatorName] | None = Field(
        None, description="model-based validators available to packs; None = all built-in, [] = answer check only")
    dedup: Literal["embedding", "lexical"] = Field("embedding", description="near-duplicate test for new items")
    pot_attempts: int = Field(2, ge=1, le=10, description="PoT programs per item (first + retries with the error)")
    pot_timeout_s: float = Field(5.0, gt=0, le=600, description="wall clock per PoT program")
    rag_corpus: str | None = Field(None, description="retrieval corpus: a path or `wikipedia:NAME`; None = built-in")
    rag_k: int = Field(4, ge=1, le=50, description="passages retrieved per item")
    rag_min_score: float = Field(0.2, ge=-1.0, le=1.0,
                                 description="below this best cosine the passages are off-topic: skip the judge")

    # --- human review (graph/review.py, docs/review.md)
    review: ReviewMode = Field("auto-reject", description="edits the validator cannot decide, passes below "
                               "`review_evidence_bar` and flagged items no edit fixed: `ask` pauses the run for a "
                               "person (`refinelab review RUN_ID`); `auto-accept`/`auto-reject` decide by policy")
    review_evidence_bar: float = Field(0.0, ge=0.0, le=1.0, description="a passed edit whose evidence strength "
                                       "(1 = the pack's own method decided, 0.5 = its answer-check fallback) is "
                                       "below this goes to review; 0 = every pass commits")

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, value: list[str]) -> list[str]:
        if not value:  # a run that may buy nothing would profile and stop; say so instead
            raise ValueError("name at least one operation")
        return [operation(name).name for name in value]

    @field_validator("rag_corpus")
    @classmethod
    def _known_sources(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("wikipedia:"):
            corpus_sources(value)
        return value

    @field_validator("panel", mode="before")
    @classmethod
    def _panel_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "m1,m2" from a flag or an environment variable
            value = value.split(",")
        return [str(m).strip() for m in value or [] if str(m).strip()]


#: The options that shape a profile — what profiling measures and how — as opposed to what a run then buys and
#: how it checks edits. A plan folder's profile is reused only for the same values of these
#: (`api/planning.py`); `tests/foundation/test_options_file.py` checks each is a field.
PROFILE_FIELDS: tuple[str, ...] = (
    "difficulty_method", "skill_method", "label_batch", "elo_extra_rounds", "elo_bootstrap", "seed", "panel",
    "panel_reasoning", "panel_method", "panel_orders", "panel_shots", "distractors", "validate_suspects",
    "validator_threshold", "error_model", "screening_model", "validators", "rag_corpus", "rag_k", "rag_min_score",
    "pot_attempts", "pot_timeout_s",
)

#: An options file is a few dozen lines; anything far larger is not one.
MAX_OPTIONS_FILE_BYTES = 256 * 1024


def profile_options(options: RunOptions) -> dict[str, Any]:
    """The profile-shaping options (`PROFILE_FIELDS`) that differ from the defaults, as JSON values: empty
    for a default profile, so a default plan folder keeps its name whatever options are added later."""
    return {k: v for k, v in options.model_dump(mode="json", exclude_defaults=True).items() if k in PROFILE_FIELDS}


def read_options_file(path: str | Path) -> dict[str, Any]:
    """The run options a YAML or JSON file sets (`--options FILE`): a mapping of `RunOptions` fields, each
    checked as `RunOptions` checks it, so a problem is one `ConfigError` naming the file and the field
    (`opts.yaml, field 'panel_orders': Input should be less than or equal to 10`) before any data is read. Returns
    the file's own fields only: the command line's flags are laid over them (`cli/common.run_options`)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not an options file")
    if not path.is_file():
        raise ConfigError(f"{path}: options file not found")
    if path.stat().st_size > MAX_OPTIONS_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_OPTIONS_FILE_BYTES // 1024} KiB; not an options file")
    try:
        text = path.read_text(encoding="utf-8")
        data = loads_json(text, str(path)) if path.suffix.lower() == ".json" else load_yaml(text, str(path))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8 text") from None
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of run options (field: value), got {type(data).__name__}")
    try:
        RunOptions.model_validate(data)
    except ValidationError as exc:
        where, message = validation_problem(exc.errors()[0])
        raise ConfigError(f"{path}, field '{where}': {message}" if where else f"{path}: {message}") from None
    return dict(data)


@dataclass
class RunHooks:
    """Live objects a caller plugs into a run instead of the defaults; never persisted."""

    chat_models: dict[str, BaseChatModel] = field(default_factory=dict)  # role or panel member → model
    sandbox: CodeSandbox | None = None  # PoT backend instead of the configured one
    retriever: Retriever | Corpus | None = None  # RAG retrieval instead of `options.rag_corpus`
    embed: Callable[[list[str]], Any] | None = None  # text embedder for distractor scores
    check_original: Callable[[Any, QAItem], Verdict] | None = None  # fn(ctx, item): the verdict on an existing item
    passages: Callable[[QAItem], str] | None = None  # evidence text for `rag:` panel members (e.g. context
    # that came with the dataset) instead of the retriever
    validators: dict[str, Callable[..., Any]] = field(default_factory=dict)  # extra methods a pack can name:
    # name → fn(ctx, task, item) -> Verdict (a retriever over your corpus, a unit checker, …)
    # a corpus index built mid-run (minutes, once per machine): index_progress(what) -> progress(done, total);
    # None logs it (tools/retrieval.logged_progress). The CLI passes its stderr line (cli/progress.py)
    index_progress: Callable[[str], Callable[[int, int], None]] | None = None
