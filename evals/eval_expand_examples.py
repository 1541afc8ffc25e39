"""How should the expand writer be asked: which examples, and in which answer format? Measured per draft.

The batch expand prompt (`refine_expand_batch`) shows two items of the template's subject as "examples of
the style (do not copy them)", and asks for each draft's options, a rationale and "the 0-based index" of
the correct option. Two things went wrong in runs: in every `make demo` the 1.5B writer returned some examples nearly
verbatim (refused for free as too close to an existing item, but the writer's tokens are spent), and on the
50k JSD runs the validator's solver most often refused a draft by picking the option just before its key,
as a writer counting options from 1 would have keyed it. This eval asks the shipped prompt, one batch of
`--drafts` drafts per subject, in variants `EXAMPLES/FORMAT`:

- EXAMPLES `examples`: as shipped, two items with their options and answer letter; `none`: no examples;
  `avoid`: the two items' stems only, listed as questions the set already has, to write about other facts;
  `skilled`: two items shown the same way, chosen for the skill the batch is written for (labelled that
  skill by the exemplar labeller: the subject's own first, then its domain's, then any subject's, from the
  JSD eval's skewed mix and the subjects' pools), the subject's items filling in when too few are;
  `stems`: as `skilled`, and the skill's first three taxonomy example stems listed as what questions of the
  skill read like (a run refuses a stem within cosine 0.9 of one as a copy; so does this eval).
- `/nohints` after the format: the skill's writing instruction from the taxonomy (`skills.yaml` `writing`,
  shown beside its description as the prompt's `skill_writing`) left out.
- FORMAT `reasonfirst`: as shipped (`choices`, a one-sentence rationale naming the correct option, then its
  0-based `answer_index`: a grammar-constrained writer writes the fields in schema order, so the reason
  comes before the index); `index`: as shipped before 6 Dec, the index first and the rationale after it;
  `letter`: `choices` and the letter of the correct option; `text`: the correct answer's text and the
  wrong options apart, the key then placed at a position drawn from the draft's hash (no index to get
  wrong). The last three ask for the rationale after the answer, as the shipped prompt did then.

Each draft is read as a run reads it: built into an item (distinct options, key in range), the structural
checks, the new-item soundness check and the run's near-duplicate index over the subject's items (the pool a
run would hold) and over the batch's earlier drafts. A usable draft is then asked of the panel's two-order
letter probe (the measurement that refuses a new item whose key another option leads), and its rationale is
read for the one option it names, and labelled as an exemplar-labelled run labels a new item (the
regex signals, else the skill whose taxonomy examples are nearest in MiniLM space; no model call): a draft
"lands" when that is the skill it was written for. Reported per variant: usable drafts, copies, other refusals, how often the
probe's favourite is the key, how often the rationale names another option than the key, tokens per usable
draft. Direct calls to the embedded server at the writer's temperature; no run store, no budget.

  .venv/bin/python evals/eval_expand_examples.py --variants examples/reasonfirst,none/reasonfirst \\
      --tag expand_examples
  .venv/bin/python evals/eval_expand_examples.py --variants examples/index,examples/reasonfirst --probe \\
      --answer-check --tag expand_reasonfirst_check
  .venv/bin/python evals/eval_expand_examples.py --variants examples/reasonfirst,skilled/reasonfirst \\
      --tag expand_skilled
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import time
from collections import Counter
from typing import Any, Literal

import numpy as np
from common import HEAVY, HEAVY_SHARE, by_subject, log, mmlu, skewed_mix, table, write_results
from eval_probe_format import embedded_prober, two_order_probe
from pydantic import BaseModel, Field, create_model

from refinelab.agents.dedup import DuplicateIndex
from refinelab.agents.expand_batches import BATCH_PROMPT
from refinelab.agents.labels import COMPUTE_SKILL, nearest_skill
from refinelab.agents.style_examples import skill_examples
from refinelab.agents.validation.measured import NEW_KEY_LEAD, contradicted_key
from refinelab.agents.validation.structural import (
    EXAMPLE_COPY_COSINE,
    closest_example,
    lacks_its_passage,
    structural_flaws,
)
from refinelab.config import ROLE_DEFAULTS, ModelSpec
from refinelab.domains import SkillTaxonomy, SubjectDomains, load_skills, load_subject_domains
from refinelab.errors import validation_problems
from refinelab.metrics.item_signals import regex_route, route_signals
from refinelab.model_outputs import AnswerOut, ItemDraft
from refinelab.prompts.loader import Pack
from refinelab.schema import LETTERS, Diagnostic, QAItem, normalise_text, strip_option_labels
from refinelab.tools.embeddings import get_embedder, normalize
from refinelab.tools.llm import schema_for

SUBJECTS = ("astronomy,virology,college_chemistry,high_school_world_history,econometrics,philosophy,marketing,"
            "high_school_biology,sociology,college_physics,us_foreign_policy,nutrition")
SKILLS = ("reasoning", "comprehension", "application", "recall")  # dealt round the subjects
EXAMPLES_BLOCK = "{% if examples %}Examples of the style (do not copy them):"
AVOID_BLOCK = ("{% if examples %}The set already has these questions; write about other facts and do not reuse "
               "their wording:\n  {% for ex in examples %}- {{ ex.question }}\n  {% endfor %}{% endif %}"
               "{% if false %}")
ANSWER_LINE = ("{{ n_choices }} options, then a one-sentence rationale that names the correct option, then the "
               "0-based index of that option.")  # as shipped
ANSWER_WORDING = {"reasonfirst": ANSWER_LINE,
                  "index": "{{ n_choices }} options, the 0-based index of the correct option, and a one-sentence "
                           "rationale.",
                  "letter": "{{ n_choices }} options, the letter of the correct option (A for the first option), "
                            "and a one-sentence rationale.",
                  "text": "the text of the correct answer, {{ n_choices - 1 }} wrong options, and a one-sentence "
                          "rationale."}

JSD_MIX = dict(n=100, heavy=HEAVY, heavy_share=HEAVY_SHARE, seed=0)  # eval_jsd_curve's full-size mix
EXAMPLE_MODES = ("examples", "none", "avoid", "skilled", "stems")
STEMS_SHOWN = 3  # `stems`: the skill's first taxonomy example stems listed
STEMS_BLOCK = ("{% if skill_stems %}Questions that test {{ skill }} read like these, from other subjects (do not "
               "copy them; write about the subject above):\n  {% for q in skill_stems %}- {{ q }}\n  {% endfor %}"
               "{% endif %}" + EXAMPLES_BLOCK)


class ExemplarLabeller:
    """A new item's skill as an exemplar-labelled run reads it (agents/labels.py, `skill_method="exemplars"`):
    `calculation` when the regex signals call it computable, else the skill whose taxonomy examples are
    nearest to the stem; no model call."""

    def __init__(self, skills: SkillTaxonomy) -> None:
        self.embedder = get_embedder()
        self.vectors = {name: normalize(self.embedder.embed(list(skills.examples[name])))
                        for name in skills.names if skills.examples.get(name)}
        self.computes = COMPUTE_SKILL in skills.names

    def copies_example(self, item: QAItem) -> bool:
        """The run's guard (`structural.unsound_new_item`): a stem this close to a taxonomy example is a copy."""
        stem: np.ndarray = normalize(self.embedder.embed([item.question]))[0]
        return closest_example(self.vectors, stem) >= EXAMPLE_COPY_COSINE

    def __call__(self, item: QAItem) -> str:
        if self.computes and regex_route(route_signals(item)) == "pot":
            return COMPUTE_SKILL
        stem: np.ndarray = normalize(self.embedder.embed([item.question]))[0]
        return nearest_skill(self.vectors, stem)[0]


