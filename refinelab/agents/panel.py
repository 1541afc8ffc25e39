"""The model panel: several models answer each item; their answers are evidence about the item.

Panel answers feed error screening (disagreement with the key), distractor pick rates and IRT difficulty.
A member is named by a string:
- an embedded model (``smollm2-135m``, ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``): served locally by
  llama.cpp, started on first use (RAM: 135M ≈ 0.2 GB, 0.5B ≈ 0.7 GB, 1.5B ≈ 1.9 GB);
- ``judge``: whatever the judge role is configured to use;
- ``MODEL@URL``: any OpenAI-compatible endpoint (key from $OPENAI_API_KEY);
- ``rag:NAME``: member NAME answering with the top retrieved passages in its prompt;
- ``cloze:NAME``: member NAME reading each option's wording as the answer to the stem, no options shown
  and no letter asked (`cloze_member`; needs a llama.cpp server, which scores a reply forced by a grammar).

By default (`options.panel_method = "logprobs"`) a member answers with a probability per option: a
one-token completion read through `top_logprobs`, asked in `options.panel_orders` option orders and
aligned back (see metrics/option_probs.py). Its chosen option (the argmax) is kept as its answer too, so
pick rates and IRT read the same diagnostic. `panel_method = "letter"` asks for a JSON letter instead, for
endpoints that return no logprobs.
Each call's messages are defined once (`probe_requests`, `letter_request`): `panel_batch_requests` hands
the same calls to the Batch API under `--batch`, and the live call then finds its answer already paid for.
One function asks one member about one item (`ask_member`), whoever asks: the profile's panel
(`answer_panel`), a measured edit's before/after panel (validation/measured.py) and the evals. So an
edited item is measured the way the original was, and a comparison of the two is one method's.
Tests inject a chat model per member as ``ctx.hooks.chat_models["panel:NAME"]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from refinelab.agents.context import AgentContext
from refinelab.config import EMBEDDED, ModelSpec
from refinelab.errors import LLMCallFailed
from refinelab.metrics.option_probs import (
    align,
    entropy,
    letter_distribution,
    mean_distribution,
    order_flip,
    permuted,
    presentation_orders,
    softmax,
)
from refinelab.model_outputs import AnswerOut
from refinelab.schema import LETTERS, Diagnostic, QAItem, normalise_text
from refinelab.tools.batch import BatchRequest
from refinelab.tools.ledger import CallTag
from refinelab.tools.llm import CallResult, ChatClient
from refinelab.tools.together import run_together

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

LETTER_MAX_TOKENS = 32  # {"answer": "B"} is ~16 tokens as models format it
REASONING_MAX_TOKENS = 160
MEMBER_TIMEOUT_S = 600.0  # local servers shared by several callers queue requests; a timeout only re-queues them


class LetterOut(BaseModel):
    """A panel member's answer without reasoning (cheap on small local models)."""

    answer: Literal["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]


def panel_members(ctx: AgentContext) -> list[str]:
    """The configured panel (`options.panel`); empty = no panel."""
    return list(ctx.options.panel)


RAG_PREFIX = "rag:"
CLOZE_PREFIX = "cloze:"
#: divides a cloze member's scores before the softmax. A score sums log-probabilities over an option's
#: tokens, so differences of many nats are common: at 1, 35 of 55 MMLU-Redux dev items of a pilot had
#: p(key) within 0.001 of 0 or 1, and such a member outweighs every letter member in the pooled
#: distribution. At 8, 10 of 55. The items' ranking by p(key) barely moved with it (1 to 16).
CLOZE_TEMPERATURE = 8.0
RAG_PASSAGE_CHARS = 500  # per passage; four passages and a long stem stay well inside a 4k context


def member_spec(ctx: AgentContext, name: str) -> ModelSpec:
    """ModelSpec for a panel member name (see module doc)."""
    name = base_model_name(name)
    if name == "judge":
        return ctx.settings.roles.judge
    if "@" in name:
        model, url = name.split("@", 1)
        return ModelSpec(endpoint=url, model=model, temperature=0.0, max_tokens=REASONING_MAX_TOKENS,
                         timeout_s=MEMBER_TIMEOUT_S)
    return ModelSpec(endpoint=EMBEDDED, model=name, temperature=0.0, max_tokens=REASONING_MAX_TOKENS,
                     timeout_s=MEMBER_TIMEOUT_S)


def base_model_name(name: str) -> str:
    """The model a member name asks, without its `rag:` or `cloze:` reading."""
    return name.removeprefix(RAG_PREFIX).removeprefix(CLOZE_PREFIX)


JUDGE = "judge"


def injected_model(ctx: AgentContext, name: str) -> BaseChatModel | None:
    """The chat model plugged in for member `name`, if any: the one injected as ``panel:NAME``, else, for
    a member that asks the judge (``judge``, ``rag:judge``, ``cloze:judge``), the one injected for the judge
    role, so a plugged-in judge answers as that member too. The one place this aliasing is decided, so
    nothing needs to copy the judge's model into the hooks (which are shared with the caller)."""
    injected = ctx.hooks.chat_models.get(f"panel:{name}")
    if injected is None and base_model_name(name) == JUDGE:
        injected = ctx.hooks.chat_models.get(JUDGE)
    return injected


def member_client(ctx: AgentContext, name: str) -> ChatClient:
    """One budgeted, cached, traced client per member, kept with the context's other clients; its chat
    model is the one `injected_model` finds, else the member's endpoint (`member_spec`)."""
    key = f"panel:{name}"
    if key not in ctx._clients:
        ctx._clients[key] = ChatClient(member_spec(ctx, name), ctx.ledger, cache=ctx.cache, tracer=ctx.tracer,
                                       chat_model=injected_model(ctx, name), role=key)
    return ctx._clients[key]


def letter_request(ctx: AgentContext, name: str, item: QAItem, node: str = "profile", passages: str | None = None,
                   ) -> tuple[list[dict[str, str]], type[BaseModel], CallTag, int]:
    """The letter method's call for member `name` on `item` (messages, output schema, tag, token cap): one
    definition, so a batch job (`--batch`) asks exactly what `ask_member` then finds answered.

    A plain member gets `panel_answer`, or `answer_item` with a reason first under `panel_reasoning`. A
    `rag:` member reads its passages (`passages` when the caller retrieved them, else `retrieved_passages`)
    in `panel_probe_rag`, the prompt its probe uses, asked for the letter alone: that prompt has no room
    for a reason, and without the passages a `rag:` member would be a plain member under another name."""
    schema: type[BaseModel]
    variables: dict[str, Any] = {}
    if name.startswith(RAG_PREFIX):
        if passages is None:
            passages = retrieved_passages(ctx, item)
        prompt, schema, limit, variables = "panel_probe_rag", LetterOut, LETTER_MAX_TOKENS, {"passages": passages}
    elif ctx.options.panel_reasoning:
        prompt, schema, limit = "answer_item", AnswerOut, REASONING_MAX_TOKENS
    else:
        prompt, schema, limit = "panel_answer", LetterOut, LETTER_MAX_TOKENS
    messages = ctx.pack(item).messages(prompt, item=item, **variables)
    return messages, schema, CallTag(node=node, operation="panel", item_id=item.id), limit


def answers_with_probabilities(ctx: AgentContext, name: str) -> bool:
    """Whether member `name` answers with an option distribution (`probe_member`) rather than a JSON
    letter: under `panel_method="logprobs"`, and always for a `cloze:` member, which has no letter."""
    return ctx.options.panel_method == "logprobs" or name.startswith(CLOZE_PREFIX)


@dataclass
class MemberProbe:
    """One member's measured answer: the aligned probability per original option, averaged over orders."""

    probs: list[float]
    per_order: list[list[float]] = field(default_factory=list)  # aligned, one per presentation order
    mass: float = 1.0  # mean share of first-token probability on offered letters
    tokens: int = 0

    @property
    def choice(self) -> int | None:
        if not self.probs or sum(self.probs) <= 0:
            return None
        return max(range(len(self.probs)), key=self.probs.__getitem__)

    def as_evidence(self) -> dict[str, Any]:
        return {"p": [round(p, 5) for p in self.probs], "per_order": [[round(p, 5) for p in d] for d in self.per_order],
                "mass": round(self.mass, 4), "flip": order_flip(self.per_order), "tokens": self.tokens}


#: Why a member gave no answer: its call failed (no usable reply or logprobs after the retries), it named a
#: letter the item does not offer, or its distribution picked nothing (all zero).
NoAnswer = Literal["call_failed", "letter_not_offered", "no_choice"]


@dataclass(frozen=True)
class MemberAnswer:
    """One member's answer to one item: its chosen option, its measured distribution when it answered with
    one (`probe`), the tokens it cost (a failed call's too: they were paid for), and, when it chose
    nothing, why (`failure`, `detail`). Callers store `choice` (None counts as no vote) and the probe's
    evidence, and keep the failure where it can be read back."""

    choice: int | None
    probe: MemberProbe | None = None
    tokens: int = 0
    failure: NoAnswer | None = None
    detail: str = ""

    def failure_evidence(self) -> dict[str, Any]:
        """What a stored panel keeps about this member's failure (empty when it answered)."""
        if self.failure is None:
            return {}
        return {"reason": self.failure, "detail": self.detail, "tokens": self.tokens}


def offered_option(item: QAItem, letter: str) -> int | None:
    """The option index a letter names, or None when `item` has no such option (a schema allows A-J)."""
    index = LETTERS.index(letter)
    return index if index < len(item.choices) else None


def ask_member(ctx: AgentContext, name: str, item: QAItem, node: str = "profile",
               passages: str | None = None) -> MemberAnswer:
    """Ask member `name` about `item`, the one way every caller asks: an option distribution
    (`probe_member`) when `answers_with_probabilities`, else a JSON letter (`letter_request`). Tokens are
    charged to `node`; `passages` are a `rag:` member's, when the caller retrieved them already.

    A failed call (LLMCallFailed) is an answer with `failure="call_failed"` and the tokens it cost, not an
    exception: one member's failure leaves the others' answers standing. BudgetExhausted propagates."""
    try:
        if answers_with_probabilities(ctx, name):
            probe = probe_member(ctx, name, item, node, passages)
            if probe.choice is None:
                return MemberAnswer(None, probe, probe.tokens, "no_choice",
                                    f"{name}: its distribution over {item.id}'s options puts weight on none")
            return MemberAnswer(probe.choice, probe, probe.tokens)
        messages, schema, tag, limit = letter_request(ctx, name, item, node, passages)
        result = member_client(ctx, name).structured(messages, schema, tag, max_tokens=limit)
    except LLMCallFailed as exc:
        return MemberAnswer(None, tokens=exc.tokens, failure="call_failed", detail=str(exc))
    letter = result.parsed.answer
    choice = offered_option(item, letter)
    if choice is None:
        return MemberAnswer(None, tokens=result.tokens, failure="letter_not_offered",
                            detail=f"{name} answered {letter}; {item.id} has {len(item.choices)} options")
    return MemberAnswer(choice, tokens=result.tokens)


def retrieved_passages(ctx: AgentContext, item: QAItem) -> str:
    """Evidence text for a `rag:` member: `hooks.passages` when given (e.g. context shipped with the data),
    else the top `options.rag_k` passages from the run's retriever.

    The query is the stem and every option, not the stem and the key: a query built on the key fetches
    passages about the key, which then "support" it, and a candidate whose key was moved would be read
    against other passages than the original. With every option the passages, and so the probe's prompt,
    are the same whichever option is keyed: the member's reading is evidence about the options, and a key
    fix re-probes the candidate from the cache."""
    if ctx.hooks.passages is not None:
        return str(ctx.hooks.passages(item))[: RAG_PASSAGE_CHARS * ctx.options.rag_k]
    from refinelab.agents.retrieval import get_retriever
    from refinelab.tools.retrieval import format_passages

    query = " ".join([item.question, *item.choices])
    hits = [p for p in get_retriever(ctx).search(query, k=ctx.options.rag_k)
            if (p.score or 0.0) >= ctx.options.rag_min_score]  # off-topic passages are no evidence
    return format_passages(hits, max_chars=RAG_PASSAGE_CHARS) if hits else ""


def probe_examples(ctx: AgentContext, item: QAItem) -> list[QAItem]:
    """The solved examples a letter probe of `item` shows first (`options.panel_shots`): the first input
    items of its subject, in input order, the item itself left out (by id, and any copy of its stem: a
    duplicate would show the item its own key); none when shots are off.

    Why: shown a few answered questions first, the 1.5B is steadier. On MMLU-Redux dev's 411 rows, five
    examples from the same subject cut its order flips 74% -> 52% and raised the AUROC of 1 - p(key) as an
    error signal 0.611 -> 0.641, but the screening combiner only 0.651 -> 0.667, for 4.6x the tokens
    (evals/results/screening_dev_shots5.md): hence opt-in. The examples are the user's own items with their keys as given,
    unchecked: what is shown is the format, and an example with a wrong key is one of five. They are read
    from the input as loaded (`RunStore.original_items`), so edits do not change them mid-run and every
    probe of a subject shares one prefix the server's prompt cache reuses."""
    shots = ctx.options.panel_shots
    if not shots:
        return []
    if ctx._probe_examples is None:
        by_subject: dict[str, list[QAItem]] = {}
        for raw in ctx.store.iter_original_items():
            example = QAItem.model_validate_json(raw)
            if example.metadata.get("injected"):  # a copy `screen --calibrate` planted an error in
                continue
            kept = by_subject.setdefault(example.subject, [])
            if len(kept) < 2 * shots:  # spares, for the probe of an example itself or of its copy
                kept.append(example)
        ctx._probe_examples = by_subject
    stem = normalise_text(item.question)
    return [e for e in ctx._probe_examples.get(item.subject, [])
            if e.id != item.id and normalise_text(e.question) != stem][:shots]


def with_examples(pack: Any, messages: list[dict[str, str]], examples: list[QAItem]) -> list[dict[str, str]]:
    """`messages` (a `panel_probe` call) with `examples` inserted as earlier turns before its last message:
    each asked as the probe asks, in its own option order, and answered by its key's letter."""
    turns: list[dict[str, str]] = []
    for example in examples:
        turns += [pack.messages("panel_probe", item=example)[-1],
                  {"role": "assistant", "content": LETTERS[example.answer]}]
    return [*messages[:-1], *turns, messages[-1]]


def probe_requests(ctx: AgentContext, name: str, item: QAItem, node: str = "profile",
                   passages: str | None = None) -> list[tuple[list[int], list[dict[str, str]], CallTag]]:
    """(order, messages, tag) of member `name`'s one-token probe of `item` in each presentation order:
    one definition, so a batch job (`--batch`, `BatchRequest.probe`) asks exactly what `probe_member`'s
    `first_token_logprobs` then finds answered (same messages and parameters, hence the same cache key).
    A `rag:` member reads `passages` when the caller retrieved them already, else retrieves them here; a
    plain member shows `probe_examples` first (none unless `options.panel_shots`)."""
    pack = ctx.pack(item)
    rag = name.startswith(RAG_PREFIX)
    if rag and passages is None:
        passages = retrieved_passages(ctx, item)
    examples = [] if rag else probe_examples(ctx, item)
    tag = CallTag(node=node, operation="panel", item_id=item.id)
    out: list[tuple[list[int], list[dict[str, str]], CallTag]] = []
    for order in presentation_orders(len(item.choices), ctx.options.panel_orders):
        shown = permuted(item, order)
        messages = (pack.messages("panel_probe_rag", item=shown, passages=passages) if rag
                    else with_examples(pack, pack.messages("panel_probe", item=shown), examples))
        out.append((order, messages, tag))
    return out


def probe_member(ctx: AgentContext, name: str, item: QAItem, node: str = "profile",
                 passages: str | None = None) -> MemberProbe:
    """Ask one member for its option distribution in each presentation order and align them.

    Raises LLMCallFailed when an order's call failed or no order produced a usable distribution (the
    endpoint returned no logprobs or no offered letter among its top tokens) — never a silent guess —
    carrying every order's tokens. A `cloze:` member reads the options' wording instead (`cloze_member`)."""
    if name.startswith(CLOZE_PREFIX):
        return cloze_member(ctx, name, item, node)
    client = member_client(ctx, name)
    requests = list(probe_requests(ctx, name, item, node, passages))
    aligned: list[list[float]] = []
    masses: list[float] = []
    tokens = 0
    for (order, _, _), result in zip(requests, _ask_orders(client, requests), strict=True):
        tokens += result.tokens
        probs, mass = letter_distribution(result.top_logprobs or [], len(item.choices))
        if mass > 0:
            aligned.append(align(probs, order))
            masses.append(mass)
    if not aligned:
        raise LLMCallFailed(f"{name}: no option letter among the first token's alternatives for {item.id}",
                            tokens=tokens)
    return MemberProbe(probs=mean_distribution(aligned), per_order=aligned, mass=sum(masses) / len(masses),
                       tokens=tokens)


def cloze_member(ctx: AgentContext, name: str, item: QAItem, node: str = "profile") -> MemberProbe:
    """A `cloze:` member's distribution over `item`'s options from their wording, not from a letter.

    Each option's text is forced as the model's reply to the bare stem (`panel_cloze`) and to the same
    frame without it (`panel_cloze_prior`); its score is the difference of the two log-probabilities
    (pointwise mutual information: how much the stem raises that wording), and the distribution is their
    softmax. Nothing depends on the options' order or letters, which a small model's letter probe
    follows. Measured with the embedded 1.5B it adds nothing to screening (MMLU-Redux dev, 239 rows:
    combiner AUROC 0.656 with it, 0.645 without; evals/results/screening_dev_cloze.md), so it is opt-in:
    a member knows only what its model knows. 2 calls per option, run together; the prior depends on the
    option text only, so it is answered from the response cache wherever an option repeats.
    Raises LLMCallFailed, with every call's tokens, when the endpoint cannot score a forced reply (see
    `ChatClient.forced_text_logprobs`)."""
    client = member_client(ctx, name)
    pack = ctx.pack(item)
    tag = CallTag(node=node, operation="panel", item_id=item.id)
    asked, prior = pack.messages("panel_cloze", item=item), pack.messages("panel_cloze_prior", item=item)
    calls = [partial(client.forced_text_logprobs, messages, choice, tag)
             for choice in item.choices for messages in (asked, prior)]
    results = _all_answered(calls)
    tokens = sum(r.tokens for r in results)
    scores = [text_logprob(results[2 * i]) - text_logprob(results[2 * i + 1]) for i in range(len(item.choices))]
    scaled = [score / CLOZE_TEMPERATURE for score in scores]
    if not all(math.isfinite(score) for score in scaled):  # a softmax of them would be NaN and flag nothing
        raise LLMCallFailed(f"{name}: the endpoint's logprobs for {item.id} are not finite numbers", tokens=tokens)
    probs = softmax(scaled)
    return MemberProbe(probs=probs, per_order=[probs], tokens=tokens)


def text_logprob(result: CallResult) -> float:
    """The log-probability of a forced reply's text: its tokens' sum, without the end-of-turn token a
    server appends (a token with no text), which scores stopping, not the wording. NaN when a token's
    logprob is not a finite number <= 0 (a cache entry from before the readers checked) or the sum
    overflows: `cloze_member` refuses it rather than scoring it."""
    tokens = list(result.token_logprobs or [])
    while tokens and not tokens[-1][0]:
        tokens.pop()
    if not all(math.isfinite(logprob) and logprob <= 0.0 for _, logprob in tokens):
        return math.nan
    return sum(logprob for _, logprob in tokens)


def _ask_orders(client: ChatClient, requests: list[tuple[list[int], list[dict[str, str]], CallTag]],
                ) -> list[CallResult]:
    """Every order's one-token probe, at the same time: they do not depend on each other, and asked one
    after another they doubled the latency of a validation (the pilot's edits wait on it). Each call's
    trace stays under the caller's run; a failure is raised as `_all_answered` raises it."""
    return _all_answered([partial(client.first_token_logprobs, messages, tag) for _, messages, tag in requests])


def _all_answered(calls: Sequence[Callable[[], CallResult]]) -> list[CallResult]:
    """Every call's result, the calls run together. When any failed (LLMCallFailed), the first failure, in
    order, is raised once all have returned, with the tokens of every call, answered or not: they were all
    paid for, and the member's answer reports what it cost (`MemberAnswer.tokens`). Other errors
    (BudgetExhausted) propagate as they are."""
    def caught(call: Callable[[], CallResult]) -> CallResult | LLMCallFailed:
        try:
            return call()
        except LLMCallFailed as exc:
            return exc

    outcomes = run_together([partial(caught, call) for call in calls])
    failed = [o for o in outcomes if isinstance(o, LLMCallFailed)]
    if failed:
        first = failed[0]
        raise LLMCallFailed(str(first), raw_outputs=first.raw_outputs, attempts=first.attempts,
                            tokens=sum(o.tokens for o in outcomes)) from first
    return [o for o in outcomes if not isinstance(o, LLMCallFailed)]


def panel_diagnostic(item: QAItem, answers: dict[str, int | None],
                     probes: dict[str, dict[str, Any]] | None = None,
                     failures: dict[str, dict[str, Any]] | None = None) -> Diagnostic:
    """check="panel": each member's answer (and, with logprobs, its option distribution); score = share of
    answering members that chose the key. The pooled distribution (mean of the members') and its
    entropy are kept for the screening combiner. `failures` (`MemberAnswer.failure_evidence`, by member)
    says why a member's answer is None and what it cost; kept only when some member failed."""
    votes = [a for a in answers.values() if a is not None]
    agree = sum(a == item.answer for a in votes)
    share = agree / len(votes) if votes else 1.0
    evidence: dict[str, Any] = {"answers": answers, "key": item.answer, "answered": len(votes)}
    if probes:
        pooled = mean_distribution([p["p"] for p in probes.values()])
        evidence.update(probs=probes, pooled=[round(p, 5) for p in pooled], entropy=round(entropy(pooled), 4))
    if failures:
        evidence["failures"] = failures
    return Diagnostic(item_id=item.id, check="panel", flag=bool(votes) and share < 0.5, score=share,
                      evidence=evidence)


@dataclass
class PanelAnswers:
    """An item's panel as it is gathered: each member's answer, probe evidence and failure. Read from the
    store (`stored_panel`) and extended with the members `answer_panel` asks, or new (a measured edit's
    panel on a candidate), so both store the same evidence the same way."""

    answers: dict[str, int | None] = field(default_factory=dict)
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, answer: MemberAnswer) -> None:
        """Record member `name`'s answer: its choice, its probe's evidence and why it failed, if it did."""
        self.answers[name] = answer.choice
        if answer.probe is not None:
            self.probes[name] = answer.probe.as_evidence()
        if answer.failure is not None:
            self.failures[name] = answer.failure_evidence()

    def diagnostic(self, item: QAItem) -> Diagnostic:
        """The panel Diagnostic of these answers (`panel_diagnostic`)."""
        return panel_diagnostic(item, self.answers, self.probes, self.failures)


