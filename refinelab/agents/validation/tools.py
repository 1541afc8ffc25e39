"""A pack's own validator tools: load them, let the router choose one per item, and read its answer as a
`Verdict` with the same contract as the built-in methods.

A pack's `tools:` names any of:
- a built-in method: `answer`, `pot`, `rag`, `pot_or_rag`;
- a LangChain tool or a plain function by reference, `package.module:attribute` (a `BaseTool` instance
  or class, or a function — wrapped with `StructuredTool.from_function`, its docstring the description);
- a name registered in the `refinelab.tools` entry-point group by an installed package.

A tool is called with the fields of the item its signature asks for — `question`, `choices`, `key`
(the key's letter), `key_text`, `subject` — and answers a mapping (or JSON text) with `passed` (true,
false, or null = cannot decide), `reason`, and optional `evidence`. Nothing a pack names is imported
until a run starts (`check_pack_tools`, before the run's folder exists); packs cannot carry code, only name
what is installed, and a tool that needs any other argument is refused rather than called.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.validation.answer import answer_check
from refinelab.agents.validation.routing import ValidatorFn, available_validators, default_validators
from refinelab.errors import ConfigError, DataError, LLMCallFailed
from refinelab.prompts.loader import PromptLibrary
from refinelab.safeload import loads_json
from refinelab.schema import QAItem
from refinelab.state import EditTask, Verdict
from refinelab.tools.ledger import CallTag

ENTRY_POINT_GROUP = "refinelab.tools"
BUILT_IN = {"answer": answer_check, **default_validators()}
OUTPUT_CHARS = 4000  # of a tool's answer kept as evidence
#: the item's fields a plugged-in tool may ask for, matched to its parameters by name
TOOL_FIELDS = ("question", "choices", "key", "key_text", "subject")
_TOOLS: dict[str, Any] = {}
_LOCK = threading.Lock()


class ToolNotFound(ConfigError):
    """A pack names a tool that is neither built in, importable, nor registered as an entry point."""


class ToolChoice(BaseModel):
    """The validator model's routing call among a pack's tools."""

    reason: str = Field(max_length=300)
    tool: str = Field(max_length=100)


@dataclass(frozen=True)
class PackTool:
    """One tool a pack may use: its name (as the pack wrote it), a description for the router, and how to
    check an item with it."""

    ref: str
    description: str
    check: ValidatorFn


def _as_langchain_tool(obj: Any, ref: str) -> Any:
    from langchain_core.tools import BaseTool, StructuredTool

    if isinstance(obj, BaseTool):
        return obj
    if isinstance(obj, type) and issubclass(obj, BaseTool):
        return obj()
    if callable(obj):
        return StructuredTool.from_function(obj, name=getattr(obj, "__name__", ref.split(":")[-1]))
    raise ToolNotFound(f"tool {ref!r}: {type(obj).__name__} is not a LangChain tool or a function")


def load_tool(ref: str) -> Any:
    """The LangChain tool `ref` names (a `module:attribute` reference or an entry-point name), loaded once."""
    with _LOCK:
        if ref in _TOOLS:
            return _TOOLS[ref]
        if ":" in ref:
            module, _, attribute = ref.partition(":")
            try:
                obj = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError) as exc:
                raise ToolNotFound(f"tool {ref!r}: cannot import it ({type(exc).__name__}: {exc})") from None
        else:
            found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == ref]
            if not found:
                raise ToolNotFound(f"tool {ref!r}: not built in ({', '.join(BUILT_IN)}), not a module:function "
                                   f"reference, and no installed package registers it in {ENTRY_POINT_GROUP!r}")
            obj = found[0].load()
        tool = _as_langchain_tool(obj, ref)
        _check_parameters(tool, ref)
        _TOOLS[ref] = tool
        return tool


def _check_parameters(tool: Any, ref: str) -> None:
    """Refuse a tool that needs an argument a check cannot give it, or asks for none of the item's fields.

    A pack is untrusted text that names installed code; this is what keeps `tools: [os:system]` or
    `shutil:rmtree` from ever being called (they need `command` / `path`), and what tells the author of a
    real tool with a misspelt parameter why it would never run, before a run spends anything."""
    asked, required = _parameters(tool)
    unknown = sorted(required - set(TOOL_FIELDS))
    if unknown:
        raise ToolNotFound(f"tool {ref!r}: it needs {', '.join(map(repr, unknown))}, which a validator tool is not "
                           f"given; a tool may ask for {', '.join(TOOL_FIELDS)}")
    if not asked & set(TOOL_FIELDS):
        raise ToolNotFound(f"tool {ref!r}: it asks for none of the item's fields ({', '.join(TOOL_FIELDS)}), so it "
                           "cannot check an item")


def _parameters(tool: Any) -> tuple[set[str], set[str]]:
    """(parameters, required parameters) of a LangChain tool, read from its input model's fields or its JSON
    schema, without generating a JSON schema (a parameter typed `Callable` cannot have one)."""
    if isinstance(getattr(tool, "args_schema", None), dict):
        schema = tool.args_schema
        return set(schema.get("properties") or {}), set(schema.get("required") or ())
    fields = tool.get_input_schema().model_fields
    return set(fields), {name for name, info in fields.items() if info.is_required()}


def _arguments(tool: Any, item: QAItem) -> dict[str, Any]:
    offered = {"question": item.question, "choices": list(item.choices), "key": item.answer_letter,
               "key_text": item.answer_text, "subject": item.subject}
    wanted = _parameters(tool)[0]
    return {k: v for k, v in offered.items() if k in wanted}


def verdict_from_output(name: str, output: Any) -> Verdict:
    """A tool's answer read as a verdict; anything that is not `{passed, reason, evidence?}` is undecided."""
    method = f"tool:{name}"
    if isinstance(output, BaseModel):
        output = output.model_dump()
    if isinstance(output, str):
        with contextlib.suppress(DataError):  # a JSON answer as text; depth and size limited
            output = loads_json(output, f"tool {name}")
    raw = json.dumps(output, default=str, ensure_ascii=False)[:OUTPUT_CHARS]
    if not isinstance(output, dict) or "passed" not in output or not isinstance(output["passed"], bool | None):
        return Verdict(False, f"tool {name} gave no verdict (expected passed/reason): {raw[:200]}", method,
                       {"tool": name, "output": raw}, outcome="undecided")
    passed, reason = output["passed"], str(output.get("reason") or "")[:1000]
    evidence = output.get("evidence") if isinstance(output.get("evidence"), dict) else {}
    record = {"tool": name, "tool_evidence": json.loads(json.dumps(evidence, default=str))}
    if passed is None:
        return Verdict(False, f"tool {name} could not decide: {reason}", method, record, outcome="undecided")
    return Verdict(bool(passed), reason or f"tool {name}: {'pass' if passed else 'fail'}", method, record,
                   outcome="pass" if passed else "fail")


