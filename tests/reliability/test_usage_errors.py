"""A usage error (a misspelt flag, a missing argument or option value, a bad number, an extra argument, an
unknown command) is one line on stderr naming the command and where its help is, exit code 2, like every
other bad input, instead of Typer's usage line, hint and boxed message. Help, `no_args_is_help`, a
command's own exit code and the exceptions a command raises are as Typer leaves them (`cli.usage.run_app`,
which `cli.app.main` calls)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from refinelab import __version__
from refinelab.cli.app import app
from refinelab.cli.usage import run_app, usage_line
from refinelab.errors import DataError


def _run(args: list[str], capsys: pytest.CaptureFixture[str], target: typer.Typer = app) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        run_app(target, args, prog_name="refinelab")
    captured = capsys.readouterr()
    return ended.value.code, captured.out, captured.err  # type: ignore[return-value]


# (arguments, the command the line names, what it says)
CASES = [
    (["refine", "--bogus"], "refinelab refine", "no such option: --bogus (possible options: --columns, --rounds)"),
    (["refine", "x", "--budgt", "3"], "refinelab refine", "no such option: --budgt (possible options: --budget)"),
    (["refine"], "refinelab refine", "missing argument 'data'"),
    (["refine", "x", "--budget"], "refinelab refine", "option '--budget' requires an argument"),
    (["refine", "x", "--budget", "abc"], "refinelab refine", "invalid value for '--budget': Input should be a valid integer"),
    (["refine", "x", "--budget", "3", "--limit", "0"], "refinelab refine", "invalid value for '--limit'"),
    (["refine", "x", "--allow-shrink=3"], "refinelab refine", "option '--allow-shrink' does not take a value"),
    (["refine", "x", "y", "--budget", "3"], "refinelab refine", "got unexpected extra argument(s) (y)"),
    (["--bogus"], "refinelab", "no such option: --bogus"),
    (["nosuch"], "refinelab", "no such command 'nosuch'"),
    (["versio"], "refinelab", "no such command 'versio' (did you mean 'version'?)"),
    (["data", "validate"], "refinelab data validate", "missing argument 'path'"),
    (["data", "bogus"], "refinelab data", "no such command 'bogus'"),
    (["data", "overlap", "a", "--threshold", "x"], "refinelab data overlap", "invalid value for '--threshold'"),
    (["model", "serve", "--parallel", "x"], "refinelab model serve", "invalid value for '--parallel'"),
    (["packs", "show"], "refinelab packs show", "missing argument 'name'"),
    (["sandbox", "run", "--bogus"], "refinelab sandbox run", "no such option: --bogus"),
    (["trace", "r", "--depth"], "refinelab trace", "option '--depth' requires an argument"),
    (["refine", "--bo\x1bgus"], "refinelab refine", "no such option: --bo\\x1bgus"),
]


@pytest.mark.parametrize(("args", "command", "says"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_usage_error_is_one_line_naming_the_command_and_its_help(
        args: list[str], command: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(args, capsys)
    assert code == 2 and out == "", (code, out, err)
    assert len(err.splitlines()) == 1 and "\x1b" not in err, err
    assert err.startswith(f"error: {command}: {says}"), err
    assert err.rstrip("\n").endswith(f"; see '{command} --help'"), err


def test_the_exact_line_for_a_misspelt_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["refine", "--bogus"], capsys)[2] == (
        "error: refinelab refine: no such option: --bogus (possible options: --columns, --rounds); "
        "see 'refinelab refine --help'\n")


@pytest.mark.parametrize("args", [[], ["model"], ["data"], ["packs"], ["sandbox"]])
def test_a_group_called_without_arguments_still_prints_its_help(args: list[str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`no_args_is_help`: the help on stdout and exit code 2, as Typer printed it."""
    code, out, err = _run(args, capsys)
    assert code == 2 and err == "", err
    assert " ".join(["Usage: refinelab", *args]) in out and "Commands" in out


@pytest.mark.parametrize("args", [["--help"], ["refine", "--help"], ["data", "validate", "--help"],
                                  ["sandbox", "--help"]])
def test_help_is_as_it_was(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(args, capsys)
    assert code == 0 and err == "" and " ".join(["Usage: refinelab", *args[:-1]]) in out


def test_the_version_and_a_successful_command_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--version"], ["version"]):
        assert _run(args, capsys) == (0, f"refinelab {__version__}\n", "")


def _probe_app(raised: BaseException) -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    def go(n: int = 1) -> None:
        raise raised

    @probe.command()
    def other() -> None:
        """A second command, so `go` is a subcommand as in the real app."""

    return probe


def test_what_a_command_raises_goes_on_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    """An Exit keeps its code (`cli.common.fail`), Ctrl-C is 130, end of input at a prompt is Typer's
    "Aborted." and 1, and any other exception reaches the caller (`cli.app.main` prints it as one line)."""
    assert _run(["go"], capsys, _probe_app(typer.Exit(4))) == (4, "", "")
    assert _run(["go"], capsys, _probe_app(KeyboardInterrupt()))[0] == 130
    code, _, err = _run(["go"], capsys, _probe_app(EOFError()))
    assert code == 1 and "Aborted" in err
    with pytest.raises(DataError):
        run_app(_probe_app(DataError("d.jsonl", 3, "answer", "out of range")), ["go"], prog_name="refinelab")
    with pytest.raises(ValueError, match="boom"):
        run_app(_probe_app(ValueError("boom")), ["go"], prog_name="refinelab")
    code, _, err = _run(["go", "--n", "x"], capsys, _probe_app(typer.Exit(0)))
    assert code == 2 and err.startswith("error: refinelab go: invalid value for '--n'"), err


def test_a_bad_parameter_a_command_raises_itself_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["go"], capsys, _probe_app(typer.BadParameter("must be odd")))
    assert code == 2 and err == "error: refinelab go: invalid value: must be odd; see 'refinelab go --help'\n", err


def test_the_line_in_words() -> None:
    assert usage_line("No such command 'x'. Did you mean 'y'?", "refinelab", "--help") == (
        "refinelab: no such command 'x' (did you mean 'y'?); see 'refinelab --help'")
    assert usage_line("No such option: --a (Did you mean one of: --ab, --ac?)", "r c") == (
        "r c: no such option: --a (did you mean one of: --ab, --ac?)")
    assert usage_line("'x' is not\n  a thing.") == "'x' is not a thing"
    assert usage_line("URL must not be empty.") == "URL must not be empty"


def test_the_console_script_path_prints_one_line() -> None:
    """In a process of its own, reading the command line as the `refinelab` script does."""
    code = ("import sys; sys.argv[0] = 'refinelab'; from refinelab.cli.app import app; "
            "from refinelab.cli.usage import run_app; run_app(app)")
    proc = subprocess.run([sys.executable, "-c", code, "data", "validate", "--format"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == ("error: refinelab data validate: option '--format' requires an argument; "
                           "see 'refinelab data validate --help'\n")
