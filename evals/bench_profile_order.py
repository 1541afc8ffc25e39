"""Profiling order and the server's prompt cache: labels and panel probes item by item, or in two phases.

The profile's first stage asks, per item, one label call (a ~380-token prompt whose first ~290 tokens,
the instructions and the taxonomy, are the same for every item) and the panel's probes (two option
orders, a 44-token shared prefix). Item by item, with two server slots, a label call often finds both
slots holding probe prompts and reads nothing from the cache. This bench profiles the same items both
ways on a fresh embedded server each (one process per variant, response cache off), and prints per
variant the wall time of the stage and the prompt tokens read from the prompt cache, by operation.

  .venv/bin/python evals/bench_profile_order.py --n 16 --repeats 2 --out evals/results/bench_profile_order

The variants alternate (item, phased, item, phased, ...) so that drift on a shared machine falls on both.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import git_commit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu" / "test"
SUBJECTS = "virology,astronomy,econometrics,high_school_world_history"


def one_variant(variant: str, n: int, subjects: str) -> dict[str, object]:
    from refinelab.agents.panel import answer_panel, member_client
    from refinelab.agents.profiler import ProfileOptions, label_item, measure_item
    from refinelab.api.context import close_run_context, open_run_context
    from refinelab.config import load_settings
    from refinelab.io import load_dataset

    items = list(load_dataset(DATA, on_invalid="quarantine").filter(subjects.split(","), limit=n).items)
    settings = load_settings(overrides={"use_cache": False})
    ctx = open_run_context(Path(tempfile.mkdtemp(prefix=f"bench-order-{variant}-")), settings=settings)
    ctx.store.load_items(items)
    options = ProfileOptions.from_context(ctx)
    for member in options.panel:  # start the server before the clock
        member_client(ctx, member).chat_model()
    workers = max(1, ctx.settings.roles.judge.total_concurrency())

    def pooled(job) -> None:  # noqa: ANN001
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(contextvars.copy_context().run, job, item) for item in items]:
                future.result()

    def label(item) -> None:  # noqa: ANN001
        ctx.store.put_diagnostics([label_item(ctx, item)])

    def panel(item) -> None:  # noqa: ANN001
        if (diagnostic := answer_panel(ctx, item, options.panel)) is not None:
            ctx.store.put_diagnostics([diagnostic])

    started = time.monotonic()
    if variant == "item":
        pooled(lambda item: measure_item(ctx, item, options))
    else:
        pooled(label)
        pooled(panel)
    wall = time.monotonic() - started
    summary = ctx.ledger.summary()
    close_run_context(ctx)
    return {"variant": variant, "items": len(items), "wall_s": round(wall, 1), "spent": summary["spent"],
            "prompt_tokens": summary["prompt_tokens"], "cached_prompt_tokens": summary["cached_prompt_tokens"],
            "by_operation": summary["by_operation"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--subjects", default=SUBJECTS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variant", choices=["item", "phased"], help="run one variant here (internal)")
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args.variant, args.n, args.subjects)))
        return
    rows = []
    for _ in range(args.repeats):
        for variant in ("item", "phased"):
            proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--n", str(args.n),
                                   "--subjects", args.subjects], capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "by_operation"}), flush=True)
    lines = [f"{r['variant']:7s} {r['items']} items: {r['wall_s']:6.1f} s; {r['cached_prompt_tokens']:,} of "
             f"{r['prompt_tokens']:,} prompt tokens from the cache "
             f"({r['cached_prompt_tokens'] / max(1, r['prompt_tokens']):.0%}); label "
             f"{r['by_operation'].get('label', {}).get('cached_prompt_tokens', 0):,}, panel "
             f"{r['by_operation'].get('panel', {}).get('cached_prompt_tokens', 0):,}" for r in rows]
    command = "python evals/bench_profile_order.py " + " ".join(sys.argv[1:])
    text = "\n".join([*lines, f"Command: `{command}` (commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M:%S')})"])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "command": command}, indent=2) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
