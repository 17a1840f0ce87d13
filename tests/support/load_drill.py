"""Many clients posting to the gateway for a while, with faults injected on a schedule.

The same drill serves the reliability tests (against processes or containers) and the load
benchmark: every client sends the next request as soon as it has the answer to the last, with the
gateway's default deadline unless told otherwise, and every answer is recorded with when it was
sent, how long it took, its status and which members answered.

The client threads run at a lower CPU priority (``CLIENT_NICENESS``): in these drills they share
the machine with the fleet they load, and 32 busy client threads would otherwise take the cores
the fleet needs (on a real site the clients are other hosts). Only their threads are lowered.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urlsplit

import numpy as np

CLIENT_NICENESS = 10
_PROBE_SLEEP_S = 0.01
_STALL_S = 0.05


@dataclass(frozen=True)
class Answer:
    client: int
    sent_at: float  # seconds since the drill started
    elapsed_s: float
    status: int  # HTTP status; 0 when the gateway gave none (connection error, client timeout)
    degraded: bool = False
    answered: frozenset[str] = frozenset()  # services (or "classical") whose members answered ok
    reasons: tuple[str, ...] = ()
    error: str | None = None
    gateway_s: float | None = None  # the time the gateway itself says it took (its elapsed_ms)
    memory: tuple[str, ...] = ()  # per series, what its clock memory did (stateless, remembered ...)
    served_by: str | None = None  # which gateway replica, where a front door says (X-ChronoTick-Gateway)
    reused_age_s: float | None = None  # the oldest kept model forecast that stood in (forecast_age_s); None: none

    @property
    def from_memory(self) -> bool:
        """Every series answered with its clock's memory (cold-start or remembered), none without."""
        return bool(self.memory) and all(state in ("cold-start", "remembered") for state in self.memory)

    @property
    def memory_given_s(self) -> float | None:
        """The time the gateway had left for the clock memory, where it answered without it for want
        of an answer in that time (the reason says); None otherwise."""
        for reason in self.reasons:
            found = _MEMORY_OUT_OF_TIME.search(reason)
            if found:
                return float(found.group(1)) / 1000.0
        return None


_MEMORY_OUT_OF_TIME = re.compile(r"clock memory unavailable \(.*\): no answer within the request's (\d+) ms left")


@dataclass(frozen=True)
class Event:
    at_s: float
    name: str
    action: Callable[[], object]


@dataclass
class DrillResult:
    answers: list[Answer]
    events: dict[str, float] = field(default_factory=dict)  # name -> when its action returned (s)
    began: dict[str, float] = field(default_factory=dict)  # name -> when its action started (s)
    duration_s: float = 0.0
    # When the drill's own threads could not run on time: (drill seconds, how late a 10 ms sleep at
    # the clients' priority woke), the stalls over 50 ms. Time a client waits for its own turn is
    # not the fleet's.
    client_stalls: list[tuple[float, float]] = field(default_factory=list)

    def between(self, start_s: float, end_s: float) -> list[Answer]:
        return [a for a in self.answers if start_s <= a.sent_at < end_s]

    def late(
        self, limit_s: float, gateway_limit_s: float | None = None, among: Sequence[Answer] | None = None
    ) -> list[Answer]:
        """Answers (of ``among``, or all) the client waited longer than ``limit_s`` for, not counting
        its own stalls, or that the gateway itself says took longer than ``gateway_limit_s`` (from
        its arrival to its answer, ``elapsed_ms``)."""
        return [
            a
            for a in (self.answers if among is None else among)
            if a.elapsed_s - self.own_stall_s(a) > limit_s
            or (gateway_limit_s is not None and a.gateway_s is not None and a.gateway_s > gateway_limit_s)
        ]

    def own_stall_s(self, answer: Answer) -> float:
        """How long, while ``answer`` was on its way, the drill's own threads could not run (the
        probe's stalls). On 2 cores shared with the fleet a client at its low priority may wait
        for its turn long after its answer has arrived (705 ms once in CI, the gateway's own time
        0.90 s): a client on its own host does not, so that wait is not the fleet's."""
        start, end = answer.sent_at, answer.sent_at + answer.elapsed_s
        return sum(
            max(0.0, min(end, at + _PROBE_SLEEP_S + late_s) - max(start, at + _PROBE_SLEEP_S))
            for at, late_s in self.client_stalls
        )

    def first_answered_by(self, service: str, after_s: float) -> float | None:
        """When (sent_at) the first answer sent after ``after_s`` fused a member of ``service``."""
        times = [a.sent_at for a in self.answers if a.sent_at >= after_s and service in a.answered]
        return min(times) if times else None


def timeline(answers: list[Answer], limit: int = 40) -> str:
    """When each answer was sent, and how long the gateway and the client took, in drill seconds
    (``12.3: 1.16/1.31 s``): late answers that come in a cluster are one stall of the gateway."""
    return ", ".join(
        f"{a.sent_at:.1f}: {a.gateway_s or float('nan'):.2f}/{a.elapsed_s:.2f} s"
        for a in sorted(answers, key=lambda a: a.sent_at)[:limit]
    )


