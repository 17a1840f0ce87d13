"""Issue 16's speed targets: the fused /predict of clocks the gateway remembers (the warm path).

Starts the four family services (each in its own environment) and the gateway as processes, as
``gateway_speed`` does, with the gateway's settings as shipped: a clock is warm after 30 scored
forecasts at every horizon its forecast reaches, a warm clock's model forecasts stand in for 5 s of
its time (``reuse_forecasts_s``; 20 s while the model's service is busy, ``reuse_when_busy_s``),
and the default 1 s deadline, which no request names. A pool of
synthetic clocks ("mixed", a seed each) is streamed to it as agents stream theirs: each request the
next 512-sample window of a clock, ending 5 s after the last (``clock_id`` and ``start_s``), so
that every answer is remembered and scored by the requests after it, and every other one asks no
model. The clocks are warmed up first, a few at a time, each until its answer says ``remembered``
(with a 10 s deadline, for the warm-up only: the cold answers fuse every member). Then:

1. One client: p50/p99 of remembered answers, in turn over a few clocks, each request paired with
   the same window without ``clock_id`` (today's stateless path) sent right after it; and the
   fleet's CPU time per request of each kind, by process (their sum divided by the cores is a floor
   under the latency).
   Target: warm p50 <= 60 ms.
2. Capacity: 1 to 32 closed-loop clients (each posts its next request when it has the answer:
   ``support.load_drill.run_drill``) for some seconds at each count, stateless and warm (each
   client streaming its own clocks forward in time): requests per second, the share of answers
   degraded (or failed), p50/p99, the share remembered and the share in which kept model forecasts
   stood in (with the median age of the oldest), and what each request cost the fleet: the CPU time
   of all its processes, and the calls the model services answered; the highest rate with at most 5 %
   degraded of each, and their ratio. Target >= 5x.
3. The classical members alone (``backends``) at 32 clients, warm and stateless: closed loop (the
   gateway's saturation rate), and as 32 agents each asking once a second (open loop, their first
   requests spread over the first second). Target: warm p99 <= 20 ms, judged on the agents: 32
   closed-loop clients keep 32 requests in the gateway at all times, so by Little's law a 20 ms p99
   there would need some 1600 answers a second from one event loop, a rate no client of a clock
   asks for (an agent asks every few seconds). The agents are one asyncio loop (``agents``).

Every body is made before its request's clock starts: no figure holds the client's JSON encoding.

    .venvs/gateway/bin/python benchmarks/warm_clocks.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from gateway_speed import FAMILIES, cpu_s
from prometheus_client.parser import text_string_to_metric_families

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.synthetic import generate_clock
from chronotick_gateway.memory import REMEMBER_EVERY_S
from chronotick_gateway.settings import GatewaySettings
from record import CONTEXT, HORIZON, percentile_ms, provenance, write_record
from support.load_drill import Answer, run_drill, summarize
from support.servers import serve_in_process, server_process, venv_python, wait_for

INTERVAL_S = 1.0
# Samples between the ends of a clock's consecutive windows: an agent asking as often as the memory
# keeps an answer, so that every answer is remembered and scored.
STEP = int(REMEMBER_EVERY_S / INTERVAL_S)
# Windows each clock has: far more than a run sends to one clock (a few hundred at 20 s a step).
WINDOWS_PER_CLOCK = 20_000
CLASSICAL = [forecaster.name for forecaster in CLASSICAL_FORECASTERS]
DEGRADED_AT_MOST = 0.05
# Between two closed-loop runs: the member calls an overloaded run left to finish end first.
SETTLE_S = 3.0
SERVICES_BACK_S = 60.0
_JSON = {"content-type": "application/json"}


@dataclass
class Clock:
    """A synthetic clock streamed forward in time: its window k is its samples from k * STEP on."""

    clock_id: str
    offsets_us: np.ndarray
    next_window: int = 0  # the next window a request naming the clock sends: the clock only moves forward

    @classmethod
    def generate(cls, seed: int) -> Clock:
        offsets = generate_clock("mixed", CONTEXT + STEP * WINDOWS_PER_CLOCK, interval_s=INTERVAL_S, seed=seed)
        return cls(f"bench-clock-{seed}", offsets.observed_offset_us)

    def body(
        self, window: int, *, remembered: bool, backends: list[str] | None = None, deadline_s: float | None = None
    ) -> bytes:
        """The request for ``window``: naming the clock and the time of its first sample
        (``remembered``), or as a stateless client sends it."""
        first = window * STEP
        if first + CONTEXT > self.offsets_us.size:
            raise IndexError(f"{self.clock_id} has no window {window}: raise WINDOWS_PER_CLOCK")
        series: dict[str, object] = {
            "offsets_us": self.offsets_us[first : first + CONTEXT].tolist(),
            "interval_s": INTERVAL_S,
        }
        if remembered:
            series |= {"clock_id": self.clock_id, "start_s": first * INTERVAL_S}
        query: dict[str, object] = {"series": [series], "horizon": HORIZON}
        if backends is not None:
            query["backends"] = backends
        if deadline_s is not None:
            query["deadline_s"] = deadline_s
        # json writes a missing sample as NaN; the contract's JSON has null.
        return json.dumps(query).replace("NaN", "null").encode()

    def next_body(self, *, backends: list[str] | None = None, deadline_s: float | None = None) -> bytes:
        """The clock's next window, naming it."""
        body = self.body(self.next_window, remembered=True, backends=backends, deadline_s=deadline_s)
        self.next_window += 1
        return body


