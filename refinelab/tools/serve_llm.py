"""Launcher: load a GGUF in llama.cpp's server (xllamacpp) on 127.0.0.1 and print its address.

Run as `python -m refinelab.tools.serve_llm --model PATH`. xllamacpp has no `-m` entry point of its
own, so this is ours. It prints the listening address on one line, then waits for SIGTERM -- or until
no process holding a lease on it is alive any more (`--lease-root`, see tools/leases.py), so a server
never outlives the runs and `model serve` commands that use it, however they ended.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
from pathlib import Path


def _forget_self() -> None:
    from refinelab.tools.embedded_server import forget_server

    forget_server(os.getpid())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", default="local")
    parser.add_argument("--port", type=int, default=0)  # 0 = a free port
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--owner-pid", type=int, action="append", default=[],
                        help="a process using this server; it exits once none is alive")
    parser.add_argument("--lease-root", default=None, help="folder holding leases/<server pid>/<owner pid>")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds without a live owner before exiting")
    args = parser.parse_args(argv)

    if args.lease_root:
        from refinelab.tools import leases

        root = Path(args.lease_root)
        for owner in args.owner_pid:
            leases.add_owner(root, os.getpid(), owner)
        atexit.register(leases.drop_all, root, os.getpid())
        atexit.register(_forget_self)
        leases.watchdog(root, os.getpid(), lambda: os.kill(os.getpid(), signal.SIGTERM), grace_s=args.grace)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}  # must be a set: a str would become a set of characters
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx * args.parallel  # unified KV: each slot gets the full context
    params.n_parallel = args.parallel
    params.kv_unified = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.verbosity = 1  # the default (3) floods stderr
    server = xllamacpp.Server(params)  # blocks until the model is loaded
    print(server.listening_address, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
