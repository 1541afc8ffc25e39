"""A loopback fake of the OpenAI Batch API (`/v1/files`, `/v1/batches`) on top of the fake chat server.

Why: `--batch` must be tested without a hosted account. The fake keeps uploaded files in memory,
completes a batch `delay_s` after it is created (answering every line with the same responder and
usage as the live chat route; a logprobs line's body carries `choices[0].logprobs.content[0].top_logprobs`
as the live route's does, `FakeServer.answer`), writes the output file in OpenAI's result-line shape, and can fail
chosen lines (`fail_every`: every n-th request errors inside the batch). It counts uploads, batches
created and status polls, so a test can tell a resumed poll from a resubmission.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.support.fake_openai import FakeServer, _Handler


@dataclass
class BatchCounters:
    uploads: int = 0
    batches_created: int = 0
    polls: int = 0
    lines_answered: int = 0
    billed_tokens: int = 0
    probe_lines: int = 0  # answered lines that carry first-token logprobs (panel probes)
    probe_tokens: int = 0  # what those were billed


@dataclass
class FakeBatchServer(FakeServer):
    delay_s: float = 0.2
    fail_every: int = 0  # 0: no line fails; n: every n-th line of a batch gets an error
    batch_counters: BatchCounters = field(default_factory=BatchCounters)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def route(self, handler: _Handler, method: str, body: bytes) -> None:
        path = handler.path.split("?")[0].rstrip("/")
        if method == "POST" and path == "/v1/files":
            self._upload(handler, body)
        elif method == "POST" and path == "/v1/batches":
            self._create(handler, json.loads(body or b"{}"))
        elif method == "GET" and path.startswith("/v1/batches/"):
            self._retrieve(handler, path.removeprefix("/v1/batches/"))
        elif method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            file_id = path.removeprefix("/v1/files/").removesuffix("/content")
            if file_id not in self.files:
                handler._send(404, {"error": {"message": f"no file {file_id}"}})
            else:
                handler._send(200, self.files[file_id], "application/jsonl")
        else:
            super().route(handler, method, body)

    def _upload(self, handler: _Handler, body: bytes) -> None:
        header = f"Content-Type: {handler.headers.get('Content-Type')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        content = b""
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                content = part.get_payload(decode=True) or b""
        file_id = f"file-{next(self._ids)}"
        with self._lock:
            self.files[file_id] = content
            self.batch_counters.uploads += 1
        handler._send(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                            "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})

    def _batch_object(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"id": batch["id"], "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                "input_file_id": batch["input_file_id"], "completion_window": "24h", "status": batch["status"],
                "output_file_id": batch.get("output_file_id"), "error_file_id": batch.get("error_file_id"),
                "created_at": int(batch["created"]), "request_counts": batch.get("counts")}

    def _create(self, handler: _Handler, request: dict[str, Any]) -> None:
        input_id = request.get("input_file_id")
        if input_id not in self.files:
            handler._send(400, {"error": {"message": f"no input file {input_id}"}})
            return
        batch = {"id": f"batch_{next(self._ids)}", "input_file_id": input_id, "status": "in_progress",
                 "created": time.time()}
        with self._lock:
            self.batches[batch["id"]] = batch
            self.batch_counters.batches_created += 1
        handler._send(200, self._batch_object(batch))

    def _retrieve(self, handler: _Handler, batch_id: str) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            handler._send(404, {"error": {"message": f"no batch {batch_id}"}})
            return
        with self._lock:
            self.batch_counters.polls += 1
        if batch["status"] == "in_progress" and time.time() >= batch["created"] + self.delay_s:
            self._complete(batch)
        handler._send(200, self._batch_object(batch))

    def _complete(self, batch: dict[str, Any]) -> None:
        out, errors = [], []
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].decode().splitlines() if x.strip()]
        for index, line in enumerate(lines, start=1):
            if self.fail_every and index % self.fail_every == 0:
                errors.append({"id": f"req-{index}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "server_error", "message": "injected"}})
                continue
            completion = self.answer(line["body"])
            out.append({"id": f"req-{index}", "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "request_id": f"r{index}", "body": completion},
                        "error": None})
            with self._lock:
                self.batch_counters.lines_answered += 1
                self.batch_counters.billed_tokens += completion["usage"]["total_tokens"]
                if completion["choices"][0].get("logprobs"):
                    self.batch_counters.probe_lines += 1
                    self.batch_counters.probe_tokens += completion["usage"]["total_tokens"]
        with self._lock:
            out_id, err_id = f"file-{next(self._ids)}", f"file-{next(self._ids)}"
            self.files[out_id] = "".join(json.dumps(r) + "\n" for r in out).encode()
            self.files[err_id] = "".join(json.dumps(r) + "\n" for r in errors).encode()
            batch.update(status="completed", output_file_id=out_id, error_file_id=err_id if errors else None,
                         counts={"total": len(lines), "completed": len(out), "failed": len(errors)})
