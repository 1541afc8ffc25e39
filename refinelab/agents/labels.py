"""Skill labels: one skill of the taxonomy or "unsure", never an empty cell, from the evidence that
actually separates skills.

Three sources, strongest first:
1. Cheap signals, as the validator's router reads them: an item the regex signals call computable
   (numbers and units in the stem, numeric options, compute verbs; `metrics.item_signals.regex_route` says
   "pot") is `calculation` when the taxonomy has that skill, and no labeller is asked (`asks_judge`). On a
   mixed set the signals flag 33 of 36 math word problems and none of 72 science, commonsense,
   misconception or law/history items.
2. `skill_method="model"` (default): the judge's constrained classification. The output schema is an
   enum of the taxonomy's names plus "unsure", so an OpenAI-compatible server that honours JSON schemas
   (llama.cpp does, by grammar) can only emit a valid label; an endpoint that ignores the schema gets
   "unsure".
3. `skill_method="exemplars"`: the skill whose few-shot examples (`skills.yaml`) are nearest to the stem
   in MiniLM embedding space (mean cosine to its two closest examples); "unsure" when the item resembles
   no skill's examples. No model call (the judge is asked only when the 1-5 rating is wanted,
   `difficulty_method="rating"`, and its skill is then kept as `model_skill`).

Why the model stays the default: on the 108-item mixed set (evals/results/labels.md) the 1.5B judge's
labels separate the sources better (adjusted mutual information 0.60, 91% under the best source→skill
mapping) than the exemplars (0.44, 67%), although it names only three skills and calls science items
"comprehension": it is consistent, and coverage needs consistent cells. The exemplars cost no tokens
(the judge's label is ~425 tokens an item), so they suit a large set or a tight budget.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from refinelab.agents.context import AgentContext
from refinelab.domains import UNSURE
from refinelab.errors import LLMCallFailed
from refinelab.metrics.item_signals import regex_route, route_signals
from refinelab.metrics.option_probs import align, letter_distribution, mean_distribution, presentation_orders
from refinelab.prompts.loader import Pack
from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.embeddings import normalize
from refinelab.tools.ledger import CallTag

LABEL_MAX_TOKENS = 80  # the label JSON is ~35 tokens as small models format it (newlines, indent)
COMPUTE_SKILL = "calculation"  # the taxonomy's name for items the regex signals call computable
EXEMPLAR_TOP_K = 2  # a skill's similarity to an item: the mean cosine of its this-many closest examples
EXEMPLAR_MIN_SIMILARITY = 0.1  # below this best similarity the item resembles no skill's examples: "unsure"
SKILL_NUMBERS = "123456789"  # the probe numbers the skills: the item's own options already use letters
CONTENT_FREE = "N/A"  # the content-free question whose answer is the probe's prior (contextual calibration)
PRIOR_FLOOR = 0.02  # a prior probability is never taken below this: dividing by ~0 would crown a skill by noise


@lru_cache(maxsize=16)
def label_schema(names: tuple[str, ...]) -> type[BaseModel]:
    """The labeller's output model for a taxonomy: skill as an enum of its names plus "unsure"."""
    skill_type: Any = Literal[(*names, UNSURE)]  # type: ignore[valid-type]
    return create_model("ItemLabelOut", skill=(skill_type, ...), difficulty=(int, Field(ge=1, le=5)))


def normalise_skill(raw: str, names: list[str]) -> str:
    """The taxonomy name `raw` denotes (case and spacing ignored), else "unsure"."""
    value = " ".join(str(raw).strip().lower().split())
    return value if value in names else UNSURE


def label_request(ctx: AgentContext, item: QAItem, node: str = "profile",
                  ) -> tuple[list[dict[str, str]], type[BaseModel], CallTag]:
    """The label call's messages, output schema and tag: one definition, so a batch job (`--batch`) asks
    exactly what `classify_skill` then finds answered. `node` is who pays: the profile, or the validate
    node of an edit whose new item is measured (the tag is not part of the cache key)."""
    messages = ctx.pack(item).messages("profile_item", item=item, skills=ctx.skills.skills,
                                       skill_examples=ctx.skills.examples)
    return messages, label_schema(tuple(ctx.skills.names)), CallTag(node=node, operation="label", item_id=item.id)


def decided_by_signals(ctx: AgentContext, item: QAItem) -> bool:
    """Whether the item's cheap signals decide its skill (`calculation`, when the taxonomy has it): the
    router's regex calls it computable. No labeller is asked then; its answer would be overridden."""
    return COMPUTE_SKILL in ctx.skills.names and regex_route(route_signals(item)) == "pot"


