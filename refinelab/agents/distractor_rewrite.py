"""Rewrite distractors: choose the set of wrong options from the writer's candidates and the original's.

The choice is measured twice. Before it, the judge's probabilities on the candidates
(agents/candidate_probe.py) rate how plausible each is and drop those it prefers to the key; after it, the
chosen set is asked of the judge as it will be asked (`choose_distractors`), and a set that leaves a
second right answer or fewer working distractors than the original is refused and the next-best tried.
The refiner (agents/refiner.py) hands the writer's candidates here and gets an item, or the reason none
stood, which is the writer's feedback on its retry.
"""

from __future__ import annotations

from refinelab.agents.candidate_probe import CandidateProbe, probe_assembled
from refinelab.agents.candidates import distractor_texts
from refinelab.agents.context import AgentContext
from refinelab.metrics.distractors import (
    DistractorConfig,
    distractor_diversity,
    functional_share,
    panel_pick_rates,
    select_distractors,
)
from refinelab.model_outputs import DistractorsOut
from refinelab.schema import Provenance, QAItem, normalise_text
from refinelab.state import EditTask

NONFUNCTIONAL_RATE = DistractorConfig().nonfunctional_rate


def pick_rates(ctx: AgentContext, item: QAItem) -> list[float] | None:
    """The panel's pick rate per option of `item` from its stored panel diagnostic (option probabilities
    where measured, else answer shares: `panel_pick_rates`); None without either."""
    panel = ctx.store.diagnostic(item.id, "panel")
    measured = panel_pick_rates(panel.evidence, len(item.choices)) if panel is not None else None
    return measured.rates if measured is not None else None


def weak_distractors(item: QAItem, rates: list[float] | None) -> list[str]:
    """Distractors the panel never (or almost never) picks at pick `rates` (`pick_rates`); all of them when
    nothing was measured."""
    others = [i for i in range(len(item.choices)) if i != item.answer]
    if rates is None:
        return [item.choices[i] for i in others]
    return [item.choices[i] for i in others if rates[i] < NONFUNCTIONAL_RATE]


class NoImprovement(ValueError):
    """A candidate that could be built but cannot pass its measurement: said before any validation."""


def no_new_candidate(count: int, reasons: list[str]) -> str:
    """The refusal, and the writer's feedback on its retry, when none of its `count` candidates survives
    (`reasons`: why each was dropped, "" for one the selection passed over). Said as it is: the demo's
    first econometrics-1 rewrite wrote nine rewordings of the key, all dropped as paraphrases, and was
    refused as "the edit changed nothing", which told the retry nothing it could act on."""
    paraphrases = sum(r.startswith("paraphrases the key") for r in reasons)
    if paraphrases > count // 2:
        return (f"{paraphrases} of the {count} new wrong options reword the correct answer (a second right "
                "answer, not a distractor); write options that state different, wrong ideas, not variations "
                "of the correct answer")
    kinds = sorted({r.split(" (")[0] for r in reasons if r})
    return (f"none of the {count} new wrong options could be used ({'; '.join(kinds) or 'none adds diversity'}); "
            "write different wrong options")


