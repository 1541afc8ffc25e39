"""The CLI as a newcomer meets it, in real subprocesses: --version, python -m refinelab, one --endpoint/--model
for every role (or ROLE=VALUE), OPENAI_BASE_URL, a headered CSV and --columns, plain progress in a log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from refinelab import __version__
from tests.support.sec_helpers import KEY_ENV, base_env, endpoint, one_line_error, write_prompts

ROWS = [(f"Newcomer question {i}: which option is marked (key A)?", [f"alpha {i}", f"beta {i}", f"gamma {i}"],
         "A", ["history", "philosophy"][i % 2]) for i in range(6)]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "refinelab", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _csv(path: Path, header: str) -> Path:
    path.write_text(header + "\n" + "".join(f"\"{q}\",{','.join(c)},{a},{s}\n" for q, c, a, s in ROWS))
    return path


def test_version_flag_and_module_entry_point(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    flag = _run(["--version"], env, tmp_path)
    assert flag.returncode == 0 and flag.stdout.strip() == f"refinelab {__version__}"
    helped = _run(["--help"], env, tmp_path)
    assert helped.returncode == 0 and "refine" in helped.stdout and "--version" in helped.stdout


def test_module_entry_point_ignores_libraries_shadowed_in_the_working_folder(tmp_path: Path) -> None:
    """`python -m refinelab` run in a folder of data from elsewhere: a `typer.py` or `yaml.py` there must not
    run in place of the library (Python puts the working folder first on the path for `-m`)."""
    env = base_env(tmp_path)
    for name in ("typer", "yaml", "rich"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(tmp_path / 'ran')!r}, 'a').write('{name} ')\nraise SystemExit('shadowed {name} ran')\n")
    done = _run(["--version"], env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"refinelab {__version__}", done.stderr
    assert not (tmp_path / "ran").exists()


def test_one_flag_per_field_sets_every_role_and_the_run_finishes(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    data = _csv(tmp_path / "quiz.csv", "Stem,Opt1,Opt2,Opt3,Key,Topic")
    prompts = write_prompts(tmp_path / "prompts")
    with endpoint() as server:
        proc = _run(["refine", str(data), "--budget", "20000", "--runs-dir", str(tmp_path / "runs"), "--run-id", "nc",
                     "--columns", "question=Stem,choices=Opt1,Opt2,Opt3,answer=Key,subject=Topic",
                     "--endpoint", server.url, "--model", "scripted", "--model", "writer=scripted-writer",
                     "--api-key-env", KEY_ENV, "--rounds", "1", "--prompts", str(prompts), "--no-cache",
                     "--operations", "remove,fix"], env, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert server.requests > 0  # every role went to the loopback endpoint; none to the embedded model
    roles = json.loads((tmp_path / "runs" / "nc" / "settings.json").read_text())["settings"]["roles"]
    assert {r["endpoint"] for r in roles.values()} == {server.url}
    assert {r["api_key_env"] for r in roles.values()} == {KEY_ENV}
    assert (roles["judge"]["model"], roles["validator"]["model"], roles["writer"]["model"]) == (
        "scripted", "scripted", "scripted-writer")
    report = json.loads((tmp_path / "runs" / "nc" / "report.json").read_text())
    assert report["input_items"] == len(ROWS)
    # stdout and stderr are pipes here: progress comes as plain lines, not an invisible live bar
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert lines and any("tokens" in line for line in lines), proc.stderr[-2000:]
    assert "\x1b[" not in proc.stderr
    # the summary reads as figures, not Python reprs: JSD to 3 decimals, items by status, tokens with commas
    assert re.search(r"^coverage JSD (\d\.\d{3}|n/a) -> (\d\.\d{3}|n/a); difficulty JSD", proc.stdout, re.M), proc.stdout
    assert re.search(r"^items: kept \d+", proc.stdout, re.M) and "{" not in proc.stdout, proc.stdout
    assert re.search(r"of 20,000 tokens", proc.stdout), proc.stdout


def test_decontaminate_flag_removes_what_the_reference_holds_and_says_so(tmp_path: Path) -> None:
    """`refine --decontaminate REF`: the notice before profiling, the removals in report.json, a summary line."""
    env = base_env(tmp_path)
    data = _csv(tmp_path / "quiz.csv", "question,A,B,C,answer,subject")
    reference = tmp_path / "bench.jsonl"
    reference.write_text("".join(json.dumps({"id": f"bench-{i}", "question": q, "choices": list(reversed(c)),
                                             "answer": 2}) + "\n" for i, (q, c, _a, _s) in enumerate(ROWS[:2])))
    prompts = write_prompts(tmp_path / "prompts")
    with endpoint() as server:
        proc = _run(["refine", str(data), "--budget", "20000", "--runs-dir", str(tmp_path / "runs"), "--run-id", "dc",
                     "--endpoint", server.url, "--model", "scripted", "--api-key-env", KEY_ENV, "--rounds", "1",
                     "--prompts", str(prompts), "--no-cache", "--operations", "fix", "--decontaminate", str(reference)],
                    env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"note: decontamination: 2 of {len(ROWS)} items are in {reference} (2 exact)" in proc.stderr, proc.stderr
    assert f"decontamination: 2 of {len(ROWS)} input items were found in {reference} and removed" in " ".join(
        proc.stdout.split()), proc.stdout
    report = json.loads((tmp_path / "runs" / "dc" / "report.json").read_text())
    assert report["decontamination"]["found"] == 2 and report["items_by_status"]["removed"] == 2


def test_openai_base_url_is_honoured(tmp_path: Path) -> None:
    env = base_env(tmp_path) | {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    data = _csv(tmp_path / "quiz.csv", "question,A,B,C,answer,subject")  # a headered CSV, columns guessed
    proc = _run(["refine", str(data), "--budget", "0", "--runs-dir", str(tmp_path / "runs"), "--run-id", "oa",
                 "--quiet", "--prompts", str(write_prompts(tmp_path / "prompts"))], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "runs" / "oa" / "settings.json").read_text())["settings"]["roles"]
    assert {r["endpoint"] for r in saved.values()} == {"http://127.0.0.1:9/v1"}


def test_bad_columns_and_unmappable_header_exit_2(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    data = _csv(tmp_path / "quiz.csv", "Stem,Opt1,Opt2,Opt3,Key,Topic")
    common = ["--budget", "0", "--runs-dir", str(tmp_path / "runs"), "--run-id", "bad", "--quiet"]
    odd = _csv(tmp_path / "odd.csv", "Prompt_text,First,Second,Third,Solution,Topic")  # a header we cannot map
    unmapped = _run(["refine", str(odd), *common], env, tmp_path)
    assert unmapped.returncode == 2 and "--columns" in one_line_error(unmapped)
    assert "odd.csv, row 1" in one_line_error(unmapped)
    for columns, fragment in (("question=Stem,colour=red", "colour"), ("question=Stem,choices=Opt1,Opt2", "answer"),
                              ("question=Nope,choices=Opt1,Opt2,answer=Key", "Nope")):
        proc = _run(["refine", str(data), "--columns", columns, *common], env, tmp_path)
        assert proc.returncode == 2 and fragment in one_line_error(proc), proc.stderr[-2000:]
    bad_model = _run(["refine", str(data), "--endpoint", "ftp://x", *common], env, tmp_path)
    assert bad_model.returncode == 2 and "endpoint" in one_line_error(bad_model)
    bad_skill = _run(["refine", str(data), "--columns", "question=Stem,choices=Opt1,Opt2,Opt3,answer=Key",
                      "--skill-method", "vibes", *common], env, tmp_path)
    assert bad_skill.returncode == 2 and "--skill-method" in one_line_error(bad_skill), bad_skill.stderr[-2000:]
    for flag, value in (("--rounds", "0"), ("--mode", "vibes")):  # named as typed, not as the settings field
        proc = _run(["refine", str(data), flag, value, *common], env, tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {flag} {value}:"), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "bad").exists()


def test_the_summary_counts_a_replayed_profile_as_profiling() -> None:
    """A re-run replays its profile from the response cache: it pays nothing, but the profile still takes
    its share of the budget, and the summary says so (it had left the share out as 0 paid tokens)."""
    from refinelab.api.runs import RunResult

    def _profile_share(report: dict) -> str:
        return RunResult(run_id="r", run_dir=Path("r"), report=report).summary().profile_share()

    replayed = {"ledger": {"spent": 0, "replayed": 1000, "by_node": {},
                           "replayed_by_node": {"profile": 400, "refine": 600}}}
    assert _profile_share(replayed) == " (profiling 400, 40%)"
    paid = {"ledger": {"spent": 1000, "replayed": 0, "by_node": {"profile": {"tokens": 250, "calls": 3}}}}
    assert _profile_share(paid) == " (profiling 250, 25%)"
    assert _profile_share({"ledger": {"spent": 0, "replayed": 0}}) == ""
