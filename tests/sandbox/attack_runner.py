"""Runs the attack snippets against one LocalSandbox configuration, concurrently (stdlib only).

Used in-process by test_attacks.py (root) and, as a script, by the non-root variant:
``python attack_runner.py TOOLS_DIR MODE PORT HOSTFILE HOSTDIR`` prints a JSON list of results.
"""

from __future__ import annotations

import json
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from attacks import ATTACKS, Attack, render, verdict  # noqa: E402

TIMEOUT_S = 1.5
CPU_S = 1


def import_local(tools_dir: str | None = None) -> tuple[Any, Any]:
    """(LocalSandbox, SandboxLimits): from the installed package, or straight from ``tools_dir``
    (for interpreters without the project installed, e.g. the system Python as a non-root uid)."""
    if tools_dir is None:
        from refinelab.tools.sandbox_base import SandboxLimits
        from refinelab.tools.sandbox_local import LocalSandbox

        return LocalSandbox, SandboxLimits
    pkg = types.ModuleType("sbxtools")
    pkg.__path__ = [tools_dir]  # type: ignore[attr-defined]
    sys.modules["sbxtools"] = pkg
    base = __import__("sbxtools.sandbox_base", fromlist=["x"])
    local = __import__("sbxtools.sandbox_local", fromlist=["x"])
    return local.LocalSandbox, base.SandboxLimits


def run_all(mode: str, *, port: int, hostfile: str, hostdir: str, tools_dir: str | None = None) -> list[dict[str, Any]]:
    local_sandbox, limits_cls = import_local(tools_dir)
    boxes: dict[tuple[bool, int], Any] = {}

    def box_for(a: Attack) -> Any:
        key = (a.allow_subprocess, a.limits.get("nproc", 32))
        if key not in boxes:
            lim = limits_cls(timeout_s=TIMEOUT_S, cpu_s=CPU_S, nproc=key[1], allow_subprocess=key[0])
            boxes[key] = local_sandbox(lim, mode=mode, workers=2, preload=())
        return boxes[key]

    for a in ATTACKS:  # create sandboxes up front, single-threaded
        box_for(a)

    def one(a: Attack) -> dict[str, Any]:
        t0 = time.monotonic()
        res = box_for(a).execute(render(a, hostfile=hostfile, hostdir=hostdir, port=port)).to_dict()
        res["wall_s"] = time.monotonic() - t0
        res["name"] = a.name
        res["verdict"] = verdict(a, res)
        return res

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(one, ATTACKS))
        # the sandbox still works after every attack
        for box in boxes.values():
            after = box.execute("6 * 7").to_dict()
            after["name"], after["verdict"] = "still_usable", None if after["result_text"] == "42" else "broken"
            results.append(after)
    finally:
        for box in boxes.values():
            box.close()
    return results


if __name__ == "__main__":
    tools, mode, port, hostfile, hostdir = sys.argv[1:6]
    print(json.dumps(run_all(mode, port=int(port), hostfile=hostfile, hostdir=hostdir, tools_dir=tools)))
