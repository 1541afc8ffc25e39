"""Retrieval validation: retrieve top-k Wikipedia passages for the question and its key, and ask the judge
whether they support the key, contradict it, or do not settle it.

"Insufficient" is common for a small passage corpus, so it is not a failure: the independent answer check
(`validation.answer.answer_check`) decides instead, and the verdict records both. The retriever (FAISS over
the built-in corpus, `options.rag_corpus` (a path or `wikipedia:NAME`), or `hooks.retriever`: a `Corpus`
or a ready `Retriever`) is built or
loaded once per process. Passage ids, titles and scores are kept as evidence.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.retrieval import get_retriever
from refinelab.agents.validation.answer import answer_check
from refinelab.errors import DataError, LLMCallFailed
from refinelab.schema import LETTERS, QAItem
from refinelab.state import SETTLED_CONFIDENCE, EditTask, Verdict
from refinelab.tools.corpus import Passage
from refinelab.tools.embeddings import EmbeddingsUnavailable
from refinelab.tools.ledger import CallTag
from refinelab.tools.retrieval import format_passages

PASSAGE_CHARS = 600  # per passage shown to the judge; keeps 4 passages + a long stem within a 4k context
QUERY_WORDS = 120  # of the stem; MiniLM reads ~256 word pieces, so the key must not be cut off
RAG_MAX_TOKENS = 300
#: What makes retrieval unavailable rather than broken: the embedding extra is missing
#: (EmbeddingsUnavailable), a corpus or index file cannot be read (OSError), a user corpus is malformed
#: (DataError), faiss refuses an index (RuntimeError). Anything else (a TypeError or KeyError in our own
#: retrieval code) is a bug and propagates: passed off as "unavailable" it would become a verdict by the
#: answer check alone, and the rag method would never be exercised.
RETRIEVAL_UNAVAILABLE = (EmbeddingsUnavailable, OSError, DataError, RuntimeError)
#: The RAG check's outcomes (`state.Outcome`): the passages pick the key, another option or none; the judge's
#: reading was unusable; retrieval could not run. All but the first two leave the answer check to decide.
RagOutcome = Literal["supported", "contradicted", "insufficient", "unusable", "unavailable"]


class RagJudgement(BaseModel):
    """The judge's blind reading of the passages (it is not told the key): reasoning first (it helps small
    models), the passages it used, and the option they support or "none"."""

    reasoning: str = Field(max_length=400)
    passage_ids: list[str] = Field(max_length=5)
    supported_option: Literal["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "none"]

    def verdict_for(self, key: str) -> RagOutcome:
        """supported (the passages pick the key), contradicted (another option), insufficient (none)."""
        if self.supported_option == "none":
            return "insufficient"
        return "supported" if self.supported_option == key else "contradicted"


def query_for(item: QAItem) -> str:
    """Question (its last QUERY_WORDS words: the ask is at the end of long stems) plus the key text."""
    words = item.question.split()
    return " ".join(words[-QUERY_WORDS:]) + " " + item.answer_text


def retrieve(ctx: AgentContext, item: QAItem, k: int) -> list[Passage]:
    """Top-k passages for question+key and for the question alone, merged by best score; a `tool` run."""
    queries = [query_for(item), " ".join(item.question.split()[-QUERY_WORDS:])]
    with ctx.tracer.span("wikipedia_search", "tool", {"queries": queries, "k": k, "item_id": item.id}) as run:
        best: dict[str, Passage] = {}
        for hits in get_retriever(ctx, item).search_many(queries, k=k):
            for p in hits:
                if p.id not in best or (p.score or 0) > (best[p.id].score or 0):
                    best[p.id] = p
        passages = sorted(best.values(), key=lambda p: -(p.score or 0.0))[:k]
        run.outputs = {"passages": [_summary(p) for p in passages]}
    return passages


def _summary(p: Passage) -> dict[str, Any]:
    return {"id": p.id, "title": p.title, "score": round(float(p.score or 0.0), 4), "source": p.source}


# ---------------------------------------------------------------------------------------- the check


def _fallback(ctx: AgentContext, task: EditTask, item: QAItem, evidence: dict[str, Any], outcome: RagOutcome,
              why: str, tokens: int) -> Verdict:
    """Passages did not settle it: the independent answer check decides; both are kept as evidence."""
    evidence["rag_verdict"] = outcome  # the record's name for the outcome, as runs have always written it
    verdict = answer_check(ctx, task, item)
    return Verdict(verdict.passed, f"{why}; answer check: {verdict.reason}", "rag", evidence, tokens + verdict.tokens,
                   outcome=outcome, fallback=verdict)


def rag_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """RAG verdict: supported → pass, contradicted → fail with the passages' reading, insufficient (or no
    relevant passage, or no usable judgement, or no retriever) → the answer check decides."""
    k, min_score = ctx.options.rag_k, ctx.options.rag_min_score
    evidence: dict[str, Any] = {"key": item.answer_letter}
    try:
        passages = retrieve(ctx, item, k)
    except RETRIEVAL_UNAVAILABLE as exc:
        evidence["error"] = f"{type(exc).__name__}: {exc}"
        return _fallback(ctx, task, item, evidence, "unavailable", f"retrieval unavailable ({evidence['error']})", 0)
    evidence["passages"] = [_summary(p) for p in passages]
    evidence["passage_ids"] = [p.id for p in passages]
    if not passages or max(p.score or 0.0 for p in passages) < min_score:
        return _fallback(ctx, task, item, evidence, "insufficient", "no relevant passage retrieved", 0)
    messages = ctx.pack(item).messages("validate_rag", item=item,
                                       passages=format_passages(passages, max_chars=PASSAGE_CHARS))
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    try:
        result = ctx.client("validator").structured(messages, RagJudgement, tag, max_tokens=RAG_MAX_TOKENS)
    except LLMCallFailed as exc:
        evidence["raw"] = exc.raw_outputs[-1:] if exc.raw_outputs else []
        return _fallback(ctx, task, item, evidence, "unusable", f"the judge gave no usable verdict ({exc})", 0)
    judged: RagJudgement = result.parsed
    retrieved = {p.id for p in passages}
    cited = [pid.strip("[] ") for pid in judged.passage_ids if pid.strip("[] ") in retrieved]
    verdict = judged.verdict_for(item.answer_letter)
    if verdict == "contradicted" and LETTERS.index(judged.supported_option) >= len(item.choices):
        verdict = "insufficient"  # a letter past the options is no reading of the passages
    evidence.update(rag_verdict=verdict, reasoning=judged.reasoning, cited_ids=cited,
                    supported_option=judged.supported_option)
    ids = ", ".join(cited or [p.id for p in passages[:2]])
    if verdict == "supported":
        return Verdict(True, f"retrieved passages support the key {item.answer_letter} ({ids})", "rag",
                       evidence, result.tokens, outcome=verdict, confidence=SETTLED_CONFIDENCE)
    if verdict == "contradicted":
        other = judged.supported_option
        instead = ""
        if other != "none" and LETTERS.index(other) < len(item.choices) and other != item.answer_letter:
            instead = f"; they support {other} ({item.choices[LETTERS.index(other)]!r})"
        reason = (f"retrieved passages contradict the key {item.answer_letter} ({item.answer_text!r}){instead}: "
                  f"{judged.reasoning} [passages {ids}]")
        return Verdict(False, reason, "rag", evidence, result.tokens, outcome=verdict, confidence=SETTLED_CONFIDENCE)
    return _fallback(ctx, task, item, evidence, verdict, "retrieved passages do not settle the key", result.tokens)