class ClientStreams:
    """The bodies ``run_drill`` posts, in the order it takes them: client i's k-th request is
    ``bodies[i + k * clients]``. Each client streams its own clocks (``clocks[i::clients]``), in
    turn, each request the next window of one: named, each clock moves forward (so its memory keeps
    scoring); stateless, the same clocks' windows ahead, which leaves the clocks where they are. A
    body is made when the client asks for it, in its own thread, before its request's clock starts;
    no two clients share a clock."""

    def __init__(
        self, clocks: list[Clock], clients: int, *, remembered: bool, backends: list[str] | None = None
    ) -> None:
        self.clients = clients
        self.owned = [clocks[i::clients] for i in range(clients)]
        self.sent = [0] * clients
        self.remembered = remembered
        self.backends = backends

    def __len__(self) -> int:
        return self.clients * WINDOWS_PER_CLOCK

    def __getitem__(self, position: int) -> bytes:
        client = position % self.clients
        count = self.sent[client]
        self.sent[client] += 1
        clocks = self.owned[client]
        clock = clocks[count % len(clocks)]
        if self.remembered:
            return clock.next_body(backends=self.backends)
        return clock.body(clock.next_window + count // len(clocks), remembered=False, backends=self.backends)


def warm_up(url: str, clocks: list[Clock], clients: int, deadline_s: float, most: int) -> list[int]:
    """Stream every clock until its answer says ``remembered``, ``clients`` at a time (each client
    its own clocks, in turn); the requests each clock took. Fails for a clock not remembered after
    ``most`` requests, or for any answer that is not a 200."""
    taken: dict[str, int] = {}
    errors: list[Exception] = []
    stop = threading.Event()

    def client(mine: list[Clock]) -> None:
        try:
            with httpx.Client(timeout=deadline_s + 30.0, headers=_JSON, trust_env=False) as http:
                waiting = deque(mine)
                while waiting and not stop.is_set():
                    clock = waiting.popleft()
                    response = http.post(f"{url}/predict", content=clock.next_body(deadline_s=deadline_s))
                    response.raise_for_status()
                    if json.loads(response.content)["memory"][0]["state"] == "remembered":
                        taken[clock.clock_id] = clock.next_window
                    elif clock.next_window >= most:
                        raise RuntimeError(f"{clock.clock_id}: no remembered answer after {most} requests")
                    else:
                        waiting.append(clock)
        except Exception as error:  # handed to the main thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=client, args=(clocks[i::clients],), daemon=True) for i in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    if errors:
        raise errors[0]
    return [taken[clock.clock_id] for clock in clocks]


@dataclass
class OneClient:
    """One kind of request at one client: latencies (s), what the memory did, degraded flags, and
    each process's CPU time (s) over all of them."""

    latencies_s: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    degraded: list[bool] = field(default_factory=list)
    reused: list[bool] = field(default_factory=list)  # the models' kept forecasts answered, re-anchored
    cpu_s: dict[str, float] = field(default_factory=dict)

    def cpu_ms(self) -> dict[str, float]:
        """CPU time per request by process."""
        return {name: cpu / len(self.latencies_s) * 1000.0 for name, cpu in self.cpu_s.items()}

    def p50_ms_by_reuse(self) -> dict[bool, tuple[float, int]]:
        """The p50 and count of the answers that reused the models' forecasts (True) and of those that
        asked the models (False): at one request in 5 s with 5 s of reuse, about half each, and the
        p50 of all of them falls between the two."""
        split = {
            reused: [s for s, r in zip(self.latencies_s, self.reused, strict=True) if r == reused]
            for reused in (True, False)
        }
        return {
            reused: (percentile_ms(latencies, 50) if latencies else float("nan"), len(latencies))
            for reused, latencies in split.items()
        }

    def row(self, name: str, cores: int) -> str:
        fleet_ms = sum(self.cpu_ms().values())
        by_process = ", ".join(
            f"{process} {ms:.0f}"
            for process, ms in self.cpu_ms().items()
            if ms >= 0.5 or not process.endswith("helpers")
        )
        return (
            f"| {name} | {percentile_ms(self.latencies_s, 50):.1f} | {percentile_ms(self.latencies_s, 99):.1f} | "
            f"{share(s == 'remembered' for s in self.states):.0%} | {share(self.reused):.0%} | "
            f"{share(self.degraded):.0%} | {fleet_ms:.1f} (floor {fleet_ms / cores:.0f}) | {by_process} |"
        )


def share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else float("nan")


def one_client(url: str, clocks: list[Clock], requests: int, fleet: FleetMeter) -> dict[str, OneClient]:
    """``requests`` windows, in turn from ``clocks``: each sent naming its clock, then at once
    without (today's stateless path): paired, both under the same state of the machine. The CPU
    time is read around each request, the gateway's classical helper included (and the gateway's
    health polling, a few ms a second)."""
    kinds = {"remembered": OneClient(), "stateless": OneClient()}
    with httpx.Client(timeout=30.0, headers=_JSON, trust_env=False) as http:
        for index in range(requests):
            clock = clocks[index % len(clocks)]
            window = clock.next_window
            clock.next_window += 1
            for name, remembered in (("remembered", True), ("stateless", False)):
                body = clock.body(window, remembered=remembered)
                before = fleet.cpu_s()
                started = time.perf_counter()
                response = http.post(f"{url}/predict", content=body)
                elapsed_s = time.perf_counter() - started
                kind = kinds[name]
                for process, spent_s in fleet.cpu_s().items():
                    kind.cpu_s[process] = kind.cpu_s.get(process, 0.0) + max(0.0, spent_s - before[process])
                response.raise_for_status()
                answer = json.loads(response.content)
                kind.latencies_s.append(elapsed_s)
                kind.states.append(answer["memory"][0]["state"])
                kind.degraded.append(answer["degraded"])
                kind.reused.append(any(b.get("forecast_age_s") is not None for b in answer["backends"]))
    return kinds


@dataclass(frozen=True)
class Step:
    """One run: answers per second and the share degraded, or with no fused answer at all."""

    rate: float
    degraded: float
    remembered: float
    reused: float  # answers in which a model's kept forecast stood in
    reused_age_s: float  # the median of their oldest kept forecasts' ages (NaN: none)
    p50_ms: float
    p99_ms: float
    gateway_p99_ms: float  # from the answers' elapsed_ms: arrival at the gateway to its answer
    gateway_cpu_ms: float  # the gateway process's CPU time per request (one event loop: at most one core)
    failed: dict[int, int]  # status (0: no answer) -> answers, for those that were not a 200
    fleet_cpu_ms: float = float("nan")  # every process of the fleet, per request
    model_calls: float = float("nan")  # calls the model services answered, per request


@dataclass
class FleetMeter:
    """The fleet's processes and its model services' addresses: what a run cost it."""

    processes: dict[str, psutil.Process]
    services: dict[str, str]

    def cpu_s(self) -> dict[str, float]:
        """Each process's CPU seconds so far, and its helpers' (the gateway's classical helper runs
        in child processes); a helper that ended meanwhile takes its seconds with it."""
        cpu = {}
        for name, process in self.processes.items():
            cpu[name] = cpu_s(process)
            cpu[f"{name}'s helpers"] = sum(_cpu_s_or_zero(child) for child in process.children(recursive=True))
        return cpu

    def model_calls(self) -> float:
        """The /predict calls the model services have answered so far (read from their metrics)."""
        calls = 0.0
        for url in self.services.values():
            text = httpx.get(f"{url}/metrics", timeout=5.0, trust_env=False).text
            calls += sum(
                sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "chronotick_requests"
                for sample in family.samples
                if sample.name == "chronotick_requests_total"
            )
        return calls


def _cpu_s_or_zero(process: psutil.Process) -> float:
    """A process's CPU seconds, or 0 for one that has just ended."""
    try:
        return cpu_s(process)
    except psutil.NoSuchProcess:
        return 0.0


def step_of(
    answers: list[Answer],
    seconds: float,
    gateway_cpu_ms: float,
    fleet_cpu_ms: float = float("nan"),
    model_calls: float = float("nan"),
) -> Step:
    """The figures of the ``answers`` to the requests sent in ``seconds``, with what they cost the
    fleet where it was measured (NaN: not)."""
    stats = summarize(answers)
    return Step(
        rate=len(answers) / seconds,
        degraded=share(a.status != 200 or a.degraded for a in answers),
        remembered=share(a.memory == ("remembered",) for a in answers),
        reused=share(a.reused_age_s is not None for a in answers),
        reused_age_s=float(np.median(ages))
        if (ages := [a.reused_age_s for a in answers if a.reused_age_s is not None])
        else float("nan"),
        p50_ms=stats["p50_ms"],
        p99_ms=stats["p99_ms"],
        gateway_p99_ms=stats["gateway_p99_ms"],
        gateway_cpu_ms=gateway_cpu_ms,
        failed={code: n for code, n in stats["statuses"].items() if code != 200},
        fleet_cpu_ms=fleet_cpu_ms,
        model_calls=model_calls,
    )


def closed_loop(url: str, streams: ClientStreams, seconds: float, fleet: FleetMeter) -> Step:
    """``streams.clients`` clients for ``seconds``: the answers to the requests sent in that time,
    and what all the requests of the run cost the fleet, per request."""
    cpu_before, calls_before = fleet.cpu_s(), fleet.model_calls()
    result = run_drill(url, streams, clients=streams.clients, duration_s=seconds)
    cpu_after, calls_after = fleet.cpu_s(), fleet.model_calls()
    per_request_ms = {
        name: max(0.0, cpu_after[name] - cpu_before[name]) / len(result.answers) * 1000.0 for name in cpu_after
    }
    return step_of(
        result.between(0.0, seconds),
        seconds,
        per_request_ms["gateway"],
        fleet_cpu_ms=sum(per_request_ms.values()),
        model_calls=(calls_after - calls_before) / len(result.answers),
    )


def agents(url: str, streams: ClientStreams, seconds: float, gateway: psutil.Process, every_s: float) -> Step:
    """``streams.clients`` agents for ``seconds``, each asking once every ``every_s`` (open loop), their
    first requests spread evenly over the first period. One asyncio loop sends them all: 32 client
    threads in this process would wait for each other's turn at the GIL, and that wait (tens of
    milliseconds at the tail, measured) would be counted as the gateway's."""
    clients = streams.clients

    async def run() -> list[Answer]:
        answers: list[Answer] = []
        started = time.monotonic()
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=30.0, headers=_JSON, trust_env=False, limits=limits) as http:

            async def agent(index: int) -> None:
                for count in range(int(seconds / every_s)):
                    await asyncio.sleep(max(0.0, started + every_s * (index / clients + count) - time.monotonic()))
                    body = streams[index + count * clients]  # made before the request's clock starts
                    sent = time.monotonic()
                    response = await http.post(f"{url}/predict", content=body)
                    elapsed_s = time.monotonic() - sent
                    answer = json.loads(response.content) if response.status_code == 200 else None
                    answers.append(
                        Answer(
                            index,
                            sent - started,
                            elapsed_s,
                            response.status_code,
                            degraded=bool(answer and answer["degraded"]),
                            memory=tuple(m["state"] for m in answer["memory"]) if answer else (),
                            gateway_s=answer["elapsed_ms"] / 1000.0 if answer else None,
                        )
                    )

            await asyncio.gather(*(agent(index) for index in range(clients)))
        return answers

    gateway_before = cpu_s(gateway)
    answers = asyncio.run(run())
    return step_of(answers, seconds, (cpu_s(gateway) - gateway_before) / len(answers) * 1000.0)