def plugged_check(ref: str) -> ValidatorFn:
    """The check that runs the plugged-in tool `ref` on an item, traced as a `tool` run."""

    def check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
        tool = load_tool(ref)
        arguments = _arguments(tool, item)
        with ctx.tracer.span(f"tool:{tool.name}", "tool", {"ref": ref, **arguments}) as run:
            try:
                output = tool.invoke(arguments)
            except Exception as exc:  # noqa: BLE001 - a user's tool failing is an undecided check, not a crash
                output = {"passed": None, "reason": f"it raised {type(exc).__name__}: {exc}"}
            verdict = verdict_from_output(ref, output)
            run.outputs = {"passed": verdict.passed, "reason": verdict.reason}
        return verdict

    return check


def check_pack_tools(library: PromptLibrary, plugged: Collection[str] = ()) -> None:
    """Load every tool the user's packs name, before a run starts: a missing, unimportable or unusable tool
    is a one-line `ToolNotFound` naming the pack file (exit 2), not a crash in the validate node after
    the profile and the writer's calls were paid. `plugged`: names the run's hooks supply as validators."""
    if library.user_dir is None:
        return
    for name in library.pack_names():
        pack = library.pack(name)
        for ref in pack.tools:
            if ref in BUILT_IN or ref in plugged:
                continue
            try:
                load_tool(ref)
            except ToolNotFound as exc:
                raise ToolNotFound(f"{library.pack_file(name)}: {exc}") from None


def pack_tools(ctx: AgentContext, refs: list[str]) -> list[PackTool]:
    """The pack's tools this run can use: built-ins `options.validators` allows, and every plugged-in one."""
    allowed = available_validators(ctx)
    tools = []
    for ref in refs:
        if ref in BUILT_IN:
            if ref == "answer" or ref in allowed:
                tools.append(PackTool(ref, f"built-in {ref} check", BUILT_IN[ref]))
        elif ref in ctx.hooks.validators:
            tools.append(PackTool(ref, f"plugged-in {ref} check", ctx.hooks.validators[ref]))
        else:
            tool = load_tool(ref)
            tools.append(PackTool(ref, str(tool.description or tool.name)[:300], plugged_check(ref)))
    return tools


def choose_tool(ctx: AgentContext, task: EditTask, item: QAItem, tools: list[PackTool]) -> tuple[PackTool, dict[str, Any]]:
    """The router among a pack's tools: the only one, else the validator model's choice (the first tool when
    its answer names none of them)."""
    if len(tools) == 1:
        return tools[0], {"by": "only", "tools": [t.ref for t in tools], "tokens": 0}
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    listing = [{"name": t.ref, "description": t.description} for t in tools]
    messages = ctx.pack(item).messages("choose_tool", item=item, tools=listing)
    try:
        result = ctx.client("validator").structured(messages, ToolChoice, tag, max_tokens=150)
    except LLMCallFailed as exc:
        return tools[0], {"by": "default", "tools": [t.ref for t in tools], "error": str(exc), "tokens": exc.tokens}
    by_name = {t.ref: t for t in tools}
    picked = by_name.get(result.parsed.tool.strip())
    route = {"by": "llm" if picked else "default", "tools": [t.ref for t in tools], "asked": result.parsed.tool,
             "reason": result.parsed.reason, "tokens": result.tokens}
    return picked or tools[0], route


def tools_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """Validate with the pack's tools: the router picks one; its verdict carries the routing as evidence."""
    tools = pack_tools(ctx, ctx.pack(item).tools)
    if not tools:
        verdict = answer_check(ctx, task, item)
        verdict.evidence["note"] = "none of the pack's tools is available here; used the answer check"
        return verdict
    tool, route = choose_tool(ctx, task, item, tools)
    verdict = tool.check(ctx, task, item)
    verdict.evidence["route"] = {k: v for k, v in route.items() if k != "tokens"} | {"chosen": tool.ref}
    verdict.tokens += int(route["tokens"])
    return verdict
