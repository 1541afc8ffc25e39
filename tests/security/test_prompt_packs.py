"""Class 1: a prompt pack is data. Templates render in an immutable sandbox with only the variables we
pass; anything reaching for Python fails before the run folder exists, naming the file (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sec_helpers import cli, one_line_error, refine_args, write_config

MARK = "PWNED"
ATTACKS = {
    "cycler globals": "{{ cycler.__init__.__globals__.os.system('touch %(flag)s') }}",
    "joiner globals": "{{ joiner.__init__.__globals__.os.popen('touch %(flag)s').read() }}",
    "lipsum globals": "{{ lipsum.__globals__['os'].system('touch %(flag)s') }}",
    "namespace via self": "{{ self.__init__.__globals__.__builtins__.open('%(flag)s', 'w').write('x') }}",
    "item class mro": "{{ item.__class__.__mro__[1].__subclasses__() }}",
    "attr filter": "{{ (item|attr('__class__')|attr('__mro__')) }}",
    "string class": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subscript dunder": "{{ item['__class__'] }}",
    "format string": "{{ '{0.__class__.__init__.__globals__}'.format(item) }}",
    "pydantic parse_file": "{{ item.parse_file('/etc/passwd') }}",
    "pydantic model_construct": "{{ item.model_construct() }}",
    "list mutation": "{{ item.choices.append('%(flag)s') }}",
    "huge string": "{{ 'x' * 10 ** 9 }}",
    "huge power": "{{ 9 ** 99999999 }}",
    "include a file": "{% include '/etc/passwd' %}",
    "import": "{% import 'os' as os %}",
    "range global": "{% for i in range(10) %}{{ i }}{% endfor %}",
}


IN_PACKS = ["cycler globals", "pydantic parse_file", "format string", "list mutation", "include a file",
            "range global"]
CASES = [(name, "prompt override") for name in sorted(ATTACKS)] + [(name, "pack prompts") for name in IN_PACKS]


@pytest.mark.parametrize(("name", "where"), CASES)
def test_template_attack_is_refused_before_the_run(ws, name: str, where: str) -> None:
    flag = ws.tmp / MARK
    template = ATTACKS[name].replace("%(flag)s", str(flag))
    if where == "prompt override":
        bad = ws.prompts / "answer_item.yaml"
        bad.write_text("user: |\n  " + template + "\n")
    else:
        bad = ws.prompts / "packs" / "general.yaml"
        bad.write_text("include: default\nvalidator: answer\nprompts:\n  answer_item:\n    user: |\n      "
                       + template + "\n")
    config = write_config(ws.tmp / "c.yaml", "http://127.0.0.1:9/v1", ws.runs)
    proc = cli(refine_args(ws.data, config, ws.prompts, "attack", budget=0), ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_line_error(proc)
    assert str(bad.name) in line and ("template" in line or "YAML" in line), line
    assert not flag.exists(), "template code ran on the host"
    assert not (ws.runs / "attack").exists(), "a refused prompt pack left a run folder"


@pytest.mark.parametrize("pack", [
    "include: ../../../../etc/hosts\n",
    "include: /etc/passwd\n",
    "prompts_dir: /etc\n",
    "prompts_dir: ../../../..\n",
])
def test_pack_cannot_reach_outside_its_folder(ws, pack: str) -> None:
    (ws.prompts / "packs" / "general.yaml").write_text(pack)
    config = write_config(ws.tmp / "c.yaml", "http://127.0.0.1:9/v1", ws.runs)
    proc = cli(refine_args(ws.data, config, ws.prompts, "escape", budget=0), ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "general.yaml" in one_line_error(proc) or "pack name" in one_line_error(proc)
    assert not (ws.runs / "escape").exists()


def test_symlinked_prompt_file_outside_the_folder_is_refused(ws) -> None:
    secret = ws.tmp / "private.yaml"
    secret.write_text("user: 'my private notes'\n")
    (ws.prompts / "answer_item.yaml").symlink_to(secret)
    proc = cli(["packs", "show", "general", "--prompts", str(ws.prompts)], ws.env, ws.tmp)
    assert proc.returncode == 2
    assert "outside" in one_line_error(proc)


def test_plain_templates_still_render(ws) -> None:
    (ws.prompts / "answer_item.yaml").write_text(
        "user: |\n  {{ item.render() }} {{ item.question | upper }} {{ item.choices | join(', ') }}"
        " {{ item.answer_letter }} {% for c in item.choices %}[{{ loop.index }}]{% endfor %}\n")
    proc = cli(["packs", "show", "general", "--prompts", str(ws.prompts)], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr
    from refinelab.prompts.loader import PromptLibrary
    from refinelab.schema import QAItem

    item = QAItem(id="a", question="Q?", choices=["x", "y"], answer=1)
    text = PromptLibrary(Path(ws.prompts)).pack("general").messages("answer_item", item=item)[-1]["content"]
    assert "Q?" in text and "x, y" in text and "[2]" in text and "B" in text
