"""Distractor score from synthetic embeddings and pick rates (no model is loaded)."""

import numpy as np
import pytest

from refinelab.metrics.distractors import (
    DistractorConfig,
    mean_diversity,
    panel_pick_rates,
    pick_rates_from_answers,
    score_distractors,
    score_item_distractors,
)
from refinelab.schema import QAItem


def unit(angle_deg):
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


def test_diverse_plausible_distractors_score_high():
    emb = np.stack([unit(0), unit(50), unit(70), unit(-60)])  # key at 0°, distractors spread
    d = score_item_distractors(["k", "a", "b", "c"], 0, item_id="i", embeddings=emb)
    assert not d.flag
    assert d.evidence["too_close"] == [] and d.evidence["too_far"] == []
    pairs = [(1, 2), (1, 3), (2, 3)]
    expected = np.mean([1 - emb[i] @ emb[j] for i, j in pairs])
    assert d.evidence["diversity"] == pytest.approx(expected, abs=1e-4)


def test_paraphrase_of_key_and_clones_are_penalised():
    emb = np.stack([unit(0), unit(5), unit(60), unit(61)])  # B ≈ key; C ≈ D
    d = score_item_distractors(["k", "a", "b", "c"], 0, embeddings=emb)
    assert d.flag and d.evidence["too_close"] == ["B"]
    far = np.stack([unit(0), unit(95), unit(100), unit(130)])
    assert score_item_distractors(["k", "a", "b", "c"], 0, embeddings=far).evidence["too_far"] == ["B", "C", "D"]


def test_pick_rates_mark_nonfunctional_distractors():
    rates, n = pick_rates_from_answers([0] * 17 + [1] * 2 + [None], 4)
    assert n == 19 and rates[2] == 0.0
    d = score_item_distractors(["k", "a", "b", "c"], 0, pick_rates=rates, n_responses=n)
    assert d.evidence["nonfunctional"] == ["C", "D"]
    assert d.evidence["components"]["function"] == pytest.approx(1 / 3, abs=1e-3)
    few = score_item_distractors(["k", "a", "b", "c"], 0, pick_rates=[0.9, 0.1, 0, 0], n_responses=3,
                                 embeddings=np.stack([unit(0), unit(50), unit(70), unit(-60)]))
    assert "function" not in few.evidence["components"]  # 3 answers are too few to judge pick rates
    popular = score_item_distractors(["k", "a"], 0, pick_rates=[0.2, 0.8])
    assert popular.evidence["attracts_more_than_key"] == ["B"]


def test_embed_callable_is_called_once_for_a_dataset():
    items = [QAItem(id=str(i), question="q", choices=["alpha", "beta", "gamma", "delta"], answer=i % 4)
             for i in range(5)]
    calls = []
    vectors = {"alpha": unit(0), "beta": unit(40), "gamma": unit(80), "delta": unit(-40)}

    def embed(texts):
        calls.append(list(texts))
        return np.stack([vectors[t] for t in texts])

    diags = score_distractors(items, embed=embed)
    assert len(calls) == 1 and sorted(calls[0]) == sorted(vectors)
    assert len(diags) == 5 and all(0 <= d.score <= 1 for d in diags)
    assert mean_diversity(diags) == pytest.approx(np.mean([d.evidence["diversity"] for d in diags]))
    assert score_distractors(items) == []


def test_errors_are_clear():
    with pytest.raises(ValueError, match="give embeddings"):
        score_item_distractors(["a", "b"], 0)
    with pytest.raises(ValueError, match="3 embeddings for 2"):
        score_item_distractors(["a", "b"], 0, embeddings=np.eye(3))
    with pytest.raises(ValueError, match="out of range"):
        score_item_distractors(["a", "b"], 2, pick_rates=[0.5, 0.5])
    cfg = DistractorConfig(flag_below=0.99)
    assert score_item_distractors(["a", "b", "c"], 0, embeddings=np.stack([unit(0), unit(50), unit(60)]),
                                  config=cfg).flag


def test_numeric_options_are_compared_by_value_not_embedding():
    from refinelab.metrics.distractors import numeric_value, select_distractors

    assert numeric_value("300 Kelvin") == 300 and numeric_value("$1,200") == 1200 and numeric_value("Mars") is None

    def samey(texts):  # an embedder that sees every option as nearly the same text (as MiniLM does for "N K")
        return np.array([[1.0, 0.01 * k] for k in range(len(texts))])

    choice = select_distractors("300 Kelvin", ["260 Kelvin", "300 K", "420 Kelvin", "150 Kelvin"], 3, samey)
    assert choice.dropped == {1: "the key's value"} and len(choice.chosen) == 3


