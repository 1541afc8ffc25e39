"""`--batch` for the agents: the calls a step is about to make, as Batch API jobs all in flight together.

Why together: a hosted batch may take hours to end. The label calls go to the judge's endpoint and each
panel member's probes to that member's, so each client is one job (tools/batch.py); run one after the
other, a profile would wait for the label batch to end before it even submitted the panel's. Here every
job is submitted at once and awaited together; the step's ordinary calls then find their answers
already paid for (`ChatClient.prefetched`), and whatever no batch answered goes live as without `--batch`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from refinelab.agents.context import AgentContext
from refinelab.agents.panel import member_client, panel_batch_requests
from refinelab.schema import QAItem
from refinelab.tools.batch import BatchReport, BatchRequest, BatchRunner
from refinelab.tools.llm import ChatClient

BatchJob = tuple[ChatClient, Sequence[BatchRequest]]


def panel_batch_jobs(ctx: AgentContext, items: Sequence[QAItem], members: Sequence[str],
                     node: str = "profile") -> list[BatchJob]:
    """One job per panel member: the panel calls `answer_panel` is about to make for `items`."""
    requests = panel_batch_requests(ctx, list(items), list(members), node)
    return [(member_client(ctx, name), calls) for name, calls in requests.items() if calls]


def run_batches(ctx: AgentContext, name: str, jobs: Sequence[BatchJob]) -> list[BatchReport]:
    """Run every non-empty job through its client's Batch API concurrently (one thread each: a job is
    mostly waiting on its batch); traced as one span `name` with what each role's batch did."""
    jobs = [(client, requests) for client, requests in jobs if requests]
    if not jobs:
        return []
    inputs = {"requests": sum(len(requests) for _, requests in jobs), "jobs": len(jobs)}
    with ctx.tracer.span(name, "chain", inputs) as run, ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, BatchRunner(client).run, requests)
                   for client, requests in jobs]
        reports = [future.result() for future in futures]
        run.outputs = {client.role or client.model_name: {
            "answered": report.answered, "failed": report.failed, "skipped": report.skipped,
            "unsupported": report.unsupported, "batches": list(report.batch_ids)}
            for (client, _), report in zip(jobs, reports, strict=True)}
    return reports


def batch_panel(ctx: AgentContext, items: Sequence[QAItem], members: Sequence[str],
                node: str = "profile") -> list[BatchReport]:
    """`--batch` for screening: every panel call not answered yet, one Batch API job per member."""
    return run_batches(ctx, "batch_panel", panel_batch_jobs(ctx, items, members, node))