def labelled_store(subjects: list[str], groups: dict[str, list[QAItem]], pool_size: int,
                   domains: SubjectDomains, label: ExemplarLabeller) -> list[QAItem]:
    """What a JSD run's store holds, labelled as its profile labels by exemplars: the eval's skewed MMLU
    mix (`JSD_MIX`, as eval_jsd_curve builds it), with each subject's pool, domain from the subject map."""
    items = list(skewed_mix(**JSD_MIX))  # type: ignore[arg-type]
    seen = {i.id for i in items}
    items += [i for s in subjects for i in groups[s][:pool_size] if i.id not in seen]
    return [i.model_copy(update={"domain": domains.domain_for(i.subject) or "other", "skill": label(i)}) for i in items]


VERDICTS = ("check passes, panel passes", "check refuses, panel passes", "check passes, panel refuses",
            "check refuses, panel refuses")


class LetterDraft(BaseModel):
    question: str = Field(min_length=5, max_length=800)
    choices: list[str] = Field(min_length=2, max_length=10)
    answer: Literal["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]
    rationale: str = Field(max_length=300)


class TextDraft(BaseModel):
    question: str = Field(min_length=5, max_length=800)
    correct_answer: str = Field(min_length=1, max_length=300)
    wrong_answers: list[str] = Field(min_length=3, max_length=3)
    rationale: str = Field(max_length=300)


class IndexFirstDraft(BaseModel):
    """The draft as shipped before the rationale was asked first: the key's index, then the reason."""

    question: str = Field(min_length=5, max_length=800)
    choices: list[str] = Field(min_length=2, max_length=10)
    answer_index: int = Field(ge=0, le=9)
    rationale: str = Field(max_length=300)


DRAFT_SCHEMAS: dict[str, type[BaseModel]] = {"reasonfirst": ItemDraft, "index": IndexFirstDraft,
                                             "letter": LetterDraft, "text": TextDraft}


def variant_pack(pack: Pack, examples: str, answer: str) -> Pack:
    """The shipped pack, its batch prompt's example block and answer wording changed for the variant."""
    user = pack.prompts[BATCH_PROMPT]["user"]
    if EXAMPLES_BLOCK not in user or ANSWER_LINE not in user:
        raise SystemExit(f"{BATCH_PROMPT}: its wording changed; update this eval's replacements")
    if examples == "avoid":
        user = user.replace(EXAMPLES_BLOCK, AVOID_BLOCK, 1)
    if examples == "stems":
        user = user.replace(EXAMPLES_BLOCK, STEMS_BLOCK, 1)
    user = user.replace(ANSWER_LINE, ANSWER_WORDING[answer])
    prompts = {**pack.prompts, BATCH_PROMPT: {**pack.prompts[BATCH_PROMPT], "user": user}}
    return dataclasses.replace(pack, prompts=prompts)


def parse_variant(variant: str) -> tuple[str, str, str]:
    """EXAMPLES/FORMAT[/nohints] → (examples mode, answer format, "" or "nohints")."""
    examples_mode, _, rest = variant.partition("/")
    answer, _, hints = rest.partition("/")
    return examples_mode, answer, hints


def as_choices(raw: dict[str, Any], answer: str, seed: str) -> tuple[list[str], int]:
    """(options, key index) of a draft in format `answer`; raises KeyError/TypeError/ValueError."""
    if answer == "text":
        wrong = [str(w) for w in raw["wrong_answers"]]
        position = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % (len(wrong) + 1)
        return wrong[:position] + [str(raw["correct_answer"])] + wrong[position:], position
    choices = [str(c) for c in raw["choices"]]
    return choices, (LETTERS.index(raw["answer"]) if answer == "letter" else int(raw["answer_index"]))


def problem_kind(exc: ValueError) -> str:
    """An item's first validation problem without its field and quoted values, numbers as N: a category."""
    problem = validation_problems(exc).split("; ")[0]
    field, sep, message = problem.partition(": ")
    return re.sub(r"\d+", "N", (message if sep and " " not in field else problem).split(": ")[0])


def read_draft(raw: dict[str, Any], answer: str, subject: str, n: int, index: DuplicateIndex,
               earlier: DuplicateIndex) -> tuple[str, QAItem | None]:
    """How a run reads one draft: ("usable", the item), or the first reason it is refused."""
    try:
        choices, key = as_choices(raw, answer, f"{subject}#{n}#{raw.get('question')}")
        item = QAItem(id=f"draft-{n}", question=str(raw["question"]).strip(), choices=strip_option_labels(choices),
                      answer=key, subject=subject, metadata={"rationale": str(raw.get("rationale", ""))})
    except (KeyError, TypeError):
        return "invalid: not an item", None
    except ValueError as exc:  # the item's own validation: repeated options, key out of range
        return f"invalid: {problem_kind(exc)}", None
    if flaws := sorted(structural_flaws(item)):
        return f"structural: {flaws[0]}", None
    if lacks_its_passage(item.question):
        return "structural: refers to a passage it lacks", None
    if index.nearest(item) is not None:
        return "copy of an existing item", None
    if earlier.nearest(item) is not None:
        return "repeats an earlier draft of the batch", None
    earlier.add([item])
    return "usable", item


def answer_check(client: Any, pack: Pack, item: QAItem) -> tuple[bool, int]:
    """(the validator's answer check passes, tokens): the shipped `answer_item` prompt, a short reason then
    a letter, at the validator role's defaults; it passes when the letter is the key's, as in a run."""
    spec = ModelSpec()
    reply = client.chat.completions.create(
        model="embedded", messages=pack.messages("answer_item", item=item), temperature=spec.temperature,
        max_tokens=spec.max_tokens, response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": schema_for(AnswerOut), "strict": True}})
    usage = reply.usage
    tokens = (usage.prompt_tokens + usage.completion_tokens) if usage else 0
    try:
        picked = AnswerOut.model_validate_json(reply.choices[0].message.content or "").answer
    except ValueError:
        return False, tokens
    return picked == item.answer_letter, tokens


def rationale_names(item: QAItem) -> str:
    """"key" when the draft's rationale names the key's text and no other option's, "other" when it names
    exactly one other option, "" otherwise (none, or several)."""
    rationale = normalise_text(str(item.metadata.get("rationale", "")))
    named = [i for i, choice in enumerate(item.choices) if normalise_text(choice) and normalise_text(choice) in rationale]
    if len(named) != 1:
        return ""
    return "key" if named[0] == item.answer else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", default=SUBJECTS, help="comma-separated MMLU subjects")
    parser.add_argument("--pool", type=int, default=6, help="items per subject a run would hold (the dedup pool)")
    parser.add_argument("--drafts", type=int, default=4, help="drafts per batch call")
    parser.add_argument("--variants", default="examples/reasonfirst,none/reasonfirst,avoid/reasonfirst",
                        help="comma-separated EXAMPLES/FORMAT[/nohints]: examples|none|avoid|skilled|stems / "
                        "reasonfirst|index|letter|text; /nohints: without the taxonomy's writing instruction for "
                        "the skill (skills.yaml `writing`)")
    parser.add_argument("--probe", action="store_true", help="ask each usable draft of the panel's two-order probe")
    parser.add_argument("--answer-check", action="store_true",
                        help="with --probe: also ask each usable draft of the validator's answer check, and "
                        "cross the two verdicts (does the generated answer refuse drafts the probe passes?)")
    parser.add_argument("--skills", default=",".join(SKILLS), help="skills the batches are written for, dealt "
                        "round the subjects")
    parser.add_argument("--tag", default="expand_examples")
    args = parser.parse_args()
    subjects = [s for s in args.subjects.split(",") if s]
    dealt = [s for s in args.skills.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        examples_mode, answer, hints = parse_variant(variant)
        if examples_mode not in EXAMPLE_MODES or answer not in DRAFT_SCHEMAS or hints not in ("", "nohints"):
            raise SystemExit(f"--variants: {variant!r} is not EXAMPLES/FORMAT")
    groups = by_subject(mmlu())
    domains, skills = load_subject_domains(), load_skills()
    label = ExemplarLabeller(skills)
    store = labelled_store(subjects, groups, args.pool, domains, label)
    client, pack = embedded_prober()
    writer = ROLE_DEFAULTS["writer"]
    started = time.monotonic()
    per: dict[str, dict[str, Any]] = {v: {"outcomes": Counter(), "prompt": 0, "completion": 0, "calls": 0,
                                          "probe_key": 0, "probed": 0, "probe_tokens": 0, "rationale": Counter(),
                                          "verdicts": Counter(), "check_tokens": 0, "landed": 0,
                                          "landed_as": Counter()}
                                      for v in variants}
    rows: list[dict[str, Any]] = []
    for s_index, subject in enumerate(subjects):
        pool = groups[subject][:args.pool]
        template, examples = pool[2], pool[:2]
        skill = dealt[s_index % len(dealt)]
        index = DuplicateIndex()
        index.add(pool)
        for variant in variants:
            examples_mode, answer, hints = parse_variant(variant)
            shown = examples
            if examples_mode in ("skilled", "stems"):
                domain = domains.domain_for(subject) or "other"
                shown = skill_examples(store, subject, domain, skill, template.id)
                index.add([e for e in shown if e not in pool])  # a run's dedup index holds its whole store
            messages = variant_pack(pack, examples_mode, answer).messages(
                BATCH_PROMPT, count=args.drafts, n_choices=len(template.choices), subject=subject,
                domain=domains.domain_for(subject, "other"), skill=skill, skill_description=skills.skills[skill],
                skill_stems=skills.examples.get(skill, [])[:STEMS_SHOWN] if examples_mode == "stems" else [],
                skill_writing="" if hints == "nohints" else skills.writing.get(skill, ""),
                examples=[] if examples_mode == "none" else shown, aims=[], aim_hints={}, bucket="",
                bucket_hint="", feedback="")
            schema = create_model("ItemDrafts", items=(list[DRAFT_SCHEMAS[answer]],  # type: ignore[valid-type]
                                                       Field(min_length=args.drafts, max_length=args.drafts)))
            reply = client.chat.completions.create(
                model="embedded", messages=messages, temperature=writer["temperature"],  # type: ignore[arg-type]
                max_tokens=writer["max_tokens"] * args.drafts,
                response_format={"type": "json_schema", "json_schema": {
                    "name": "answer", "schema": schema_for(schema), "strict": True}})  # type: ignore[arg-type]
            text = reply.choices[0].message.content or ""
            usage = reply.usage
            stats = per[variant]
            stats["calls"] += 1
            stats["prompt"] += usage.prompt_tokens if usage else 0
            stats["completion"] += usage.completion_tokens if usage else 0
            try:
                drafts = json.loads(text)["items"][:args.drafts]
            except (ValueError, KeyError, TypeError):
                drafts = []
            earlier = DuplicateIndex()
            read = [read_draft(d, answer, subject, n, index, earlier) if isinstance(d, dict)
                    else ("invalid: not an item", None) for n, d in enumerate(drafts)]
            read = [("structural: copies a taxonomy example", None) if item is not None and label.copies_example(item)
                    else (outcome, item) for outcome, item in read]
            outcomes = [outcome for outcome, _ in read]
            outcomes += ["no draft (reply unparsable or short)"] * (args.drafts - len(outcomes))
            stats["outcomes"].update(outcomes)
            probed, landed_as = [], []
            for _, item in read:
                if item is None:
                    continue
                landed_as.append(label(item))
                stats["landed"] += landed_as[-1] == skill
                stats["landed_as"][landed_as[-1]] += 1
                stats["rationale"][rationale_names(item) or "neither"] += 1
                if args.probe:
                    probs, tokens = two_order_probe(client, pack, item)
                    stats["probed"] += 1
                    stats["probe_tokens"] += tokens
                    favourite = max(range(len(probs)), key=probs.__getitem__)
                    stats["probe_key"] += favourite == item.answer
                    row = {"key": item.answer, "favourite": favourite, "p_key": round(probs[item.answer], 3)}
                    if args.answer_check:
                        passed, tokens = answer_check(client, pack, item)
                        stats["check_tokens"] += tokens
                        pooled = Diagnostic(item_id=item.id, check="panel", flag=False, score=0.0,
                                            evidence={"pooled": probs})
                        panel_ok = not contradicted_key(pooled, item)  # the run's key check on a new item
                        stats["verdicts"][f"check {'passes' if passed else 'refuses'}, "
                                          f"panel {'passes' if panel_ok else 'refuses'}"] += 1
                        row |= {"check_passes": passed, "panel_passes": panel_ok}
                    probed.append(row)
            rows.append({"subject": subject, "skill": skill, "variant": variant, "outcomes": outcomes,
                         "examples": [e.id for e in shown] if examples_mode != "none" else [],
                         "example_skills": [e.skill for e in shown] if examples_mode in ("skilled", "stems") else [],
                         "landed_as": landed_as,
                         "drafts": drafts, "probed": probed,
                         "prompt_tokens": usage.prompt_tokens if usage else 0,
                         "completion_tokens": usage.completion_tokens if usage else 0})
            log(f"{subject} [{variant}] {Counter(outcomes).most_common()} landed {landed_as.count(skill)}/"
                f"{len(landed_as)} as {skill} probe favours key "
                f"{sum(p['favourite'] == p['key'] for p in probed)}/{len(probed)} ({time.monotonic() - started:.0f} s)")
    summary = {}
    for variant, stats in per.items():
        drafts = sum(stats["outcomes"].values())
        usable = stats["outcomes"]["usable"]
        tokens = stats["prompt"] + stats["completion"]
        summary[variant] = {"drafts": drafts, "usable": usable,
                            "copies": stats["outcomes"]["copy of an existing item"],
                            "outcomes": dict(stats["outcomes"].most_common()), "prompt_tokens": stats["prompt"],
                            "completion_tokens": stats["completion"], "rationale": dict(stats["rationale"]),
                            "probed": stats["probed"], "probe_favours_key": stats["probe_key"],
                            "probe_tokens": stats["probe_tokens"], "verdicts": dict(stats["verdicts"]),
                            "check_tokens": stats["check_tokens"], "landed": stats["landed"],
                            "landed_as": dict(stats["landed_as"].most_common()),
                            "tokens_per_usable": round(tokens / usable) if usable else None}
    result = {"subjects": subjects, "pool": args.pool, "drafts_per_call": args.drafts, "variants": variants,
              "probe": args.probe, "summary": summary, "rows": rows,
              "elapsed_s": round(time.monotonic() - started, 1)}
    lines = [f"# Expand drafts: the prompt's examples and answer format ({args.tag})", "",
             f"{len(subjects)} MMLU subjects, one batch of {args.drafts} drafts per subject and variant, the shipped "
             f"`{BATCH_PROMPT}` prompt at the writer's temperature {writer['temperature']}; a draft is usable when it "
             f"builds into an item, passes the structural checks and is no near-duplicate of the subject's "
             f"first {args.pool} items (the pool a run holds) or of an earlier draft of its batch. 'Rationale names "
             "another option': the draft's rationale quotes exactly one option and it is not the key. 'Probe "
             "favours the key': the panel's two-order letter probe puts most mass on the key.", "",
             table(["variant", "drafts", "usable", "copies of an existing item", "other refusals",
                    "rationale names another option", "labelled the skill written for", "labelled as",
                    "probe favours the key", "prompt tokens / call", "writer tokens / usable draft"],
                   [[v, s["drafts"], f"{s['usable']} ({s['usable'] / max(1, s['drafts']):.0%})", s["copies"],
                     "; ".join(f"{k} x{n}" for k, n in s["outcomes"].items()
                               if k not in ("usable", "copy of an existing item")) or "-",
                     f"{s['rationale'].get('other', 0)} of {s['usable']}", f"{s['landed']} of {s['usable']}",
                     ", ".join(f"{k} {n}" for k, n in s["landed_as"].items()) or "-",
                     f"{s['probe_favours_key']} of {s['probed']}" if args.probe else "not asked",
                     round(s["prompt_tokens"] / max(1, per[v]["calls"])), s["tokens_per_usable"] or "-"]
                    for v, s in summary.items()]),
             *([
                 "", "The validator's answer check (a short reason, then a letter) against the panel's key check "
                 f"(two-order probe; refuses when another option leads the key by {NEW_KEY_LEAD}), on the usable drafts:",
                 "", table(["variant", *VERDICTS, "answer-check tokens / draft"],
                           [[v, *(s["verdicts"].get(k, 0) for k in VERDICTS),
                             round(s["check_tokens"] / max(1, s["probed"]))] for v, s in summary.items()])]
               if args.answer_check else []),
             "", f"Total: {result['elapsed_s']} s."]
    write_results(args.tag, result, "\n".join(lines))


if __name__ == "__main__":
    main()
