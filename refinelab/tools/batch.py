"""Many calls as one OpenAI Batch job (`/v1/files` + `/v1/batches`): half the price on hosted APIs.

Why: profiling and screening ask the same question of every item and nobody waits on one answer, which
is what the Batch API is for. A request is either a structured call (what `ChatClient.structured` is
given: messages + output schema) or a logprobs probe (what `ChatClient.first_token_logprobs` sends: one
token, the top alternatives). `BatchRunner.run` takes the requests a node is about to make, and:

1. skips those the response cache or an earlier batch already answered;
2. reserves every request's worst case in the ledger (the whole batch is paid for up front), uploads
   one JSONL file, creates the batch, and records batch id + reservations in the ledger in one
   transaction, so a killed run resumes *polling* this batch instead of submitting it again
   (`Ledger.abandon_in_flight` leaves a pending batch's reservations alone);
3. polls until the batch ends, then settles each request from the usage in its result line, caches
   the answer, and hands it to the client (`ChatClient.prefetched`), so the node's ordinary call finds
   it there: same parsing, same stored evidence, no second charge. A request that failed inside the
   batch, or that the batch never reached (expired, cancelled), is settled at 0 (not billed) and the
   ordinary call sends it live.

A server without the Batch API answers 404: the runner releases the reservations and every request goes
live, as without `--batch`. The embedded llama.cpp server has none, and a chat model a caller plugged in
has no server at all: for those nothing is reserved or sent, everything goes live at once.

A resumed run polls only the pending batches that hold a request it asks again: a batch is always one
client's requests, so its answers reach the client that will make those calls (the label client and
a `judge` panel member share an endpoint and a model, yet each polls its own batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from refinelab.config import EMBEDDED
from refinelab.errors import BudgetExhausted
from refinelab.redact import redact_secrets
from refinelab.tools.ledger import CallTag, Reservation
from refinelab.tools.llm import FIRST_TOKEN_TOP, CallResult, ChatClient, schema_for, top_logprobs_of
from refinelab.tools.transport import MalformedReply, Reply, reply_from

if TYPE_CHECKING:
    import openai

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
FIRST_POLL_S = 1.0  # polls start here and double up to `poll_s`: a small batch on a fast server ends in seconds


@dataclass(frozen=True)
class BatchRequest:
    """One call a node will make: what `ChatClient.structured` would be given (`schema` set), or a
    logprobs probe as `ChatClient.first_token_logprobs` sends it (`BatchRequest.probe`: no schema, one
    token, `top_logprobs` alternatives). Either way `ChatClient.prepare` turns it into the very request
    and cache key of the live call it stands for."""

    messages: list[dict[str, str]]
    schema: type[BaseModel] | None
    tag: CallTag
    max_tokens: int | None = None
    top_logprobs: int | None = None

    @classmethod
    def probe(cls, messages: list[dict[str, str]], tag: CallTag, top: int = FIRST_TOKEN_TOP) -> BatchRequest:
        """The batched form of `ChatClient.first_token_logprobs(messages, tag, top=top)`."""
        return cls(messages, None, tag, max_tokens=1, top_logprobs=top)

    def prepared(self, client: ChatClient) -> tuple[list[dict[str, str]], dict[str, Any], str]:
        """(messages as sent, parameters, cache key) exactly as `client`'s live call would have them."""
        json_schema = schema_for(self.schema) if self.schema is not None else None
        return client.prepare(self.messages, json_schema, self.max_tokens, top_logprobs=self.top_logprobs)


@dataclass
class BatchReport:
    """What one `run` did: requests answered from the batch, sent live later, and the batch ids."""

    answered: int = 0
    failed: int = 0  # errors or no result inside the batch: these go live
    skipped: int = 0  # already cached or answered
    unsupported: bool = False  # the server has no Batch API: everything goes live
    batch_ids: tuple[str, ...] = ()


