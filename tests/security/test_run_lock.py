"""Class 4: one process per run folder. A second `resume` (or `refine` on the same id) exits at once,
naming the holder's pid, and sends no model request; a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.sec_helpers import (
    cli,
    endpoint,
    free_port,
    lock_holder,
    refine_args,
    start_cli,
    write_config,
)

EXIT_BUSY = 4
SLOTS = 6  # three roles, two model slots each (sec_helpers' config): the most requests a held run has out


def _stopped_run(ws, port: int, **config: object) -> Path:  # noqa: ANN001
    write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{port}/v1", ws.runs, **config)
    proc = cli(refine_args(ws.data, ws.tmp / "c.yaml", ws.prompts, "shared"), ws.env, ws.tmp)
    assert proc.returncode == 3, proc.stderr[-2000:]
    return ws.runs / "shared"


def _wait_for_lock(run: Path, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = run / ".lock"
        if lock.exists() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.05)
    raise AssertionError("the first process never took the lock")


def test_second_resume_exits_at_once_naming_the_holder(ws) -> None:
    port = free_port()
    # the holder waits on answers the test holds back, so its model timeout must outlast the test's commands
    run = _stopped_run(ws, port, timeout_s=180)
    with endpoint(port=port) as ep:
        ep.gate.clear()  # every answer is held until the refused commands are done: the holder is mid-run
        first = start_cli(["resume", "shared", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
        try:
            _wait_for_lock(run, first.pid)
            started = time.monotonic()
            second = cli(["resume", "shared", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
            took = time.monotonic() - started
            assert second.returncode == EXIT_BUSY, second.stderr
            assert f"process {first.pid}" in second.stderr and took < 15
            same_id = cli(refine_args(ws.data, ws.tmp / "c.yaml", ws.prompts, "shared"), ws.env, ws.tmp)
            assert same_id.returncode in (2, EXIT_BUSY) and "shared" in same_id.stderr
            assert first.poll() is None, "the holder should still be waiting on its held answers"
            # only the holder's requests went out, each slot's first one, now held; a second resume or
            # refine that ran would have sent its own
            assert ep.requests <= SLOTS, ep.requests
        finally:
            ep.gate.set()
            out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err[-3000:]


def test_two_resumes_started_together_only_one_works(ws) -> None:
    port = free_port()
    _stopped_run(ws, port)
    with endpoint(port=port, delay_s=0.2):
        procs = [start_cli(["resume", "shared", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
                 for _ in range(3)]
        codes = sorted(p.wait(timeout=240) for p in procs)
    assert codes == [0, EXIT_BUSY, EXIT_BUSY], [p.stderr.read()[-500:] for p in procs]


def test_lock_held_by_another_process(ws) -> None:
    port = free_port()
    run = _stopped_run(ws, port)
    with lock_holder(run) as holder:
        proc = cli(["resume", "shared", "--runs-dir", str(ws.runs)], ws.env, ws.tmp)
        assert proc.returncode == EXIT_BUSY and f"process {holder.pid}" in proc.stderr
        os.kill(holder.pid, signal.SIGKILL)  # a killed holder: the kernel drops the lock
        holder.wait()
        with endpoint(port=port):
            proc = cli(["resume", "shared", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
        assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("command", ["refine", "resume"])
def test_refine_on_a_new_id_while_it_is_being_created(ws, command: str) -> None:
    """Two `refine --run-id X` at once: one runs, the other is told the run exists or is busy."""
    with endpoint(delay_s=0.2) as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs)
        args = refine_args(ws.data, config, ws.prompts, "twin")
        procs = [start_cli(args, ws.env, ws.tmp) for _ in range(2)]
        codes = sorted(p.wait(timeout=240) for p in procs)
        assert codes[0] == 0 and codes[1] in (2, EXIT_BUSY), codes  # never both
        if command == "resume":  # the finished run resumes as a no-op, unlocked
            again = cli(["resume", "twin", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
            assert again.returncode == 0, again.stderr[-2000:]