def test_numbers_in_names_are_not_values_and_a_restated_ratio_is_the_key():
    """From a demo run: the key "The MnO4- : I- ratio is 6:5." read as the number 4 (from "MnO4"), so the
    swapped ratio 5:6 was dropped as "the key's value" and "The correct ratio is 6:5." was committed."""
    from refinelab.metrics.distractors import (
        numeric_value,
        select_distractors,
        stated_numbers,
        value_relation,
    )

    key = "The MnO4- : I- ratio is 6:5."
    assert stated_numbers(key) == (6.0, 5.0) and numeric_value(key) is None
    assert stated_numbers("H2O and CO2") == () and numeric_value("2H2O") == 2
    assert value_relation(key, "The correct ratio is 6:5.") == "same"
    assert value_relation(key, "The MnO4- : I- ratio is 5:6.") is None  # other values: the embedding decides
    assert value_relation("300 Kelvin", "302 Kelvin") == "near"

    def apart(texts):  # an embedder that sees every option as a different text
        return np.eye(len(texts), 8)

    candidates = ["The correct ratio is 6:5.", "The MnO4- : I- ratio is 5:6.", "The H+ : I- ratio is 2:1.",
                  "The I- : IO3- ratio is 3:1."]
    choice = select_distractors(key, candidates, 3, apart)
    assert choice.dropped == {0: "the key's value"} and sorted(choice.chosen) == [1, 2, 3]


def test_a_distractor_far_shorter_than_the_key_loses_to_one_of_similar_length():
    from refinelab.metrics.distractors import length_fit, select_distractors

    key = "The nuclei of comets spread out along their orbital path and the Earth passes through the debris."
    long_one = "Asteroids break apart near the Sun and the fragments fall to Earth as bright fireballs over weeks."
    short_one = "Comets are ice."

    def flat(texts):  # every candidate equally far from the key and from each other: only length decides
        return np.array([[1.0, 0.0, 0.0]] + [[0.5, 0.5 * (-1) ** k, 0.5 * k] for k in range(1, len(texts))])

    assert length_fit(key, short_one) < 0.2 and length_fit(key, key) == 1.0
    choice = select_distractors(key, [short_one, long_one], 1, flat)
    assert choice.chosen == [1]


def test_known_wrong_options_skip_the_paraphrase_drop() -> None:
    """An original distractor near the key by embedding is still wrong by the dataset's own account."""
    from refinelab.metrics.distractors import select_distractors

    def same(texts):  # every text embeds alike: all paraphrase the key
        return [[1.0, 0.0]] * len(texts)

    assert select_distractors("comets", ["asteroids", "meteors"], 2, same).chosen == []
    choice = select_distractors("comets", ["asteroids", "meteors"], 2, same, known_wrong=["Asteroids"])
    assert choice.chosen == [0] and "paraphrases the key" in choice.dropped[1]


def test_the_chosen_set_is_the_most_diverse_one_holding_a_new_candidate() -> None:
    """Every set is scored: the choice is the best one by an independent count over all sets."""
    import itertools

    from refinelab.metrics.distractors import select_distractors

    rng = np.random.default_rng(7)
    table = {}

    def embed(texts):  # a fixed random direction per text, all in one half-space (none near the key)
        return np.array([table.setdefault(t, np.abs(rng.normal(size=16))) for t in texts])

    key, candidates = "the key", [f"option {k}" for k in range(8)]
    vectors = embed([key, *candidates])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = [1.0] * len(candidates)  # equal plausibility: diversity alone decides

    def spread(rows):
        sims = unit[1:][list(rows)] @ unit[1:][list(rows)].T
        return float(np.mean(1.0 - sims[np.triu_indices(len(rows), k=1)]))

    best = max(itertools.combinations(range(8), 3), key=spread)
    choice = select_distractors(key, candidates, 3, embed, plausibility=flat, paraphrase_threshold=1.1)
    assert sorted(choice.chosen) == sorted(best) and abs(choice.diversity - spread(best)) < 1e-9
    # holding one of the new candidates: the best set among those that do
    required = [c for k, c in enumerate(candidates) if k not in best][:1]
    forced = select_distractors(key, candidates, 3, embed, plausibility=flat, paraphrase_threshold=1.1,
                                include_one_of=required)
    index = candidates.index(required[0])
    assert index in forced.chosen
    assert abs(forced.diversity - max(spread(c) for c in itertools.combinations(range(8), 3) if index in c)) < 1e-9


def test_a_number_within_two_percent_of_the_key_is_not_a_distractor() -> None:
    from refinelab.metrics.distractors import select_distractors

    def samey(texts):
        return np.array([[1.0, 0.01 * k] for k in range(len(texts))])

    choice = select_distractors("300 Kelvin", ["301 Kelvin", "302 Kelvin", "250 Kelvin", "420 Kelvin", "150 K"], 3, samey)
    assert set(choice.dropped) == {0, 1} and "within 2% of the key" in choice.dropped[0]
    assert sorted(choice.chosen) == [2, 3, 4]


