"""Option probabilities: a model's answer to a multiple-choice item as a distribution, not a verdict.

A one-token completion's `top_logprobs` give the probability of each option letter. Small models have a
strong letter bias (they favour "A", or the last option), so an item is asked in several option orders and
the distributions are aligned back to the original options and averaged: a bias towards a position then
spreads over every option instead of landing on one. Everything here is pure arithmetic on those numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from refinelab.schema import LETTERS, QAItem


def presentation_orders(n_options: int, count: int = 2) -> list[list[int]]:
    """`count` orders in which to show an item's options; order[i] = the original option shown at position i.

    The first is the original; the second reverses it (every option changes position, and the first and
    last swap — the two positions small models favour); further ones are cyclic shifts."""
    if n_options < 2:
        return [list(range(n_options))]
    base = list(range(n_options))
    orders = [base, base[::-1]]
    shift = 1
    while len(orders) < count and shift < n_options:
        rotated = base[shift:] + base[:shift]
        if rotated not in orders:
            orders.append(rotated)
        shift += 1
    return orders[:max(1, count)]


def permuted(item: QAItem, order: Sequence[int]) -> QAItem:
    """The item with its options shown in `order` (the key follows its option)."""
    choices = [item.choices[i] for i in order]
    answer = list(order).index(item.answer) if item.answer is not None and item.answer < len(item.choices) else item.answer
    return item.model_copy(update={"choices": choices, "answer": answer})


def letter_distribution(top_logprobs: Sequence[tuple[str, float]], n_options: int,
                        labels: Sequence[str] = LETTERS) -> tuple[list[float], float]:
    """(probabilities per option position, mass): the first-token alternatives that spell an offered
    letter ("B", " B", "B.", "(B"), summed per letter and normalised; `mass` is the share of the model's
    probability that fell on offered letters before normalising (low mass = the model wanted to say
    something else, e.g. "The"). All zeros when no alternative is an offered letter. `labels` names the
    positions (letters by default; the skill labeller numbers its options "1", "2", ...). An alternative
    whose logprob is not a finite number <= 0 (an old cache entry, a caller's own list) is skipped: it
    would make the mass NaN, or overflow `exp`."""
    offered = list(labels[:n_options])
    raw = [0.0] * n_options
    for token, logprob in top_logprobs:
        if not (math.isfinite(logprob) and logprob <= 0.0):
            continue
        letter = token.strip().strip("().:*").upper()
        if len(letter) == 1 and letter in offered:
            raw[offered.index(letter)] += math.exp(logprob)
    mass = sum(raw)
    if mass <= 0.0:
        return raw, 0.0
    return [p / mass for p in raw], min(1.0, mass)


def align(position_probs: Sequence[float], order: Sequence[int]) -> list[float]:
    """Position probabilities back onto the original options: p_original[order[i]] = p_position[i]."""
    out = [0.0] * len(order)
    for position, original in enumerate(order):
        out[original] = position_probs[position]
    return out


def mean_distribution(distributions: Sequence[Sequence[float]]) -> list[float]:
    """The average of aligned distributions (all the same length); empty input → empty list."""
    if not distributions:
        return []
    n = len(distributions[0])
    return [sum(d[i] for d in distributions) / len(distributions) for i in range(n)]


def softmax(scores: Sequence[float]) -> list[float]:
    """Scores (log-probabilities or their differences) as a distribution; empty input → empty list.

    ValueError for a score that is not finite: softmax([-inf, -inf]) is all NaN, which compares false
    against every threshold and so flagged nothing, silently; the caller says which probe was unusable."""
    if not scores:
        return []
    if not all(math.isfinite(s) for s in scores):
        raise ValueError("softmax of a score that is not a finite number")
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def entropy(probs: Sequence[float]) -> float:
    """Shannon entropy in nats, normalised by log(n) to [0, 1] (1 = the model has no idea)."""
    n = len(probs)
    if n < 2:
        return 0.0
    h = -sum(p * math.log(p) for p in probs if p > 0)
    return h / math.log(n)


def margin_against(probs: Sequence[float], key: int) -> float:
    """p(key) − the best other option's probability: negative when the model prefers another option."""
    if not probs or key is None or key >= len(probs):
        return 0.0
    others = [p for i, p in enumerate(probs) if i != key]
    return probs[key] - (max(others) if others else 0.0)


def order_flip(aligned: Sequence[Sequence[float]]) -> bool:
    """True when the model's top option changes with the presentation order (a sign it is guessing)."""
    tops = {max(range(len(d)), key=d.__getitem__) for d in aligned if d and sum(d) > 0}
    return len(tops) > 1
