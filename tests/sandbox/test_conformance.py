"""One contract, every backend: local cold, local warm, and E2B (real client -> loopback fake)."""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest

from refinelab.tools.sandbox_base import CodeSandbox, ExecResult


def test_is_a_code_sandbox(sandbox: CodeSandbox) -> None:
    assert isinstance(sandbox, CodeSandbox)


def test_stdout_stderr_and_result(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n6 * 7")
    assert res.stdout == "hello\n"
    assert res.stderr == "oops\n"
    assert res.result_text == "42"
    assert res.error is None and not res.timed_out and not res.output_truncated
    assert res.ok
    assert res.duration_s > 0


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = 3", None),
        ("None", None),
        ("print(1)", None),
        ("'a' + 'b'", "'ab'"),
        ("from fractions import Fraction\nsum(Fraction(1, n) for n in range(1, 5))", "Fraction(25, 12)"),
        ("import math\nround(math.comb(10, 3) / 7, 4)", "17.1429"),
        ("[i * i for i in range(4)]", "[0, 1, 4, 9]"),
    ],
)
def test_last_expression_is_the_result(sandbox: CodeSandbox, code: str, expected: str | None) -> None:
    assert sandbox.execute(code).result_text == expected


def test_exception_becomes_error(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("print('before')\ndef f():\n    return 1 / 0\nf()")
    assert res.stdout == "before\n"
    assert res.error is not None
    assert res.error.name == "ZeroDivisionError"
    assert res.error.value == "division by zero"
    assert "ZeroDivisionError" in res.error.traceback and "line 3" in res.error.traceback
    assert res.result_text is None and not res.ok


def test_syntax_error(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("def broken(:\n  pass")
    assert res.error is not None and res.error.name == "SyntaxError"


def test_unicode_round_trip(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("print('héllo ✓ 漢字')\n'ü'")
    assert res.stdout == "héllo ✓ 漢字\n"
    assert res.result_text == "'ü'"


def test_snippets_do_not_share_state(sandbox: CodeSandbox) -> None:
    sandbox.execute("leaked_value = 41\nopen('/tmp/leak.txt', 'w').write('x')")
    res = sandbox.execute("import os\nprint(os.path.exists('/tmp/leak.txt'))\nleaked_value")
    assert res.error is not None and res.error.name == "NameError"


def test_timeout(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("print('start', flush=True)\nwhile True:\n    pass", timeout_s=1.0)
    assert res.timed_out and not res.ok
    assert res.duration_s < 4.5  # E2B's client-side timeout fires at about twice the request
    # the backend is usable again afterwards
    assert sandbox.execute("1 + 1").result_text == "2"


def test_output_is_capped(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("for _ in range(200):\n    print('x' * 1000)")
    assert res.output_truncated and not res.ok
    assert 0 < len(res.stdout.encode()) <= sandbox.limits.output_bytes
    assert sandbox.execute("1 + 1").result_text == "2"


def test_memory_is_limited(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("x = bytearray(8 * 1024 ** 3)")
    assert res.error is not None and res.error.name == "MemoryError"


def test_large_program(sandbox: CodeSandbox) -> None:
    code = "total = 0\n" + "".join(f"total += {i}\n" for i in range(20000)) + "total"
    assert sandbox.execute(code).result_text == str(sum(range(20000)))


def test_no_network(sandbox: CodeSandbox) -> None:
    code = (
        "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n    r = 'connected'\n"
        "except OSError as e:\n    r = 'blocked'\nr"
    )
    assert sandbox.execute(code).result_text == "'blocked'"


@pytest.mark.skipif(importlib.util.find_spec("sympy") is None, reason="sympy not installed on the host")
def test_pot_libraries(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("import sympy\nx = sympy.symbols('x')\nsorted(sympy.solve(x**2 - 4, x))", timeout_s=30)
    assert res.result_text == "[-2, 2]", res


def test_result_json_round_trip(sandbox: CodeSandbox) -> None:
    res = sandbox.execute("1/0")
    again = ExecResult.from_dict(json.loads(res.to_json()))
    assert again == res
    assert set(res.to_dict()) == {
        "stdout", "stderr", "result_text", "error", "exit_code", "timed_out", "output_truncated", "duration_s",
    }  # fmt: skip


def test_concurrent_callers(sandbox: CodeSandbox) -> None:
    out: dict[int, str | None] = {}

    def work(i: int) -> None:
        out[i] = sandbox.execute(f"{i} * 2").result_text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: str(i * 2) for i in range(4)}