def test_a_diversity_bar_outranks_plausibility() -> None:
    """With the original's diversity as the bar, a more plausible but less diverse set is not chosen."""
    import itertools

    from refinelab.metrics.distractors import select_distractors

    rng = np.random.default_rng(11)
    table = {}

    def embed(texts):
        return np.array([table.setdefault(t, np.abs(rng.normal(size=16))) for t in texts])

    key, candidates = "the key", [f"option {k}" for k in range(7)]
    unit = embed([key, *candidates])
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)

    def spread(rows):
        sims = unit[1:][list(rows)] @ unit[1:][list(rows)].T
        return float(np.mean(1.0 - sims[np.triu_indices(len(rows), k=1)]))

    ranked = sorted(itertools.combinations(range(7), 3), key=spread)
    tempting = set(ranked[0])  # the least diverse set is the one the panel finds plausible
    plaus = [1.0 if k in tempting else 0.0 for k in range(7)]
    free = select_distractors(key, candidates, 3, embed, plausibility=plaus, paraphrase_threshold=1.1)
    bar = spread(ranked[-3])
    assert free.diversity <= bar  # plausibility wins without the bar
    held = select_distractors(key, candidates, 3, embed, plausibility=plaus, paraphrase_threshold=1.1,
                              above_diversity=bar)
    assert held.diversity > bar and tuple(sorted(held.chosen)) in (ranked[-1], ranked[-2])


def test_beyond_the_exhaustive_limit_the_greedy_choice_is_close_to_the_best_set(monkeypatch) -> None:
    """40 candidates for 3 slots are 9,880 sets, past EXACT_SEARCH_LIMIT: the greedy (MMR) path runs. Its
    set holds a required candidate and scores within 10% of the best set found by scoring all of them."""
    import itertools

    from refinelab.metrics import distractors
    from refinelab.metrics.distractors import select_distractors

    rng = np.random.default_rng(7)
    texts = ["key"] + [f"candidate {i}" for i in range(40)]
    vectors = {t: v / np.linalg.norm(v) for t, v in zip(texts, rng.normal(size=(len(texts), 12)), strict=True)}
    vectors["key"] = np.eye(12)[0]  # every candidate below the paraphrase bar

    def embed(batch):
        return [vectors[t] for t in batch]

    candidates, plaus = texts[1:], [0.5] * 40
    required = ["candidate 39"]
    assert distractors.math.comb(40, 3) > distractors.EXACT_SEARCH_LIMIT
    greedy = select_distractors("key", candidates, 3, embed, plausibility=plaus, include_one_of=required)
    assert len(set(greedy.chosen)) == 3 and 39 in greedy.chosen

    def spread(idx):
        return np.mean([1 - vectors[candidates[a]] @ vectors[candidates[b]] for a, b in itertools.combinations(idx, 2)])

    best = max(spread(c) for c in itertools.combinations(range(40), 3) if 39 in c)
    assert greedy.diversity == pytest.approx(spread(greedy.chosen))
    assert greedy.diversity >= 0.9 * best
    monkeypatch.setattr(distractors, "EXACT_SEARCH_LIMIT", 10_000)  # the exhaustive path agrees with the count
    exact = select_distractors("key", candidates, 3, embed, plausibility=plaus, include_one_of=required)
    assert exact.diversity == pytest.approx(best)


def test_panel_pick_rates_read_measured_probabilities_before_votes() -> None:
    measured = {"answers": {"judge": 1, "other": 1},
                "probs": {"judge": {"p": [0.1, 0.6, 0.3, 0.0]}, "other": {"p": [0.3, 0.4, 0.1, 0.2]}}}
    rates = panel_pick_rates(measured, 4)
    # the two argmax votes would read [0, 1, 0, 0]: every distractor idle
    assert rates is not None and rates.n == 2
    assert rates.rates == pytest.approx([0.2, 0.5, 0.2, 0.1])
    votes = panel_pick_rates({"answers": {"a": 0, "b": 2, "c": None, "d": "x"}}, 4)
    assert votes is not None and votes.n == 2
    assert votes.rates == pytest.approx([0.5, 0.0, 0.5, 0.0])
    assert panel_pick_rates({"answers": {"a": None}}, 4) is None
    # a distribution of another length (a different option count) is not this item's
    assert panel_pick_rates({"probs": {"judge": {"p": [0.5, 0.5]}}, "answers": {}}, 4) is None


LOOP = ("The comets themselves are responsible for the meteor shower, but the Earth is not responsible for the "
        "meteor shower, but the atmosphere and comets are not responsible for the meteor shower.")


def test_a_candidate_caught_in_a_generation_loop_is_dropped_unless_the_dataset_has_it() -> None:
    from refinelab.metrics.distractors import LOOPING_SHARE, looping_share, select_distractors

    sound = "Starch is a polysaccharide, while cellulose is a polysaccharide but not all cellulose is a polysaccharide."
    assert looping_share(LOOP) >= LOOPING_SHARE > looping_share(sound)
    assert looping_share("the the the the") == 0.0  # too short to judge

    def apart(texts):  # every text in a direction of its own
        return np.eye(len(texts))

    choice = select_distractors("Debris left along a comet's orbit", [LOOP, sound, "Solar flares"], 2, apart)
    assert 0 not in choice.chosen and "generation loop" in choice.dropped[0]
    kept = select_distractors("Debris left along a comet's orbit", [LOOP, sound], 2, apart, known_wrong=[LOOP])
    assert kept.chosen and 0 in kept.chosen
