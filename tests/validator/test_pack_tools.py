"""Tools per domain: a pack names its validator tools; a tool from a separately installed package (an
entry point in `refinelab.tools`, pip-installed into a temporary folder — no change to our code) is chosen
by the validator's router and its answer recorded as the edit's evidence, with the built-in verdict
contract. Pack schema errors name the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from refinelab.agents.options import RunHooks
from refinelab.agents.validation.tools import ToolNotFound, check_pack_tools, load_tool, verdict_from_output
from refinelab.api import refine
from refinelab.config import load_settings
from refinelab.prompts.loader import PromptError, PromptLibrary
from refinelab.tools.tracing import read_trace
from tests.support.rl_helpers import mmlu
from tests.support.scripted import EXTRAS, respond
from tests.support.scripted_model import ScriptedChatModel

PLUGIN = '''
from langchain_core.tools import tool


@tool
def key_length(key_text: str) -> dict:
    """Passes keys shorter than 200 characters."""
    return {"passed": len(key_text) < 200, "reason": "length checked"}


def unit_check(question: str, key_text: str) -> dict:
    """Checks that the key's units agree with the question's (a demo domain tool)."""
    if "(key B)" in question:
        return {"passed": False, "reason": "the key's units disagree", "evidence": {"checked": key_text}}
    return {"passed": True, "reason": f"units agree for {key_text!r}", "evidence": {"checked": key_text}}
'''
PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "refinelab-unitcheck-demo"
version = "0.1"

[project.entry-points."refinelab.tools"]
unit_check = "refinelab_unitcheck_demo:unit_check"
'''
PACKS = ("general", "science", "math", "law")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin package, built and pip-installed into a folder of its own (not our environment)."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "src" / "refinelab_unitcheck_demo").mkdir(parents=True)
    (root / "src" / "refinelab_unitcheck_demo" / "__init__.py").write_text(PLUGIN)
    (root / "src" / "pyproject.toml").write_text(PYPROJECT)
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(root / "src")],
                   check=True, capture_output=True, timeout=300)
    assert (target / "refinelab_unitcheck_demo").is_dir()
    return target


def _prompts(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "prompts"
    (folder / "packs").mkdir(parents=True)
    for name in PACKS:  # every MMLU subject lands in one of these packs
        (folder / "packs" / f"{name}.yaml").write_text(f"include: default\ndescription: {name} with tools\n{body}")
    return folder


def _router(messages: list[dict[str, str]]) -> str:
    if "Which one tool can best check" in messages[-1]["content"]:
        return json.dumps({"reason": "the answer has units", "tool": "unit_check"})
    return respond(messages, fail_first_validation=True)


def test_entry_point_tool_is_chosen_by_the_router_and_recorded(installed_plugin: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed_plugin))
    prompts = _prompts(tmp_path, "tools: [answer, unit_check]\n")
    model = ScriptedChatModel(respond=_router)
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    result = refine(mmlu(10), budget=40_000, settings=settings, prompts_dir=str(prompts),
                    hooks=RunHooks(chat_models={"judge": model, "writer": model, "validator": model}),
                    options={**EXTRAS, "operations": ["expand", "generate"], "pilot_per_op": 0, "rounds": 1,
                             "max_attempts": 2})
    changes = [json.loads(line) for line in (result.run_dir / "changes.jsonl").read_text().splitlines()]
    validated = [c for c in changes if c["evidence"].get("method", "").startswith("tool:")]
    assert validated and all(c["evidence"]["method"] == "tool:unit_check" for c in validated)
    for change in validated:
        evidence = change["evidence"]
        assert evidence["route"]["chosen"] == "unit_check" and evidence["route"]["by"] == "llm"
        assert evidence["route"]["tools"] == ["answer", "unit_check"]
        assert evidence["tool_evidence"]["checked"] == change["after"]["choices"][change["after"]["answer"]]
    # the tool's verdict drives the loop like a built-in's: first attempts fail with its reason, retries pass
    assert {c["verdict"] for c in validated if c["attempt"] == 0} == {"fail"}
    assert all(c["reason"] == "the key's units disagree" for c in validated if c["attempt"] == 0)
    assert {c["verdict"] for c in validated if c["attempt"] == 1} == {"pass"}
    assert result.report["new_items"] > 0
    tool_runs = [r for r in read_trace(result.run_dir / "trace.jsonl") if r["name"] == "tool:unit_check"]
    assert tool_runs and all(r["run_type"] == "tool" for r in tool_runs)


def test_module_function_and_langchain_tools_load_and_bad_ones_say_why(installed_plugin: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed_plugin))
    tool = load_tool("refinelab_unitcheck_demo:unit_check")
    assert tool.name == "unit_check" and "units" in tool.description
    lc_tool = load_tool("refinelab_unitcheck_demo:key_length")  # a LangChain `@tool` is used as it is
    assert lc_tool.name == "key_length" and verdict_from_output("key_length", lc_tool.invoke({"key_text": "x"})).passed
    with pytest.raises(ToolNotFound, match="no installed package registers it"):
        load_tool("no_such_tool_anywhere")
    with pytest.raises(ToolNotFound, match="cannot import it"):
        load_tool("no_such_module_xyz:check")
    undecided = verdict_from_output("t", "not json at all")
    assert not undecided.passed and undecided.evidence["outcome"] == "undecided"
    assert verdict_from_output("t", {"passed": None, "reason": "no data"}).evidence["outcome"] == "undecided"
    assert verdict_from_output("t", '{"passed": true, "reason": "ok"}').passed


def test_pack_schema_errors_name_the_file(tmp_path: Path) -> None:
    for body, match in (("tools: unit_check\n", "tools: expected a list"),
                        ("tools: ['../../etc/passwd']\n", r"tools\[0\]"),
                        ("corpus: missing.jsonl\n", "corpus: .*does not exist")):
        folder = _prompts(tmp_path / str(abs(hash(body))), body)
        with pytest.raises(PromptError, match=match) as info:
            PromptLibrary(folder).pack("general")
        assert "general.yaml" in str(info.value)


DANGEROUS = '''
from collections.abc import Callable
from pathlib import Path

CALLS = Path(__file__).with_name("calls.txt")


def wipe(path: str) -> dict:
    """Needs an argument a validator tool is never given."""
    CALLS.write_text("wipe was called")
    return {"passed": True, "reason": "called"}


def nothing() -> dict:
    """Asks for none of the item's fields."""
    CALLS.write_text("nothing was called")
    return {"passed": True, "reason": "called"}


