"""A run's LangGraph checkpoints: the one way they are decoded, and the check that they can be.

LangGraph's default serializer imports and calls whatever callable a checkpoint names, so a
`checkpoints.sqlite` from elsewhere could run code the moment `resume` or `review` read it, seal or no seal
(the seal covers settings.json only). Every saver a run opens decodes with `checkpoint_serde`, and a folder's
checkpoint is read back here, from a private copy, before the run is resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from refinelab.api.run_checks import snapshot
from refinelab.errors import DataError


def checkpoint_serde() -> Any:
    """The serializer of every checkpoint saver a run opens: LangGraph's, held to its own list of safe types
    (`allowed_msgpack_modules=None`, as `LANGGRAPH_STRICT_MSGPACK=true` would set it for the whole process).
    LangGraph's default imports and calls whatever callable a checkpoint names, so a `checkpoints.sqlite`
    from elsewhere could run code the moment `resume` or `review` read it, seal or no seal (the seal covers
    settings.json). Our graph state is ids and plain data (the ids-only state of docs/graph.md), so nothing
    of ours needs more; a blocked type is read back as its raw data, and `check_checkpoint` refuses it."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=None)


def check_checkpoint(path: Path, thread_id: str) -> bool:
    """The run's latest checkpoint (and its pending writes) can be read back, from a private copy; whether
    there is one. (A Studio run's checkpoints live in the LangGraph server, so a folder may have none.) A
    checkpoint naming Python objects outside LangGraph's safe types was written by something else: it is
    refused here (read with `checkpoint_serde`, which never builds them), before the run is resumed."""
    if not path.exists():
        return False
    from langgraph.checkpoint.serde.event_hooks import register_serde_event_listener
    from langgraph.checkpoint.sqlite import SqliteSaver

    blocked: list[str] = []

    def listen(event: Any) -> None:
        if "blocked" in str(event.get("kind", "")):
            blocked.append(f"{event.get('module', '?')}.{event.get('name', '?')}")

    unregister = register_serde_event_listener(listen)
    # LangGraph also logs each blocked type as a warning line of its own: the refusal below says it in ours
    serde_log = logging.getLogger("langgraph.checkpoint.serde.jsonplus")
    level = serde_log.level
    serde_log.setLevel(logging.ERROR)
    try:
        with snapshot(path) as db:
            found = SqliteSaver(db, serde=checkpoint_serde()).get_tuple({"configurable": {"thread_id": thread_id}})
    except Exception as exc:  # noqa: BLE001 - any decode failure means the same thing here
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DataError(str(path), None, None, f"the saved checkpoint cannot be read ({type(exc).__name__}: "
                                               f"{detail}); the file is damaged") from None
    finally:
        unregister()
        serde_log.setLevel(level)
    if blocked:
        raise DataError(str(path), None, None, f"the saved checkpoint names Python objects a run never saves "
                        f"({', '.join(sorted(set(blocked))[:3])}); it was edited or comes from elsewhere, and is "
                        "not read")
    return found is not None


def require_checkpoint(path: Path, thread_id: str) -> None:
    """A resume needs a checkpoint to continue from: a run that has none (stopped before its first step
    finished, or whose store names another run) is a DataError naming the file, not LangGraph's
    EmptyInputError once the graph has started."""
    if not check_checkpoint(path, thread_id):
        raise DataError(str(path), None, None, f"no saved checkpoint of run {thread_id!r}: the run stopped before its "
                        "first step finished, or the store names another run; start it again with `refinelab refine`")