def asks_judge(ctx: AgentContext, item: QAItem) -> bool:
    """Whether labelling `item` asks the judge for its structured label: for the 1-5 rating difficulty
    reads (`difficulty_method="rating"`), or for its skill (`skill_method="model"`) when the signals do not
    decide it. Before, a computable item's label call (~440 tokens) was paid and its skill overridden; on
    the JSD eval's mathematics-heavy mix that was most of the profile's label calls."""
    if ctx.options.difficulty_method == "rating":
        return True
    return ctx.options.skill_method == "model" and not decided_by_signals(ctx, item)


def awaiting_label(ctx: AgentContext, item: QAItem) -> bool:
    """Whether `item` has no usable label stored: none, or a call that never got an answer (endpoint down),
    which a resume asks again. One rule for the profile's label step, its batches and its cost forecast."""
    label = ctx.store.diagnostic(item.id, "label")
    return label is None or bool(label.evidence.get("error") and not label.evidence.get("raw"))


def judged(names: list[str], skill: str, rating: int) -> dict[str, Any]:
    """The judge's answer as label evidence: its skill on the taxonomy, its 1-5 rating and that rating as
    difficulty in [0, 1]; the same whether the item was asked alone or in a batch."""
    return {"model_skill": normalise_skill(skill, names), "rating": int(rating), "difficulty": (int(rating) - 1) / 4}


def label_diagnostic(item: QAItem, skill: str, by: str, evidence: dict[str, Any]) -> Diagnostic:
    """The stored label: `skill` and who gave it, with the evidence behind it (its rating difficulty, when
    the judge gave one, is the score)."""
    difficulty = evidence.get("difficulty")
    return Diagnostic(item_id=item.id, check="label", flag=False, score=0.5 if difficulty is None else difficulty,
                      evidence={"skill": skill, "by": by, **evidence})


def exemplar_vectors(ctx: AgentContext) -> dict[str, np.ndarray]:
    """Unit-length embeddings of each skill's examples, computed once per run."""
    if ctx._skill_exemplars is None:
        named = [(name, ctx.skills.examples[name]) for name in ctx.skills.names if ctx.skills.examples.get(name)]
        embed = ctx.embedder()
        ctx._skill_exemplars = {name: normalize(embed(list(examples))) for name, examples in named}
    return ctx._skill_exemplars


def exemplar_skill(ctx: AgentContext, item: QAItem) -> tuple[str, dict[str, float]]:
    """(skill, similarity per skill): the skill whose examples are nearest to the stem, "unsure" when none
    is near (or the taxonomy has no examples)."""
    vectors = exemplar_vectors(ctx)
    if not vectors:
        return UNSURE, {}
    return nearest_skill(vectors, normalize(ctx.embedder()([item.question]))[0])


def nearest_skill(vectors: dict[str, np.ndarray], stem: np.ndarray) -> tuple[str, dict[str, float]]:
    """(skill, similarity per skill) of a unit-length stem embedding against each skill's unit-length
    example embeddings: the mean cosine of its `EXEMPLAR_TOP_K` closest examples; "unsure" below
    `EXEMPLAR_MIN_SIMILARITY`."""
    similarity = {name: float(np.sort(v @ stem)[-EXEMPLAR_TOP_K:].mean()) for name, v in vectors.items()}
    best = max(similarity, key=similarity.__getitem__)
    return (best if similarity[best] >= EXEMPLAR_MIN_SIMILARITY else UNSURE), similarity


def skill_probe_requests(ctx: AgentContext, pack: Pack, text: str, subject: str, tag: CallTag,
                         ) -> list[tuple[list[int], list[dict[str, str]], CallTag]]:
    """(order, messages, tag) of the skill probe of `text` in each presentation order of the skills."""
    skills = list(ctx.skills.skills.items())
    return [(order, pack.messages("label_probe", shown=[skills[i] for i in order], item_text=text,
                                  subject=subject or "unknown"), tag)
            for order in presentation_orders(len(skills), ctx.options.panel_orders)]


def skill_distribution(ctx: AgentContext, requests: list[tuple[list[int], list[dict[str, str]], CallTag]],
                       what: str) -> tuple[list[float], int]:
    """(probability per skill, tokens): the judge's first-token probabilities over the skill numbers in
    each presentation order, aligned back to the taxonomy's order and averaged. Raises LLMCallFailed when
    no order gave a usable distribution."""
    client = ctx.client("judge")
    n = len(ctx.skills.names)
    aligned, tokens = [], 0
    for order, messages, tag in requests:
        result = client.first_token_logprobs(messages, tag)
        tokens += result.tokens
        probs, mass = letter_distribution(result.top_logprobs or [], n, SKILL_NUMBERS)
        if mass > 0:
            aligned.append(align(probs, order))
    if not aligned:
        raise LLMCallFailed(f"skill probe: no skill number among the first token's alternatives for {what}",
                            tokens=tokens)
    return mean_distribution(aligned), tokens


