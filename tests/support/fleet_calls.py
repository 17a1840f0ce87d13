"""Request bodies and metric readings shared by the integration tests."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import httpx
import numpy as np

from chronotick.synthetic import generate_clock


def clock_body(seed: int, *, length: int = 128, horizon: int = 10, deadline_s: float = 5.0) -> dict[str, object]:
    """A fused /predict request for one synthetic clock (missing samples as null)."""
    offsets = generate_clock("mixed", length, seed=seed).observed_offset_us
    series = {"offsets_us": [None if math.isnan(v) else float(v) for v in offsets], "interval_s": 1.0}
    return {"series": [series], "horizon": horizon, "deadline_s": deadline_s}


class AgentStreams(Sequence[bytes]):
    """The bodies a load drill posts (``run_drill``: client i's k-th request is body i + k * clients):
    client i is the agent of clock ``{prefix}{i}``, asking every ``every_s`` seconds of its clock's
    time, in time order, for ``windows`` requests: more than a drill sends, so that no clock goes back
    in time; ``backends`` picks the members (all of them when None). Each body is made when a client asks
    for it, in the client's thread."""

    def __init__(
        self,
        prefix: str,
        clients: int,
        *,
        seed: int,
        windows: int = 2000,
        context: int = 512,
        horizon: int = 60,
        every_s: int = 5,
        backends: list[str] | None = None,
    ) -> None:
        self.prefix, self.clients, self.windows = prefix, clients, windows
        self.context, self.horizon, self.every_s, self.backends = context, horizon, every_s, backends
        self.offsets = [
            generate_clock("mixed", context + every_s * windows, seed=seed + i).observed_offset_us
            for i in range(clients)
        ]

    def __len__(self) -> int:
        return self.clients * self.windows

    def __getitem__(self, position: int) -> bytes:  # type: ignore[override]
        clock, window = position % self.clients, position // self.clients
        body = agent_body(
            self.offsets[clock],
            window,
            f"{self.prefix}{clock}",
            context=self.context,
            every_s=self.every_s,
            horizon=self.horizon,
        )
        if self.backends is not None:
            body["backends"] = self.backends
        return json.dumps(body).encode()


def agent_body(
    offsets_us: np.ndarray, window: int, clock_id: str, *, context: int = 512, every_s: int = 5, horizon: int = 60
) -> dict[str, object]:
    """An agent's ``window``-th request for its clock, whose 1 Hz samples are ``offsets_us`` from time 0:
    the ``context`` samples ending ``every_s`` seconds after the window before's, with their start time."""
    end = context + every_s * window
    offsets = offsets_us[end - context : end]
    series = {
        "offsets_us": [None if math.isnan(v) else float(v) for v in offsets],
        "interval_s": 1.0,
        "start_s": float(end - context),
        "clock_id": clock_id,
    }
    return {"series": [series], "horizon": horizon}


def metric_total(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels contain ``labels`` (regex values)."""
    total = 0.0
    for line in metrics_text.splitlines():
        match = re.match(rf"^{name}(?:_total)?\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(re.fullmatch(pattern, found.get(key, "")) for key, pattern in labels.items()):
            total += float(match.group(2))
    return total


def read_metrics(base_url: str) -> str:
    response = httpx.get(f"{base_url}/metrics", timeout=5.0)
    response.raise_for_status()
    return response.text