def settle(url: str) -> None:
    """Between two closed-loop runs: the calls the last one left end, and every service is back in
    the fusion (ready, its breaker not open), so that no run inherits the one before it."""
    time.sleep(SETTLE_S)

    def every_service_back() -> bool:
        services = httpx.get(f"{url}/models", timeout=5.0, trust_env=False).json()["services"]
        return all(service["ready"] and service["breaker"] != "open" for service in services)

    wait_for(every_service_back, SERVICES_BACK_S, "every service ready, its breaker not open", poll_s=0.5)


def best_rate(steps: dict[int, Step]) -> tuple[float, int] | None:
    """The highest rate, and its clients, among the runs with at most DEGRADED_AT_MOST degraded."""
    within = [(step.rate, clients) for clients, step in steps.items() if step.degraded <= DEGRADED_AT_MOST]
    return max(within) if within else None


def met(holds: bool) -> str:
    return "met" if holds else "**not met**"


def count_of(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,2,4,8,16,32", help="client counts of the capacity runs")
    parser.add_argument("--seconds-per-step", type=float, default=20.0, help="length of each closed-loop run")
    parser.add_argument("--requests", type=int, default=200, help="windows sent by the one client (each twice)")
    parser.add_argument("--one-client-clocks", type=int, default=8, help="clocks the one client takes in turn")
    parser.add_argument("--classical-clients", type=int, default=32)
    parser.add_argument(
        "--agent-every-s", type=float, default=1.0, help="how often each agent of the classical run asks"
    )
    parser.add_argument("--warm-up-clients", type=int, default=4)
    parser.add_argument("--warm-up-deadline-s", type=float, default=10.0)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    counts = [int(count) for count in args.clients.split(",")]
    seconds = args.seconds_per_step
    crowd = count_of(args.classical_clients, "client")

    load_before = os.getloadavg()[0]  # the cores are shared: say how busy they were
    warm_after = GatewaySettings().warm_after_scored  # the gateway below reads the same environment
    # A clock's 60 s forecasts are scored 12 requests later; 30 of them make it warm, if no truth is missing.
    expected = HORIZON * INTERVAL_S / REMEMBER_EVERY_S + warm_after
    clocks = [Clock.generate(seed) for seed in range(max(args.one_client_clocks, *counts, args.classical_clients))]
    warm_up_clients = min(args.warm_up_clients, len(clocks))
    with contextlib.ExitStack() as stack:
        progress("starting the fleet")
        urls = {
            family: stack.enter_context(serve_in_process(f"chronotick_{family}.main:app", python=venv_python(family)))
            for family in FAMILIES
        }
        gateway = stack.enter_context(
            serve_in_process("chronotick_gateway.main:app", env={"CHRONOTICK_GATEWAY_SERVICES": json.dumps(urls)})
        )
        fleet = {name: server_process(url) for name, url in {**urls, "gateway": gateway}.items()}
        gateway_process = fleet["gateway"]
        meter = FleetMeter(fleet, urls)
        progress(f"warming up {count_of(len(clocks), 'clock')}, {warm_up_clients} at a time")
        started = time.monotonic()
        taken = warm_up(gateway, clocks, warm_up_clients, args.warm_up_deadline_s, most=int(3 * expected))
        warm_up_s = time.monotonic() - started
        progress(f"one client, {args.requests} windows")
        single = one_client(gateway, clocks[: args.one_client_clocks], args.requests, meter)
        stateless: dict[int, Step] = {}
        warm: dict[int, Step] = {}
        for count in counts:
            progress(f"{count_of(count, 'client')}, stateless then warm, {seconds:g} s each")
            stateless[count] = closed_loop(gateway, ClientStreams(clocks, count, remembered=False), seconds, meter)
            settle(gateway)
            warm[count] = closed_loop(gateway, ClientStreams(clocks, count, remembered=True), seconds, meter)
            settle(gateway)
        progress(f"the classical members alone, {crowd}")
        classical = {}
        agents_run = f"agents, one request each {args.agent_every_s:g} s"
        for name, remembered in (("stateless", False), ("warm", True)):
            streams = ClientStreams(clocks, args.classical_clients, remembered=remembered, backends=CLASSICAL)
            classical[f"{name}, closed loop"] = closed_loop(gateway, streams, seconds, meter)
        for name, remembered in (("stateless", False), ("warm", True)):
            streams = ClientStreams(clocks, args.classical_clients, remembered=remembered, backends=CLASSICAL)
            classical[f"{name}, {agents_run}"] = agents(gateway, streams, seconds, gateway_process, args.agent_every_s)
        progress("stopping the fleet")

    cores = os.cpu_count() or 1
    by_reuse = single["remembered"].p50_ms_by_reuse()
    lines = [
        f"{count_of(len(clocks), 'synthetic clock')} warmed up in {warm_up_s:.0f} s, "
        f"{count_of(warm_up_clients, 'client')} at a time with a {args.warm_up_deadline_s:g} s deadline: each "
        f"clock's first remembered answer was its request {min(taken)} to {max(taken)} (a clock is warm after "
        f"{warm_after} scored forecasts at every horizon: about {expected:.0f} requests {REMEMBER_EVERY_S:g} s apart).",
        "",
        f"**One client**, {count_of(args.one_client_clocks, 'warm clock')} in turn, {args.requests} windows; each "
        "request naming its clock is followed at once by the same window without `clock_id`:",
        "",
        f"| request | p50 ms | p99 ms | remembered | models' forecasts reused | degraded | fleet CPU ms per request "
        f"(floor on {cores} cores) | by process |",
        "|---|---|---|---|---|---|---|---|",
        single["remembered"].row("warm clock (remembered)", cores),
        single["stateless"].row("the same window, stateless (backtests)", cores),
        "",
        "Of the warm answers, those from the models' kept forecasts: p50 {:.1f} ms, {} answers; those that asked the "
        "models: p50 {:.1f} ms, {} answers.".format(*by_reuse[True], *by_reuse[False]),
        "",
        f"**Capacity**: closed-loop clients, {seconds:g} s at each count; degraded counts the answers that were not "
        "a 200 too.",
        "",
        "| clients | stateless req/s | degraded | p50 ms | p99 ms | fleet CPU ms / model calls per request | "
        "warm req/s | degraded | remembered | models' forecasts reused (median age) | p50 ms | p99 ms | "
        "fleet CPU ms / model calls per request |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count in counts:
        a, b = stateless[count], warm[count]
        lines.append(
            f"| {count} | {a.rate:.1f} | {a.degraded:.0%} | {a.p50_ms:.0f} | {a.p99_ms:.0f} | "
            f"{a.fleet_cpu_ms:.0f} / {a.model_calls:.1f} | {b.rate:.1f} | {b.degraded:.0%} | "
            f"{b.remembered:.0%} | {b.reused:.0%} ({b.reused_age_s:.0f} s) | {b.p50_ms:.0f} | {b.p99_ms:.0f} | "
            f"{b.fleet_cpu_ms:.0f} / {b.model_calls:.1f} |"
        )
    best = {"stateless": best_rate(stateless), "warm": best_rate(warm)}
    said = {
        name: "none" if rate is None else f"{rate[0]:.1f} req/s at {count_of(rate[1], 'client')}"
        for name, rate in best.items()
    }
    ratio = best["warm"][0] / best["stateless"][0] if best["warm"] and best["stateless"] else float("nan")
    lines += [
        "",
        f"The highest request rate with at most {DEGRADED_AT_MOST:.0%} degraded: stateless {said['stateless']}, "
        f"warm {said['warm']}; ratio {ratio:.1f}x (target >= 5x). (Fleet CPU: every process of the fleet, "
        f"per request; at {cores} cores it bounds the rate at {cores} x 1000 / that many ms. Model calls: the "
        f"/predict calls the model services answered, per request; a stateless one asks each of the models once, "
        f"a warm one only those whose kept forecast cannot stand in.)",
        "",
        f"**The classical members alone** (`backends`: {', '.join(CLASSICAL)}), {crowd}, {seconds:g} s:",
        "",
        "| request | req/s | degraded | remembered | p50 ms | p99 ms | gateway's own p99 ms | gateway CPU ms per "
        "request |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {step.rate:.1f} | {step.degraded:.0%} | {step.remembered:.0%} | {step.p50_ms:.1f} | "
            f"{step.p99_ms:.1f} | {step.gateway_p99_ms:.1f} | {step.gateway_cpu_ms:.1f} |"
            for name, step in classical.items()
        ],
        "",
        "(p50/p99: as the clients saw them; the gateway's own: from arrival, before its body is read, to its "
        "answer, its `elapsed_ms`. The agents are one asyncio loop in the benchmark's process.)",
    ]
    runs = [
        *[(f"stateless, {count_of(count, 'client')}", step) for count, step in stateless.items()],
        *[(f"warm, {count_of(count, 'client')}", step) for count, step in warm.items()],
        *[(f"classical members {name}, {crowd}", step) for name, step in classical.items()],
    ]
    failed = [f"{name}: {step.failed}" for name, step in runs if step.failed]
    if failed:
        lines += ["", "Answers that were not a 200 (status: count; 0 is no answer): " + "; ".join(failed) + "."]
    warm_p50 = percentile_ms(single["remembered"].latencies_s, 50)
    classical_p99 = classical[f"warm, {agents_run}"].p99_ms
    closed_p99 = classical["warm, closed loop"].p99_ms
    lines += [
        "",
        f"Targets: warm p50 at one client {warm_p50:.1f} ms (<= 60: {met(warm_p50 <= 60)}); capacity ratio "
        f"{ratio:.1f}x (>= 5x: {met(ratio >= 5)}); the classical members alone, warm, p99 at {crowd} asking "
        f"as agents {classical_p99:.1f} ms (<= 20: {met(classical_p99 <= 20)}; closed loop {closed_p99:.0f} ms, "
        f"which Little's law ties to the rate: {args.classical_clients} requests always in flight).",
    ]
    load = f"1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = f"{provenance('warm_clocks.py', sys.argv[1:])}; {load}.\n\n" + "\n".join(lines)
    print(text)
    if args.write:
        write_record(args.write, "warm_clocks", f"### Warm clocks (issue 16)\n\n{text}")


if __name__ == "__main__":
    main()