def distractors_to_item(ctx: AgentContext, out: DistractorsOut, task: EditTask, base: QAItem,
                        probe: CandidateProbe, refuse: dict[str, str], rates: list[float] | None) -> QAItem:
    """The item with its distractor slots refilled: the stem and the key (text and position) are the
    original's by construction. The pool is the writer's new candidates and the original distractors;
    `select_distractors` drops paraphrases of the key and chooses, among the sets holding at least one new
    candidate, the most diverse and plausible one. A set less diverse than the original's fails here
    (`NoImprovement`): the validator's measurement would refuse it after paying for an answer check.

    With a measured `probe` (agents/candidate_probe.py) the judge's probabilities are the new candidates'
    plausibility, and one it clearly prefers to the key is dropped; the originals are rated by the panel's
    pick rates, on the same scale. `refuse` (text -> reason) are candidates already refused on other
    evidence (the judge preferring one to the key on an assembled set, `choose_distractors`). `rates` are
    the original's pick rates (`pick_rates`), read once by the caller for every set it tries."""
    slots = [i for i in range(len(base.choices)) if i != base.answer]
    originals = [base.choices[i] for i in slots]
    weak = set(weak_distractors(base, rates))
    uniform = probe.even_share()
    refused: dict[str, str] = {}
    new: list[str] = []
    for text in (str(d).strip() for d in out.distractors):
        if text in refuse:
            refused[text] = refuse[text]
        elif (p := probe.preferred_to_key(text)) is not None:
            refused[text] = f"the judge prefers it to the key ({p:.2f} vs {probe.p_key:.2f})"
        else:
            new.append(text)
    pool = new + [o for o in originals if o not in weak] + [o for o in originals if o in weak]
    plausibility: list[float | None] | None = None
    if not probe.not_measured:
        plausibility = []
        for text in pool:
            if (p := probe.measured(text)) is not None:  # half an even share counts fully
                plausibility.append(min(1.0, p / (0.5 * uniform)))
            elif rates is not None and text in originals:
                plausibility.append(min(1.0, rates[base.choices.index(text)] / NONFUNCTIONAL_RATE))
            else:
                plausibility.append(None)
    before = distractor_diversity(base.choices, base.answer, ctx.embedder())
    choice = select_distractors(base.answer_text, pool, len(slots), ctx.embedder(), exclude=[base.question],
                                known_wrong=originals, plausibility=plausibility, include_one_of=new,
                                above_diversity=before)
    dropped = {**refused, **{pool[i]: why for i, why in choice.dropped.items()}}
    if len(choice.chosen) < len(slots):
        reasons = sorted(set(dropped.values()))
        raise ValueError(f"only {len(choice.chosen)} usable distractors for {len(slots)} slots "
                         f"(dropped: {'; '.join(reasons) or 'none'}); write more, different wrong options")
    if out.distractors and not any(index < len(new) for index in choice.chosen):
        raise NoImprovement(no_new_candidate(len(out.distractors), [dropped.get(str(d).strip(), "")
                                                                     for d in out.distractors]))
    choices = list(base.choices)
    for slot, index in zip(slots, choice.chosen, strict=True):
        choices[slot] = pool[index]
    if {normalise_text(c) for c in choices} != {normalise_text(c) for c in base.choices} \
            and before is not None and choice.diversity is not None and choice.diversity < before:
        raise NoImprovement(f"distractor diversity would not rise ({before:.3f} -> at best {choice.diversity:.3f} "
                            "with these candidates); write wrong options that differ more from each other and "
                            "from the current ones")
    return QAItem(
        id=base.id, question=base.question, choices=choices, answer=base.answer, subject=base.subject,
        domain=base.domain, skill=base.skill, difficulty=base.difficulty,
        metadata={**base.metadata, "distractor_choice": {
            "candidates": len(out.distractors), "kept_original": sum(pool[i] in base.choices for i in choice.chosen),
            "diversity_before": before, "diversity_chosen": choice.diversity,
            "dropped": dropped, "probe": probe.as_evidence()}},
        provenance=Provenance(source=base.provenance.source, created_by=task.operation, parent_id=base.id,
                              run_id=None),
    )


class NoSetStands(NoImprovement):
    """Every distractor set tried was refused on the judge's measurement of the assembled item (a new option
    preferred to the key, or fewer working distractors than the original); carries the probes' tokens,
    which the attempt still spent."""

    def __init__(self, message: str, tokens: int) -> None:
        super().__init__(message)
        self.tokens = tokens


MAX_RESELECTIONS = 2  # new distractor sets chosen after the judge refused one on the assembled item


