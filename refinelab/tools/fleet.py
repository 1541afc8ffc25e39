"""A role's servers: least-busy routing over a fleet of OpenAI-compatible endpoints, with ejection.

Why: a run scales by driving the engines users already run (vLLM, SGLang, llama.cpp, hosted APIs), often
several replicas of one model. Each member has its own concurrency; a call takes a slot on the healthy
member with the lowest load (in flight / slots), so a slow or small server gets less work. A member that
refuses connections, or fails `eject_after` attempts in a row (5xx, timeouts, cut answers), is ejected:
no new work goes to it, and the client retries the failed call on another member (the ledger settles
each attempt once, so nothing is lost and nothing is charged twice). After a cooldown (doubling per
ejection) a health probe (`GET …/models`) lets it back in.

A fleet of one never ejects: its failures are the run's failures (the ledger's failure streak trips the
run, exactly as without a fleet). Likewise, the last healthy member of a larger fleet is never ejected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Probe = Callable[[str], bool]

EJECT_AFTER = 3  # consecutive failed attempts on one member before it is ejected
COOLDOWN_S = 5.0  # first ejection; doubles per further ejection, up to MAX_COOLDOWN_S
MAX_COOLDOWN_S = 120.0


def http_probe(base_url: str, timeout_s: float = 2.0) -> bool:
    """Whether an OpenAI-compatible server answers `GET {base}/models` (vLLM, SGLang, llama.cpp do)."""
    import httpx

    try:  # streamed and closed unread: only the status is wanted, however large the body (untrusted server)
        with httpx.stream("GET", f"{base_url}/models", timeout=timeout_s) as answer:
            return answer.status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Member:
    """One server of the fleet and its live counters."""

    url: str
    concurrency: int
    index: int
    model: Any = None  # the LangChain chat model for this server (plugged in, or made on request)
    transport: Any = None  # the HTTP transport to this server (tools/transport.py), created on first use
    base_url: str = ""  # resolved with the model (the embedded server's address is known only then)
    api_key: str = field(default="", repr=False)
    in_flight: int = 0
    streak: int = 0  # consecutive failed attempts
    served: int = 0  # answered attempts
    failed: int = 0  # failed attempts
    ejections: int = 0
    ejected_until: float | None = None  # monotonic time; None = healthy
    probing: bool = False

    @property
    def healthy(self) -> bool:
        return self.ejected_until is None

    def load(self) -> float:
        return self.in_flight / self.concurrency


@dataclass
class Outcome:
    """What the client should do after a failed attempt on `member`."""

    ejected: bool  # this failure ejected the member
    counts_for_run: bool  # no other healthy member could take the call: count it in the run's streak


@dataclass
class Fleet:
    """Thread-safe slot allocation and health over the members of one role."""

    members: list[Member]
    eject_after: int = EJECT_AFTER
    cooldown_s: float = COOLDOWN_S
    probe: Probe | None = http_probe  # None: re-admit after the cooldown without asking
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @classmethod
    def of(cls, endpoints: list[tuple[str, int]], **kwargs: Any) -> Fleet:
        return cls([Member(url, slots, i) for i, (url, slots) in enumerate(endpoints)], **kwargs)

    @property
    def total_concurrency(self) -> int:
        return sum(m.concurrency for m in self.members)

    def acquire(self) -> Member:
        """A slot on the least busy healthy member (waits while all are full). With every member
        ejected, the one due back first takes the call: its failures then count for the run."""
        with self._cond:
            while True:
                self._readmit(time.monotonic())
                healthy = [m for m in self.members if m.healthy]
                pool = healthy or [min(self.members, key=lambda m: m.ejected_until or 0.0)]
                free = [m for m in pool if m.in_flight < m.concurrency]
                if free:
                    member = min(free, key=lambda m: (m.load(), m.served + m.in_flight, m.index))
                    member.in_flight += 1
                    return member
                self._cond.wait(timeout=0.25)

    def succeeded(self, member: Member) -> None:
        """The member answered (parsed or not): its failure streak ends; a re-admitted member is back."""
        with self._cond:
            member.in_flight -= 1
            member.streak = 0
            member.served += 1
            member.ejected_until = None
            self._cond.notify_all()

    def released(self, member: Member) -> None:
        """The slot is freed without a verdict on the member (a 429, the budget ran out)."""
        with self._cond:
            member.in_flight -= 1
            self._cond.notify_all()

    def failed(self, member: Member, *, down: bool) -> Outcome:
        """An attempt on `member` got no answer. `down`: the request never reached it (connection
        refused), which ejects at once; otherwise after `eject_after` failures in a row."""
        with self._cond:
            member.in_flight -= 1
            member.failed += 1
            member.streak += 1
            others = [m for m in self.members if m is not member and m.healthy]
            if not member.healthy:  # in flight when it was ejected: the others take the retry
                self._cond.notify_all()
                return Outcome(ejected=False, counts_for_run=not others)
            if others and (down or member.streak >= self.eject_after):
                delay = min(self.cooldown_s * 2 ** member.ejections, MAX_COOLDOWN_S)
                member.ejections += 1
                member.ejected_until = time.monotonic() + delay
                self._cond.notify_all()
                return Outcome(ejected=True, counts_for_run=False)
            self._cond.notify_all()
            return Outcome(ejected=False, counts_for_run=not others)

    def stats(self) -> list[dict[str, Any]]:
        """Per member: url, slots, answered and failed attempts, ejections, healthy now."""
        with self._cond:
            return [{"url": m.url, "concurrency": m.concurrency, "served": m.served, "failed": m.failed,
                     "ejections": m.ejections, "healthy": m.healthy} for m in self.members]

    # -- re-admission -----------------------------------------------------------------------------
    def _readmit(self, now: float) -> None:
        """Members whose cooldown is over: probe them in the background (caller holds the lock)."""
        for member in self.members:
            if member.ejected_until is None or member.probing or now < member.ejected_until:
                continue
            if self.probe is None:
                member.ejected_until = None
                continue
            member.probing = True
            threading.Thread(target=self._probe, args=(member,), daemon=True,
                             name=f"fleet-probe-{member.index}").start()

    def _probe(self, member: Member) -> None:
        assert self.probe is not None
        ok = self.probe(member.url)
        with self._cond:
            member.probing = False
            if ok:
                member.ejected_until = None
                member.streak = 0
            else:
                delay = min(self.cooldown_s * 2 ** member.ejections, MAX_COOLDOWN_S)
                member.ejections += 1
                member.ejected_until = time.monotonic() + delay
            self._cond.notify_all()
