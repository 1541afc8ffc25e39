"""Build the LangGraph state machine:

load → profile → plan ─(Send per edit)→ refine → validate ─┬→ refine again (with the reason)
                  ▲                                         ├→ review (interrupt: a person decides) ─┐
                  │                                         ├→ collect (pass: committed)              │
                  └──────────── collect (deferred) ◄────────┴──(fail, no attempts left: original kept)◄┘
                                   └→ (review of flagged items no edit fixed) → finalize
plan with nothing to do → wrap_up → (the same review) → finalize
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from refinelab.agents.context import AgentContext
from refinelab.graph import nodes
from refinelab.state import RefineState

NODES = {
    "load": nodes.load, "profile": nodes.profile, "plan": nodes.plan, "refine": nodes.refine_node,
    "validate": nodes.validate_node, "review": nodes.review_node, "wrap_up": nodes.wrap_up, "collect": nodes.collect, "finalize": nodes.finalize,
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


ContextFactory = Callable[[Any, dict[str, Any], Any], AgentContext]
"""(the context LangGraph was given — None or plain data —, the run's config, the node's input) → the run's
`AgentContext`. How a graph started without live handles (LangGraph Studio, `langgraph dev`) gets them."""


def _with_context(fn: Callable[..., Any], factory: ContextFactory) -> Callable[..., Any]:
    """`fn` with its runtime context built by `factory` when LangGraph was given none (or plain data)."""

    @functools.wraps(fn)  # keeps the signature, type hints and the reads/writes declarations
    def wrapped(state: Any, runtime: Runtime[Any]) -> Any:
        if not isinstance(runtime.context, AgentContext):
            runtime = runtime.override(context=factory(runtime.context, get_config(), state))
        return fn(state, runtime)

    return wrapped


def build_graph(config: Any = None, *, checkpointer: Any = None, context_factory: ContextFactory | None = None,
                context_schema: type[Any] = AgentContext) -> Any:
    """The compiled graph. Run it with `context=AgentContext(...)`; `config` is accepted for symmetry
    with LangGraph apps (settings travel in the context). With `context_factory`, a run started with
    plain data as its context (`context_schema`, e.g. Studio's form) builds its handles from it."""
    check_declarations()
    fn = NODES if context_factory is None else {n: _with_context(f, context_factory) for n, f in NODES.items()}
    graph = StateGraph(RefineState, context_schema=context_schema)
    graph.add_node("load", fn["load"])
    graph.add_node("profile", fn["profile"])
    graph.add_node("plan", fn["plan"])
    graph.add_node("refine", fn["refine"], destinations=("validate",))
    graph.add_node("validate", fn["validate"], destinations=("refine", "collect", "review"))
    graph.add_node("review", fn["review"], destinations=("collect", "finalize"))
    graph.add_node("collect", fn["collect"], defer=True, destinations=("plan", "finalize", "review"))
    graph.add_node("wrap_up", fn["wrap_up"], destinations=("review", "finalize"))
    graph.add_node("finalize", fn["finalize"])
    graph.add_edge(START, "load")
    graph.add_edge("load", "profile")
    graph.add_edge("profile", "plan")
    graph.add_conditional_edges("plan", nodes.dispatch, ["refine", "wrap_up"])
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer, name="refinelab")
