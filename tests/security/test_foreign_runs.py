"""Run folders from elsewhere: settings.json decides where a resume sends requests and API keys, so
a resume only trusts settings this user's RefineLab sealed; anything else needs --trust-run."""

from __future__ import annotations

import json
import shutil

from tests.support.sec_helpers import (
    base_env,
    cli,
    endpoint,
    free_port,
    lock_holder,
    one_line_error,
    refine_args,
    write_config,
)


def _stopped(ws, port: int) -> None:  # noqa: ANN001
    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{port}/v1", ws.runs)
    assert cli(refine_args(ws.data, config, ws.prompts, "r"), ws.env, ws.tmp).returncode == 3


def test_edited_endpoint_is_refused_without_trust(ws) -> None:
    port = free_port()
    _stopped(ws, port)
    with endpoint() as evil:
        path = ws.runs / "r" / "settings.json"
        data = json.loads(path.read_text())
        data["settings"]["roles"]["judge"]["endpoint"] = evil.url  # where the key would go
        path.write_text(json.dumps(data))
        proc = cli(["resume", "r", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
        assert proc.returncode == 2 and evil.requests == 0
        line = one_line_error(proc)
        assert "settings.json" in line and evil.url in line and "--trust-run" in line


def test_folder_from_another_user_needs_trust_and_then_resumes(ws, tmp_path_factory) -> None:  # noqa: ANN001
    port = free_port()
    _stopped(ws, port)
    other = tmp_path_factory.mktemp("other-user")
    env = base_env(other)  # another HOME: another seal key
    shutil.copytree(ws.runs, other / "runs")
    with endpoint(port=port) as ep:
        refused = cli(["resume", "r", "--runs-dir", str(other / "runs")], env, other)
        assert refused.returncode == 2 and ep.requests == 0
        trusted = cli(["resume", "r", "--runs-dir", str(other / "runs"), "--trust-run", "--quiet"], env, other)
        assert trusted.returncode == 0, trusted.stderr[-2000:]
        assert ep.requests > 0
    assert (other / "runs" / "r" / "report.json").exists()


def test_missing_seal_is_untrusted(ws) -> None:
    port = free_port()
    _stopped(ws, port)
    (ws.runs / "r" / "settings.seal").unlink()
    proc = cli(["resume", "r", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
    assert proc.returncode == 2 and "--trust-run" in one_line_error(proc)


def test_refine_on_a_run_in_use_names_the_holder(ws) -> None:
    port = free_port()
    _stopped(ws, port)
    with lock_holder(ws.runs / "r", 60) as holder:
        proc = cli(refine_args(ws.data, ws.tmp / "c.yaml", ws.prompts, "r"), ws.env, ws.tmp)
        assert proc.returncode == 4 and f"process {holder.pid}" in one_line_error(proc)
    proc = cli(refine_args(ws.data, ws.tmp / "c.yaml", ws.prompts, "r"), ws.env, ws.tmp)
    assert proc.returncode == 2 and "already exists" in one_line_error(proc)