def summarize(answers: list[Answer]) -> dict[str, object]:
    """Counts, statuses, degraded share and latency percentiles of some answers."""
    if not answers:
        return {"requests": 0}
    elapsed_ms = np.array([a.elapsed_s for a in answers]) * 1000.0
    statuses: dict[int, int] = {}
    for answer in answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    ok = [a for a in answers if a.status == 200]
    return {
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "degraded_share": (sum(a.degraded for a in ok) / len(ok)) if ok else float("nan"),
        "p50_ms": float(np.percentile(elapsed_ms, 50)),
        "p99_ms": float(np.percentile(elapsed_ms, 99)),
        "max_ms": float(elapsed_ms.max()),
        "gateway_p99_ms": float(np.percentile([a.gateway_s for a in ok], 99)) * 1000.0 if ok else float("nan"),
        "gateway_max_ms": max(a.gateway_s for a in ok) * 1000.0 if ok else float("nan"),
        # What the client waited beyond the gateway's own time: loopback, docker's proxy, its own turn.
        "outside_max_ms": max(a.elapsed_s - a.gateway_s for a in ok) * 1000.0 if ok else float("nan"),
    }


def _answer(client: int, sent_at: float, elapsed_s: float, status: int, headers: Message, content: bytes) -> Answer:
    if headers.get("server") != "uvicorn":
        # Not the gateway: while its port is closed (a restart), the sandbox's network layer may
        # answer for it. For the client that is no answer from the fleet at all.
        return Answer(
            client, sent_at, elapsed_s, 0, error=f"not the gateway: {status} {content[:200].decode(errors='replace')}"
        )
    if status != 200:
        return Answer(client, sent_at, elapsed_s, status, error=content[:300].decode(errors="replace"))
    body = json.loads(content)
    answered = frozenset(b["service"] or "classical" for b in body["backends"] if b["status"] == "ok")
    ages = [b["forecast_age_s"] for b in body["backends"] if b.get("forecast_age_s") is not None]
    return Answer(
        client,
        sent_at,
        elapsed_s,
        200,
        bool(body["degraded"]),
        answered,
        tuple(body["reasons"]),
        gateway_s=body["elapsed_ms"] / 1000.0,
        memory=tuple(m["state"] for m in body.get("memory", [])),
        served_by=headers.get("x-chronotick-gateway"),
        reused_age_s=max(ages) if ages else None,
    )


def run_drill(
    url: str,
    bodies: Sequence[bytes],
    *,
    clients: int = 32,
    duration_s: float = 60.0,
    events: list[Event] = (),  # type: ignore[assignment]
    headers: dict[str, str] | None = None,
    client_timeout_s: float = 30.0,
    after_events_s: float = 0.0,
    every_s: float | None = None,
) -> DrillResult:
    """``clients`` threads post ``bodies`` (JSON, taken in turn) to ``url``/predict for ``duration_s``,
    and for at least ``after_events_s`` after the last event's action has returned; each event's
    action runs at its time, in this thread (an action may wait for something, e.g. a container to
    be ready, and the events after it wait with it). Each client posts its next request when it has
    the answer (closed loop), or with ``every_s``, as an agent does: once every ``every_s``, the
    clients' first requests spread over the first period, a late answer delaying only its own
    client's next request."""
    started = time.monotonic()
    stop_at = [started + duration_s]
    answers: list[Answer] = []
    lock = threading.Lock()
    request_headers = {"content-type": "application/json", **(headers or {})}
    target = urlsplit(url)

    def client(index: int) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICENESS)  # this thread only
        count = 0
        # The standard library's client, straight to the address (never a proxy the environment
        # names): half of httpx's CPU per request (1.5 ms against 3.1, most of it now reading the
        # answer), which in a drill is taken from the fleet it measures, and part of it is spent
        # between a request's timestamp and its sending (the longest client-side wait in the same
        # drill: 233-254 ms beyond the gateway's own time, against 347-409 with httpx).
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=client_timeout_s)
        try:
            while time.monotonic() < stop_at[0]:
                if every_s is not None:
                    time.sleep(max(0.0, started + every_s * (index / clients + count) - time.monotonic()))
                body = bodies[(index + count * clients) % len(bodies)]
                count += 1
                sent = time.monotonic()
                try:
                    connection.request("POST", f"{target.path}/predict", body=body, headers=request_headers)
                    response = connection.getresponse()
                    content = response.read()
                    answer = _answer(
                        index, sent - started, time.monotonic() - sent, response.status, response.headers, content
                    )
                except (OSError, http.client.HTTPException) as error:
                    connection.close()  # the next request opens a new connection
                    answer = Answer(
                        index, sent - started, time.monotonic() - sent, 0, error=f"{type(error).__name__}: {error}"
                    )
                with lock:
                    answers.append(answer)
        finally:
            connection.close()

    stalls: list[tuple[float, float]] = []

    def probe() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICENESS)
        while time.monotonic() < stop_at[0]:
            before = time.monotonic()
            time.sleep(_PROBE_SLEEP_S)
            late_s = time.monotonic() - before - _PROBE_SLEEP_S
            if late_s > _STALL_S:
                stalls.append((before - started, late_s))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=probe, daemon=True))
    for thread in threads:
        thread.start()
    done: dict[str, float] = {}
    began: dict[str, float] = {}
    if events:
        stop_at[0] = float("inf")  # the clients go on while an event waits (for a container, say)
    for event in sorted(events, key=lambda e: e.at_s):
        time.sleep(max(0.0, started + event.at_s - time.monotonic()))
        began[event.name] = time.monotonic() - started
        event.action()
        done[event.name] = time.monotonic() - started
    stop_at[0] = max(started + duration_s, time.monotonic() + after_events_s)
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at[0] - time.monotonic()) + client_timeout_s + 30.0)
    with lock:
        result = sorted(answers, key=lambda a: a.sent_at)
    return DrillResult(result, done, began, time.monotonic() - started, client_stalls=list(stalls))