def skill_prior(ctx: AgentContext, pack: Pack) -> list[float]:
    """The probe's answer to a content-free question in `pack`, asked once per run and pack: how much the
    judge favours each skill whatever the item (contextual calibration, Zhao et al. 2021). Uniform when
    it cannot answer."""
    if pack.name not in ctx._skill_priors:
        requests = skill_probe_requests(ctx, pack, CONTENT_FREE, "", CallTag(node="profile", operation="label"))
        try:
            prior, _ = skill_distribution(ctx, requests, "the content-free question")
        except LLMCallFailed:
            prior = [1.0 / len(ctx.skills.names)] * len(ctx.skills.names)
        ctx._skill_priors[pack.name] = prior
    return ctx._skill_priors[pack.name]


def calibrated(probs: list[float], prior: list[float]) -> list[float]:
    """`probs` divided by the prior (floored) and renormalised: a skill wins because this item moved the
    model towards it, not because the model names it for any input."""
    raw = [p / max(q, PRIOR_FLOOR) for p, q in zip(probs, prior, strict=True)]
    total = sum(raw)
    return [r / total for r in raw] if total > 0 else list(probs)


def probe_skill(ctx: AgentContext, item: QAItem, node: str = "profile") -> tuple[str, dict[str, Any]]:
    """(skill, evidence): the calibrated argmax of the skill probe; the raw and prior distributions are
    kept so a report (or an eval) can see what calibration changed."""
    names = ctx.skills.names
    pack = ctx.pack(item)
    requests = skill_probe_requests(ctx, pack, item.render(), item.subject,
                                    CallTag(node=node, operation="label", item_id=item.id))
    probs, tokens = skill_distribution(ctx, requests, item.id)
    prior = skill_prior(ctx, pack)
    p = calibrated(probs, prior)
    best = max(range(len(names)), key=p.__getitem__)
    return names[best], {"skill_probs": {n: round(v, 4) for n, v in zip(names, p, strict=True)},
                         "skill_probs_raw": [round(v, 4) for v in probs],
                         "skill_prior": [round(v, 4) for v in prior], "probe_tokens": tokens}


def classify_skill(ctx: AgentContext, item: QAItem, max_tokens: int, node: str = "profile") -> Diagnostic:
    """The label Diagnostic for one item (check="label"): skill, and the 1-5 rating as difficulty in [0, 1]
    when the judge was asked (`asks_judge`). A failed judge call with `skill_method="model"` is a flagged
    "unsure" label with the raw output, never a guess. An item its signals call computable is `calculation`
    without asking any labeller for its skill."""
    names = ctx.skills.names
    computable = decided_by_signals(ctx, item)
    evidence: dict[str, Any] = {"difficulty": None, "tokens": 0, "cached": True}
    if asks_judge(ctx, item):
        messages, schema, tag = label_request(ctx, item, node)
        try:
            result = ctx.client("judge").structured(messages, schema, tag, max_tokens=max_tokens)
        except LLMCallFailed as exc:
            if ctx.options.skill_method == "model" and not computable:
                return Diagnostic(item_id=item.id, check="label", flag=True, score=0.5,
                                  evidence={"error": str(exc), "raw": exc.raw_outputs, "skill": UNSURE,
                                            "difficulty": None})
            evidence |= {"error": str(exc), "raw": exc.raw_outputs}
        else:
            parsed: Any = result.parsed
            evidence |= judged(names, parsed.skill, parsed.difficulty) | {"tokens": result.tokens,
                                                                           "cached": result.cached}
    if computable:
        skill, by = COMPUTE_SKILL, "signals"
    elif ctx.options.skill_method == "exemplars":
        skill, similarity = exemplar_skill(ctx, item)
        evidence |= {"exemplar_skill": skill, "similarity": {k: round(v, 4) for k, v in similarity.items()}}
        by = "exemplars"
    elif ctx.options.skill_method == "probs":
        try:
            skill, probed = probe_skill(ctx, item, node)
        except LLMCallFailed as exc:
            return Diagnostic(item_id=item.id, check="label", flag=True, score=0.5,
                              evidence={**evidence, "error": str(exc), "raw": exc.raw_outputs, "skill": UNSURE})
        evidence |= probed
        evidence["tokens"] += probed["probe_tokens"]
        by = "probs"
    else:
        skill, by = evidence["model_skill"], "model"
    return label_diagnostic(item, skill, by, evidence)