def typed(question: str, on_result: Callable[[str], None] | None = None) -> dict:
    """A usable tool with an optional parameter no JSON schema can describe."""
    return {"passed": question.endswith("?"), "reason": "asked a question"}
'''


@pytest.mark.parametrize(("ref", "match"), [
    ("os:system", "it needs 'command'"),
    ("shutil:rmtree", "it needs 'path'"),
    ("refinelab_dangerous_demo:wipe", "it needs 'path'"),
    ("refinelab_dangerous_demo:nothing", "asks for none of the item's fields"),
    ("no_such_module_xyz:check", "cannot import it"),
])
def test_a_pack_naming_an_unusable_tool_fails_before_the_run_folder_exists(
        ref: str, match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack is untrusted text naming installed code: a function needing arguments a check never supplies
    (`os:system`, `shutil:rmtree`) or none of the item's fields is refused when the run starts — named with
    the pack's file, before the model is asked anything or a folder is made — and is never called."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "refinelab_dangerous_demo.py").write_text(DANGEROUS)
    monkeypatch.syspath_prepend(str(code))
    prompts = _prompts(tmp_path, f"tools: [answer, '{ref}']\n")

    def never(messages: list[dict[str, str]]) -> str:
        raise AssertionError("the model was asked before the pack's tools were checked")

    model = ScriptedChatModel(respond=never)
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    with pytest.raises(ToolNotFound, match=match) as info:
        refine(mmlu(4), budget=10_000, settings=settings, prompts_dir=str(prompts),
               hooks=RunHooks(chat_models={"judge": model, "writer": model, "validator": model}))
    assert str(prompts / "packs") in str(info.value) and ".yaml" in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert not (code / "calls.txt").exists()


def test_a_tool_a_run_hook_supplies_is_not_imported(tmp_path: Path) -> None:
    """A name the run's hooks register as a validator is the hook's, not a module to import."""
    prompts = _prompts(tmp_path, "tools: [answer, house_check]\n")
    check_pack_tools(PromptLibrary(prompts), plugged={"house_check"})
    with pytest.raises(ToolNotFound, match="house_check"):
        check_pack_tools(PromptLibrary(prompts))


def test_a_tool_with_an_optional_parameter_of_any_type_loads_and_is_given_the_item(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parameters are read from the tool's input model, not its JSON schema (a `Callable` has none)."""
    from refinelab.agents.validation.tools import _arguments
    from refinelab.schema import QAItem

    (tmp_path / "refinelab_dangerous_demo.py").write_text(DANGEROUS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "refinelab_dangerous_demo", raising=False)
    tool = load_tool("refinelab_dangerous_demo:typed")
    item = QAItem(id="q", question="Which is prime?", choices=["4", "7"], answer=1)
    assert _arguments(tool, item) == {"question": "Which is prime?"}
    assert verdict_from_output("typed", tool.invoke(_arguments(tool, item))).passed