def choose_distractors(ctx: AgentContext, out: DistractorsOut, task: EditTask, base: QAItem,
                       probe: CandidateProbe) -> tuple[QAItem, int]:
    """The rewrite's distractor set, measured as it will be asked, and the tokens that measurement cost.

    The set `distractors_to_item` chooses is asked of the judge in the panel's orders (`probe_assembled`)
    and the next-best set chosen, at most `MAX_RESELECTIONS` times, when
    - a new distractor is preferred to the key there: the validator's solver is not asked to pass a set
      the judge already reads as having a second right answer;
    - the set has fewer working distractors (judge's probability >= `NONFUNCTIONAL_RATE`) than the
      original had on the panel's stored probabilities (`fewer_working`): a rewrite that leaves students
      fewer tempting wrong options has not improved the item, however far apart its options are.
    When every set tried is refused the attempt fails with the last reason, and the writer's retry is
    told it. Without stored pick rates (nothing measured the original) only the first rule applies.

    A set that stands but has a new distractor no one picks on the assembled item (an idle one, under
    `NONFUNCTIONAL_RATE`) is kept aside and the next set is tried without it, while reselections are
    left: the rewrite was bought to give students wrong options worth picking. The set with the most
    working distractors among those that stood is chosen (the later one on a tie). In the cold distractor
    evals the only rewritten items with idle distractors were of this kind (marketing items whose key the
    judge picks at 0.9 and more), and taking the first set that stood left "functional distractors" flat
    in one of two runs."""
    refused: dict[str, str] = {}
    tokens = 0
    last_reason = ""  # why the last set tried was refused, for the failure below
    stood: tuple[QAItem, float] | None = None  # the best set that stood so far, and its working share
    rates = pick_rates(ctx, base)  # the original's, the same for every set tried
    working_before = functional_share(rates, base.answer, NONFUNCTIONAL_RATE) if rates is not None else None
    for _ in range(MAX_RESELECTIONS + 1):
        try:
            item = distractors_to_item(ctx, out, task, base, probe, refused, rates)
        except ValueError:
            if not refused:
                raise
            break  # no other set without the refused ones: the last refusal is the attempt's reason
        if refused and distractor_texts(item) == distractor_texts(base):
            break  # only the original distractors are left: no rewrite without the refused ones
        assembled = probe_assembled(ctx, task, base, item)
        tokens += assembled.tokens
        item.metadata["distractor_choice"]["assembled_probe"] = assembled.as_evidence()
        if assembled.preferred is not None:
            text = item.choices[assembled.preferred]
            lead = f"{assembled.probs[assembled.preferred]:.2f} vs the key's {assembled.probs[item.answer]:.2f}"
            refused[text] = f"on the assembled item the judge prefers it to the key ({lead})"
            last_reason = (f"the judge prefers a new wrong option to the key ({text!r}: {lead}); write wrong "
                           "options that are clearly wrong, not partly true statements or synonyms of the correct "
                           "answer")
            continue
        weaker = fewer_working(base, item, assembled.probs, working_before)
        if weaker is not None:
            index, why = weaker
            refused[item.choices[index]] = why
            last_reason = (f"the set has fewer working distractors than the original ({why}); write wrong options "
                           "a student who half-knows the topic would pick")
            continue
        working = functional_share(assembled.probs, item.answer, NONFUNCTIONAL_RATE) or 0.0
        if stood is None or working >= stood[1]:
            stood = (item, working)
        idle = idle_new_distractor(base, item, assembled.probs)
        if idle is None:
            return stood[0], tokens
        refused[item.choices[idle]] = (f"on the assembled item no one picks it (p {assembled.probs[idle]:.3f}); the "
                                       "set stood, and the next one is tried without it")
    if stood is not None:
        return stood[0], tokens
    raise NoSetStands(f"no distractor set stood on the assembled item ({MAX_RESELECTIONS + 1} at most tried): "
                      f"{last_reason}", tokens)


def idle_new_distractor(base: QAItem, item: QAItem, probs: list[float]) -> int | None:
    """The least picked new distractor of `item` that the judge picks under `NONFUNCTIONAL_RATE` on the
    assembled item (`probs`), or None when every new one works."""
    if len(probs) != len(item.choices):
        return None
    known = {normalise_text(c) for c in base.choices}
    idle = [i for i in range(len(item.choices)) if i != item.answer and normalise_text(item.choices[i]) not in known
            and probs[i] < NONFUNCTIONAL_RATE]
    return min(idle, key=lambda i: probs[i]) if idle else None


def fewer_working(base: QAItem, item: QAItem, probs: list[float],
                  working_before: float | None) -> tuple[int, str] | None:
    """When `item`'s share of working distractors (`functional_share` of the assembled probe's `probs`) is
    below `working_before`, the original's on the panel's stored pick rates: the new distractor to refuse,
    and why. That is the least picked new one under `NONFUNCTIONAL_RATE` (it does no work); when every new
    one works, the new one the judge picks most, which drew the original distractors it kept below the rate.
    None when the set has as many working distractors (or nothing was measured)."""
    if working_before is None or len(probs) != len(item.choices):
        return None
    working_after = functional_share(probs, item.answer, NONFUNCTIONAL_RATE)
    if working_after is None or working_after >= working_before:
        return None
    known = {normalise_text(c) for c in base.choices}
    new = [i for i in range(len(item.choices)) if i != item.answer and normalise_text(item.choices[i]) not in known]
    if not new:
        return None
    index = idle_new_distractor(base, item, probs)
    if index is not None:
        return index, (f"on the assembled item no one picks it (p {probs[index]:.3f}) and the set has fewer "
                       "working distractors than the original")
    index = max(new, key=lambda i: probs[i])
    drawn = [item.choices[i] for i in range(len(item.choices))
             if i != item.answer and i not in new and probs[i] < NONFUNCTIONAL_RATE]
    return index, (f"on the assembled item it draws the picks (p {probs[index]:.3f}) from original distractors "
                   f"now under {NONFUNCTIONAL_RATE:.2f} ({', '.join(map(repr, drawn))}), so the set has fewer "
                   "working distractors than the original")

