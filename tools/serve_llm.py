"""Launcher: load a GGUF in llama.cpp's server (xllamacpp) on 127.0.0.1 and print its address.

Run as `python -m refinelab.tools.serve_llm --model PATH`. xllamacpp has no `-m` entry point of its
own, so this is ours. It prints the listening address on one line, then waits for SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", default="local")
    parser.add_argument("--port", type=int, default=0)  # 0 = a free port
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args(argv)

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
