"""Hostile YAML aliases and numbers: an alias bomb or a self-referring alias in any YAML the project reads
(prompt packs, options files, settings), and infinite or absurd numbers in run options, are one-line
errors naming the file (and field) before anything runs, never an endless print or an unresumable run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from refinelab import safeload
from refinelab.agents.options import RunOptions, read_options_file
from refinelab.errors import ConfigError, DataError
from refinelab.metrics.error_checks import ErrorModel
from refinelab.prompts.loader import PromptError, PromptLibrary
from refinelab.safeload import MAX_DEPTH, load_yaml
from tests.support.sec_helpers import base_env, cli, one_line_error


def _bomb(levels: int = 9, width: int = 10) -> str:
    """`l0` is `width` scalars, each next level `width` aliases of the one before: width**levels values."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"bomb: *l{levels - 1}", ""])


def _alias_chain(length: int = 5000) -> str:
    """Each mapping holds an alias of the one before: flat text, `length` levels deep once expanded."""
    lines = ["a0: &a0 x"] + [f"a{i}: &a{i} {{k: *a{i - 1}}}" for i in range(1, length)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- aliases (safeload)

def test_alias_bomb_is_refused_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match=r"^packs/x\.yaml: YAML aliases expand it to more than [\d,]+ characters$"):
        load_yaml(_bomb(), "packs/x.yaml")
    assert time.monotonic() - start < 5


def test_wide_scalar_repeated_by_aliases_is_refused() -> None:
    """Few values, but each alias repeats a long text: the expansion counts characters, not only values."""
    text = f"a: &a {'y' * 20_000}\nb: [{', '.join(['*a'] * 200)}]\n"
    with pytest.raises(DataError, match="YAML aliases expand it"):
        load_yaml(text, "o.yaml")


def test_deep_alias_chain_is_a_named_depth_error() -> None:
    with pytest.raises(DataError, match=rf"^deep\.yaml: YAML nested deeper than {MAX_DEPTH} levels$"):
        load_yaml(_alias_chain(), "deep.yaml")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {k: [1, *a]}\n"])
def test_self_referring_alias_is_refused(text: str) -> None:
    with pytest.raises(DataError, match=r"^r\.yaml: YAML alias \*a refers to a value that contains it$"):
        load_yaml(text, "r.yaml")


def test_modest_aliases_and_merge_keys_still_load() -> None:
    text = "base: &base {temperature: 0.2, tags: [a, b]}\njudge:\n  <<: *base\n  model: m\nwriter: *base\n"
    assert load_yaml(text, "s.yaml") == {
        "base": {"temperature": 0.2, "tags": ["a", "b"]},
        "judge": {"temperature": 0.2, "tags": ["a", "b"], "model": "m"},
        "writer": {"temperature": 0.2, "tags": ["a", "b"]},
    }
    assert load_yaml(_bomb(levels=3), "small.yaml")["bomb"][9][9] == ["x"] * 10  # 1,000 values: fine


def test_large_alias_free_document_is_not_mistaken_for_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The allowance grows with the text: a document without aliases is never refused for its size alone
    (the limit lowered so that a small text stands for a large one)."""
    monkeypatch.setattr(safeload, "MAX_YAML_EXPANSION", 100)
    text = "items:\n" + "".join(f"  - {'z' * 50}{i}\n" for i in range(200))
    assert len(load_yaml(text, "big.yaml")["items"]) == 200
    with pytest.raises(DataError, match=r"big\.yaml: YAML aliases expand it to more than"):
        load_yaml(f"{text}first: &first {'w' * 400}\ncopy: [{', '.join(['*first'] * 60)}]\n", "big.yaml")


def test_control_characters_stay_a_one_line_error() -> None:
    """The bounded loader's reader refuses them as it is built: still a DataError naming the file."""
    with pytest.raises(DataError, match=r"^c\.yaml: not valid YAML: unacceptable character #x0000"):
        load_yaml("\x00\x01 binary", "c.yaml")


def _pack_dir(tmp_path: Path, body: str) -> Path:
    prompts = tmp_path / "prompts"
    (prompts / "packs").mkdir(parents=True)
    (prompts / "packs" / "general.yaml").write_text("include: default\ndescription: hostile\n" + body,
                                                    encoding="utf-8")
    return prompts


@pytest.mark.parametrize(("kind", "problem"), [("bomb", "YAML aliases expand it"),
                                               ("chain", "YAML nested deeper than")])