def stored_panel(ctx: AgentContext, item: QAItem) -> PanelAnswers:
    """The answers, probe evidence and failures already stored for `item` (copies, empty when none)."""
    stored = ctx.store.diagnostic(item.id, "panel")
    if stored is None:
        return PanelAnswers()
    return PanelAnswers(dict(stored.evidence.get("answers", {})), dict(stored.evidence.get("probs", {})),
                       dict(stored.evidence.get("failures", {})))


def unanswered(members: list[str], answers: dict[str, int | None]) -> list[str]:
    """The members still to ask: the one rule `answer_panel` and the batch path (`--batch`) share."""
    return [m for m in members if m not in answers]


def panel_batch_requests(ctx: AgentContext, items: list[QAItem], members: list[str], node: str = "profile",
                         ) -> dict[str, list[BatchRequest]]:
    """Every panel call `answer_panel` is about to make for `items`, per member: each order's probe (or the
    letter call) of each member that has not answered the item yet. The batch runner skips those the
    response cache already holds. A `cloze:` member is asked live: a Batch API has no grammar parameter."""
    out: dict[str, list[BatchRequest]] = {}
    for item in items:
        for name in unanswered(members, stored_panel(ctx, item).answers):
            if name.startswith(CLOZE_PREFIX):
                continue
            if answers_with_probabilities(ctx, name):
                out.setdefault(name, []).extend(BatchRequest.probe(messages, tag)
                                                for _, messages, tag in probe_requests(ctx, name, item, node))
            else:
                out.setdefault(name, []).append(BatchRequest(*letter_request(ctx, name, item, node)))
    return out


def answer_panel(ctx: AgentContext, item: QAItem, members: list[str]) -> Diagnostic | None:
    """Ask the members that have not answered this item yet (`ask_member`); None when there is nothing new
    to ask. A member that gave no answer is stored as None, with why and what it cost under "failures"."""
    panel = stored_panel(ctx, item)
    missing = unanswered(members, panel.answers)
    if not missing:
        return None
    for name in missing:  # BudgetExhausted propagates: what was answered before it is not stored
        panel.add(name, ask_member(ctx, name, item))
    return panel.diagnostic(item)
