"""Build the LangGraph state machine:

load → profile → plan ─(Send per edit)→ refine → validate ─┬→ refine again (with the reason)
                  ▲                                         ├→ review (interrupt: a person decides) ─┐
                  │                                         ├→ collect (pass: committed)              │
                  └──────────── collect (deferred) ◄────────┴──(fail, no attempts left: original kept)◄┘
                                   └→ (review of flagged items no edit fixed) → finalize
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from refinelab.agents.context import AgentContext
from refinelab.graph import nodes
from refinelab.state import RefineState

NODES = {
    "load": nodes.load, "profile": nodes.profile, "plan": nodes.plan, "refine": nodes.refine_node,
    "validate": nodes.validate_node, "review": nodes.review_node, "collect": nodes.collect, "finalize": nodes.finalize,
}
INPUT_KEYS = ("run_id",)


def check_declarations() -> None:
    """Every key a node reads must be an input or written by some node (fail fast on a typo)."""
    written = set(INPUT_KEYS) | {k for fn in NODES.values() for k in fn.writes}  # type: ignore[attr-defined]
    for name, fn in NODES.items():
        for key in fn.reads:  # type: ignore[attr-defined]
            if key != "edit task" and key not in written:
                raise ValueError(f"node {name!r} reads {key!r}, which no node writes")
        for key in fn.writes:  # type: ignore[attr-defined]
            if key not in RefineState.__annotations__:
                raise ValueError(f"node {name!r} writes {key!r}, which is not in the state schema")


def build_graph(config: Any = None, *, checkpointer: Any = None) -> Any:
    """The compiled graph. Run it with `context=AgentContext(...)`; `config` is accepted for symmetry
    with LangGraph apps (settings travel in the context)."""
    check_declarations()
    graph = StateGraph(RefineState, context_schema=AgentContext)
    graph.add_node("load", nodes.load)
    graph.add_node("profile", nodes.profile)
    graph.add_node("plan", nodes.plan)
    graph.add_node("refine", nodes.refine_node, destinations=("validate",))
    graph.add_node("validate", nodes.validate_node, destinations=("refine", "collect", "review"))
    graph.add_node("review", nodes.review_node, destinations=("collect", "finalize"))
    graph.add_node("collect", nodes.collect, defer=True, destinations=("plan", "finalize", "review"))
    graph.add_node("finalize", nodes.finalize)
    graph.add_edge(START, "load")
    graph.add_edge("load", "profile")
    graph.add_edge("profile", "plan")
    graph.add_conditional_edges("plan", nodes.dispatch, ["refine", "finalize"])
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer, name="refinelab")


def studio_graph() -> Any:
    """Entry point for `langgraph dev` / LangGraph Studio (langgraph.json)."""
    return build_graph()