def test_packs_show_refuses_a_hostile_pack_in_one_line(tmp_path: Path, kind: str, problem: str) -> None:
    """Before: `packs show` printed 10**9 expanded options for ever, or a RecursionError naming no file."""
    prompts = _pack_dir(tmp_path, _bomb() if kind == "bomb" else _alias_chain())
    proc = cli(["packs", "show", "general", "--prompts", str(prompts)], base_env(tmp_path), tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_line_error(proc)
    assert str(prompts / "packs" / "general.yaml") in line and problem in line


def test_options_file_and_settings_file_refuse_an_alias_bomb(tmp_path: Path) -> None:
    from refinelab.config import load_settings

    options = tmp_path / "opts.yaml"
    options.write_text(_bomb(), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"opts\.yaml: YAML aliases expand it"):
        read_options_file(options)
    settings = tmp_path / "settings.yaml"
    settings.write_text(_bomb(), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"settings\.yaml: YAML aliases expand it"):
        load_settings(settings)


# ------------------------------------------------------------------------------------ pack options

def test_pack_options_must_be_plain_json_data(tmp_path: Path) -> None:
    prompts = _pack_dir(tmp_path, "validator: rag\nblob: !!binary /w==\n")  # 0xff: bytes that are not text
    with pytest.raises(PromptError, match=r"general\.yaml: pack options: blob: bytes that are not UTF-8 text"):
        PromptLibrary(prompts).pack("general")


def test_pack_options_are_made_plain(tmp_path: Path) -> None:
    prompts = _pack_dir(tmp_path, "validator: rag\nsince: 2024-01-02\nkinds: !!set {a: null}\n")
    options = PromptLibrary(prompts).pack("general").options
    assert options == {"validator": "rag", "since": "2024-01-02", "kinds": ["a"]}


# --------------------------------------------------------------------------------- hostile numbers

HOSTILE = [
    ("pilot_share: .inf", "pilot_share", "finite number"),
    ("pilot_share: .nan", "pilot_share", "finite number"),
    ("elo_bootstrap: 99999999999999999999", "elo_bootstrap", "less than or equal to 100000"),
    ("pilot_per_op: 1000000000000", "pilot_per_op", "less than or equal to 1000"),
    ("elo_extra_rounds: 1000000000000", "elo_extra_rounds", "less than or equal to 1000"),
    ("min_size: 123456789012345678901234567890", "min_size", "less than or equal to 10000000"),
    ("error_model: {panel_weight: .inf}", "error_model.panel_weight", "finite number"),
    ("error_model: {deterministic_weight: 1.0e+300}", "error_model.deterministic_weight", "less than or equal to 100"),
]


@pytest.mark.parametrize(("line", "field", "problem"), HOSTILE)
def test_options_file_refuses_hostile_numbers(tmp_path: Path, line: str, field: str, problem: str) -> None:
    path = tmp_path / "opts.yaml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_options_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, field '{field}': ") and problem in message and "\n" not in message


def test_json_options_file_refuses_a_huge_count(tmp_path: Path) -> None:
    path = tmp_path / "opts.json"
    path.write_text('{"elo_bootstrap": 99999999999999999999}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"opts\.json, field 'elo_bootstrap'"):
        read_options_file(path)


def test_real_values_stay_accepted() -> None:
    options = RunOptions(pilot_share=1.0, pilot_per_op=20, elo_bootstrap=2000, elo_extra_rounds=50,
                         min_size=100_000, error_model=ErrorModel(panel_weight=0.5, deterministic_weight=2.0))
    assert options.pilot_share == 1.0 and options.error_model.panel_weight == 0.5


def test_settings_json_is_never_written_with_infinity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-finite option that slipped past validation (model_construct) is refused where settings.json is
    written, so no run is left that `resume` cannot read; the run folder is not left behind either."""
    from refinelab.api.runs import start_run_folder
    from refinelab.config import load_settings
    from refinelab.io import from_records

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runs = tmp_path / "runs"
    settings = load_settings(overrides={"runs_dir": str(runs)})
    data = from_records([{"question": "Which is even?", "choices": ["3", "4"], "answer": 1}])
    options = RunOptions.model_construct(**{**RunOptions().__dict__, "pilot_share": float("inf")})
    with pytest.raises(DataError, match=r"settings\.json: cannot be written: .*not a finite number") as caught:
        start_run_folder(data, budget=100, targets=None, settings=settings, run_id="r", options=options,
                         hooks=None, prompts_dir=None)
    assert "\n" not in str(caught.value)
    assert not (runs / "r").exists()