class BatchRunner:
    """Runs a role's calls through the Batch API of the role's first endpoint."""

    def __init__(self, client: ChatClient, *, poll_s: float = 10.0, timeout_s: float = 26 * 3600,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self._api: openai.OpenAI | None = None

    @property
    def endpoint(self) -> str:
        return self.client.fleet.members[0].url

    def api(self) -> openai.OpenAI:
        import openai  # the SDK (about 0.9 s to import) is loaded only when a batch is sent, not by every CLI call

        if self._api is None:
            member = self.client.fleet.members[0]
            self.client.resolve(member)  # the URL and the key (the embedded server's too)
            self._api = openai.OpenAI(base_url=member.base_url, api_key=member.api_key or "sk-none",
                                      timeout=60.0, max_retries=3)
        return self._api

    def servable(self) -> bool:
        """Whether a Batch API can be there at all: not on the embedded llama.cpp server (it has none,
        and reserving for a batch would count every prompt for nothing), not for a chat model the caller
        plugged in (no server: the API client would fall back to OpenAI's own address)."""
        member = self.client.fleet.members[0]
        if member.url == EMBEDDED:
            return False
        self.client.resolve(member)  # the URL and the key
        return bool(member.base_url)

    # -- the job ---------------------------------------------------------------------------------
    def run(self, requests: Sequence[BatchRequest]) -> BatchReport:
        report = BatchReport()
        wanted: dict[str, tuple[BatchRequest, list[dict[str, str]], dict[str, Any]]] = {}
        asked: set[str] = set()
        for request in requests:
            messages, params, key = request.prepared(self.client)
            asked.add(key)
            if key in wanted or (self.client.cache is not None and self.client.cache.get(key) is not None):
                report.skipped += 1
                continue
            wanted[key] = (request, messages, params)
        ledger, model = self.client.ledger, self.client.model_name
        # a batch a killed run submitted: poll it, never submit it again (only one holding a request asked
        # here: another client's batch on the same endpoint and model is that client's to poll)
        pending = {batch_id: calls for batch_id, calls in ledger.pending_batches(self.endpoint, model).items()
                   if not asked.isdisjoint(calls)}
        if not wanted and not pending:
            return report
        if not self.servable():
            report.unsupported = True
            return report
        ids: list[str] = []
        for batch_id, calls in pending.items():
            ids.append(batch_id)
            self._collect(batch_id, calls, report)
            for key in calls:
                wanted.pop(key, None)
        if wanted:
            submitted = self._submit(wanted, report)
            if submitted is not None:
                batch_id, calls = submitted
                ids.append(batch_id)
                self._collect(batch_id, calls, report)
        report.batch_ids = tuple(ids)
        return report

    def _submit(self, wanted: dict[str, tuple[BatchRequest, list[dict[str, str]], dict[str, Any]]],
                report: BatchReport) -> tuple[str, dict[str, Reservation]] | None:
        ledger, model = self.client.ledger, self.client.model_name
        calls: dict[str, Reservation] = {}
        lines: list[str] = []
        for key, (request, messages, params) in wanted.items():
            tag = CallTag(request.tag.node, request.tag.operation, request.tag.item_id, request.tag.model or model)
            worst = self.client._prompt_bound(messages, params) + int(params["max_tokens"])
            try:
                calls[key] = ledger.reserve(worst, tag, held_long=True)
            except BudgetExhausted:
                break  # what fits is batched; the rest meets the budget on its ordinary call
            body = {"model": model, "messages": messages, **params}
            lines.append(json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                                     "body": body}))
        if not calls:
            return None
        import openai  # see api()

        try:
            api = self.api()
            upload = api.files.create(file=("batch.jsonl", ("\n".join(lines) + "\n").encode(), "application/jsonl"),
                                      purpose="batch")
            batch = api.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")
        except (openai.NotFoundError, openai.BadRequestError, openai.APIConnectionError,
                openai.InternalServerError, openai.PermissionDeniedError):
            for reservation in calls.values():
                ledger.release(reservation)
            report.unsupported = True
            return None
        ledger.record_batch(batch.id, self.endpoint, model, calls)
        return batch.id, calls

    def _collect(self, batch_id: str, calls: dict[str, Reservation], report: BatchReport) -> None:
        api, ledger = self.api(), self.client.ledger
        deadline = time.monotonic() + self.timeout_s
        batch = api.batches.retrieve(batch_id)
        wait = min(FIRST_POLL_S, self.poll_s)
        while batch.status not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} still {batch.status} after {self.timeout_s:.0f} s; "
                                   f"resume polls it again")
            self.sleep(wait)
            wait = min(wait * 2, self.poll_s)
            batch = api.batches.retrieve(batch_id)
        results: dict[str, dict[str, Any]] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                results.update(_result_lines(api.files.content(file_id).text))
        for key, reservation in calls.items():
            reply = _answer(results.get(key))
            if reply is None:  # an error inside the batch, never run, or not a chat completion: sent live later
                ledger.settle(reservation, 0, 0, failed=True)
                report.failed += 1
                continue
            prompt, completion = reply.prompt_tokens, reply.completion_tokens
            if not reply.reported:  # never under-count an unreported call
                prompt, completion = reservation.tokens, 0
            ledger.settle(reservation, prompt, completion)
            ledger.note_answer()
            text = redact_secrets(reply.text)
            # a probe's alternatives, read as a live answer's are (None for a structured call: no block)
            top = top_logprobs_of(reply.logprobs)
            result = CallResult(text=text, prompt_tokens=prompt, completion_tokens=completion, top_logprobs=top,
                                call_id=reservation.call_id)
            self.client.cache_answer(key, result)
            self.client.prefetched(key, result)
            report.answered += 1
        ledger.finish_batch(batch_id)


def _result_lines(text: str) -> dict[str, dict[str, Any]]:
    """custom_id → result line of a Batch API output or error file. The file is untrusted endpoint output: a
    line that is not a JSON object with a text `custom_id` is skipped (its call counts as failed and goes live)."""
    rows: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict) and isinstance(row.get("custom_id"), str):
            rows[row["custom_id"]] = row
    return rows


def _answer(row: dict[str, Any] | None) -> Reply | None:
    """The chat completion of a successful result line, read as a live answer is (`transport.reply_from`:
    usage only when whole counts, the text only when text); None for an error, a failed status or any other
    shape."""
    response = row.get("response") if row and not row.get("error") else None
    if not isinstance(response, dict) or response.get("status_code") != 200:
        return None
    try:
        return reply_from(response.get("body"), structured=False)
    except MalformedReply:
        return None
