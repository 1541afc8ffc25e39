"""The Studio context's `rounds` / `max_attempts` shortcuts land in the run's options (their one home), over
what `options` says, and leave `options` alone when not given."""

from __future__ import annotations

from refinelab.api.studio import StudioContext, _options


def test_the_context_shortcuts_override_the_options() -> None:
    spec = StudioContext.model_validate({"dataset": "d.jsonl", "budget": 1000, "rounds": 1, "max_attempts": 3,
                                         "options": {"rounds": 4, "planner_mode": "greedy"}})
    options = _options(spec)
    assert (options.rounds, options.max_attempts, options.planner_mode) == (1, 3, "greedy")


def test_without_shortcuts_the_options_stand() -> None:
    spec = StudioContext.model_validate({"dataset": "d.jsonl", "budget": 1000, "options": {"rounds": 4}})
    assert _options(spec).rounds == 4 and _options(spec).max_attempts == spec.options.max_attempts
