"""The planner as a LangChain StructuredTool."""

from __future__ import annotations

import pytest
from langchain_core.tools import StructuredTool
from pydantic import ValidationError

from refinelab.planner.problem import build_problem
from refinelab.planner.tool import TOOL_NAME, PlanRequest, make_plan_tool

PROFILES = [{"id": f"q{i}", "domain": "math" if i % 4 else "law", "skill": "calc", "difficulty": i / 12,
             "p_error": 0.3 if i % 5 == 0 else 0.0, "distractor_score": 0.4} for i in range(12)]


def test_tool_schema_and_call_with_profiles() -> None:
    tool = make_plan_tool()
    assert isinstance(tool, StructuredTool) and tool.name == TOOL_NAME
    assert "profiles" in tool.args and "mode" in tool.args
    out = tool.invoke({"profiles": PROFILES, "budget": 20_000, "mode": "greedy"})
    assert out["mode"] == "greedy" and out["forecast_tokens"] <= 20_000
    assert set(out["metrics"]) >= {"coverage_deviation", "difficulty_deviation", "expected_errors"}
    assert "assignments" not in out


def test_tool_call_with_problem_and_full_detail() -> None:
    problem = build_problem(PROFILES, budget=20_000)
    out = make_plan_tool().invoke({"problem": problem.model_dump(), "detail": "full", "budget": 8_000})
    assert out["budget"] == 8_000 and out["forecast_tokens"] <= 8_000
    assert all(a["cost"] > 0 for a in out["assignments"])


def test_tool_arguments_are_validated() -> None:
    with pytest.raises(ValidationError):
        PlanRequest(profiles=[], problem=None)  # no budget
    with pytest.raises(ValidationError):
        PlanRequest(budget=1)  # neither source


def test_tool_call_is_traced_with_inputs_and_outputs() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    seen: dict[str, object] = {}

    class Recorder(BaseCallbackHandler):
        def on_tool_start(self, serialized, input_str, *, inputs=None, **kwargs):  # noqa: ANN001
            seen["name"] = serialized.get("name")
            seen["inputs"] = inputs

        def on_tool_end(self, output, **kwargs):  # noqa: ANN001
            seen["output"] = output

    make_plan_tool().invoke({"profiles": PROFILES, "budget": 9_000}, config={"callbacks": [Recorder()]})
    assert seen["name"] == TOOL_NAME
    assert seen["inputs"]["budget"] == 9_000
    assert seen["output"]["forecast_tokens"] <= 9_000
