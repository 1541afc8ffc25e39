"""Class 9: overriding one field of a role keeps that role's other settings; bad input exits 2."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.sec_helpers import cli, one_line_error

WRITER_DEFAULTS = {"temperature": 0.7, "max_tokens": 500}
JUDGE_DEFAULTS = {"temperature": 0.0, "max_tokens": 400}


def _saved_roles(ws, env_extra: dict[str, str], config: dict | None = None) -> dict:  # noqa: ANN001
    args = ["refine", str(ws.data), "--budget", "0", "--runs-dir", str(ws.runs), "--run-id", "cfg", "--quiet",
            "--prompts", str(ws.prompts)]
    if config is not None:
        (ws.tmp / "c.yaml").write_text(yaml.safe_dump(config))
        args += ["--config", str(ws.tmp / "c.yaml")]
    proc = cli(args, {**ws.env, **env_extra}, ws.tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((ws.runs / "cfg" / "settings.json").read_text())["settings"]["roles"]


@pytest.mark.parametrize(("env", "config", "role", "field", "value"), [
    ({"REFINELAB_ROLES__WRITER__ENDPOINT": "http://127.0.0.1:9/v1"}, None, "writer", "endpoint",
     "http://127.0.0.1:9/v1"),
    ({"REFINELAB_ROLES__WRITER__MODEL": "other"}, None, "writer", "model", "other"),
    ({"REFINELAB_ROLES__WRITER__TIMEOUT_S": "12"}, None, "writer", "timeout_s", 12.0),
    ({}, {"roles": {"writer": {"endpoint": "http://127.0.0.1:9/v1"}}}, "writer", "endpoint", "http://127.0.0.1:9/v1"),
    ({}, {"roles": {"writer": {"concurrency": 3}}}, "writer", "concurrency", 3),
])
def test_one_field_override_keeps_the_role_defaults(ws, env, config, role, field, value) -> None:  # noqa: ANN001
    roles = _saved_roles(ws, env, config)
    assert roles[role][field] == value
    for key, default in WRITER_DEFAULTS.items():
        assert roles["writer"][key] == default, (key, roles["writer"])
    for key, default in JUDGE_DEFAULTS.items():
        assert roles["judge"][key] == default and roles["validator"][key] == default


def test_file_and_environment_layer_per_field(ws) -> None:
    roles = _saved_roles(ws, {"REFINELAB_ROLES__WRITER__ENDPOINT": "http://127.0.0.1:9/v1"},
                         {"roles": {"writer": {"temperature": 0.2}, "judge": {"max_tokens": 77}}})
    assert roles["writer"]["temperature"] == 0.2 and roles["writer"]["max_tokens"] == 500
    assert roles["writer"]["endpoint"] == "http://127.0.0.1:9/v1"
    assert roles["judge"]["max_tokens"] == 77 and roles["judge"]["temperature"] == 0.0


@pytest.mark.parametrize(("extra", "env", "fragment"), [
    (["--targets", "missing.yaml"], {}, "missing.yaml"),
    (["--targets", "BAD"], {}, "BAD"),
    (["--budget", "-5"], {}, "budget"),
    (["--config", "CONF"], {}, "CONF"),
    ([], {"REFINELAB_ROLES__WRITER__TEMPERATURE": "hot"}, "temperature"),
    ([], {"REFINELAB_ROLES__WRITER__NOPE": "1"}, "nope"),
    ([], {"REFINELAB_ROLES__WRITER__ENDPOINT": "ftp://x"}, "endpoint"),
    ([], {"REFINELAB_MAX_CONSECUTIVE_FAILURES": "0"}, "max_consecutive_failures"),
])
def test_bad_input_exits_2(ws, extra: list[str], env: dict[str, str], fragment: str) -> None:
    (ws.tmp / "BAD").write_text("coverage: {STEM: {recall: -3}}\nbogus: [1\n")
    (ws.tmp / "CONF").write_text("roles:\n  writer:\n    temperature: 9\n")
    args = ["refine", str(ws.data), "--budget", "100", "--runs-dir", str(ws.runs), "--run-id", "bad", "--quiet"]
    if "--budget" in extra:
        args[args.index("--budget") + 1] = extra[1]
        extra = []
    proc = cli(args + extra, {**ws.env, **env}, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert fragment.lower() in one_line_error(proc).lower() or fragment.lower() in proc.stderr.lower()
    assert not (ws.runs / "bad").exists()
