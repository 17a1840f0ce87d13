"""Request bodies and metric readings shared by the integration tests."""

from __future__ import annotations

import math
import re

import httpx

from chronotick.synthetic import generate_clock


def clock_body(seed: int, *, length: int = 128, horizon: int = 10, deadline_s: float = 5.0) -> dict[str, object]:
    """A fused /predict request for one synthetic clock (missing samples as null)."""
    offsets = generate_clock("mixed", length, seed=seed).observed_offset_us
    series = {"offsets_us": [None if math.isnan(v) else float(v) for v in offsets], "interval_s": 1.0}
    return {"series": [series], "horizon": horizon, "deadline_s": deadline_s}


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
