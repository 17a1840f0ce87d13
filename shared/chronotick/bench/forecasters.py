"""Who forecasts the origins: the live gateway over HTTP, or the classical forecasters in process.

Both answer a batch of contexts with, per method, (B, K) means and interval bounds at the K
evaluated horizons (``metrics.Forecasts``). From the gateway come the fused forecast (its
intervals from the quantiles it returns) and every member's own forecast with the std the
gateway calibrated for it; in process, the classical forecasters' own, uncalibrated std.

Only the gateway remembers clocks: ``forecast_clock`` asks for one origin of a named clock (the
replay mode, ``bench.replay``), and ``forget_clock`` makes the clock start cold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.bench.metrics import Forecasts
from chronotick.cleaning import without_spikes

FUSED = "fused"
# In replay mode, the fused forecast of the same origin asked for without naming the clock.
FUSED_STATELESS = "fused-stateless"
QUANTILE_LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]
# Indices of the 95 % and 80 % bounds in QUANTILE_LEVELS.
_LOWER95, _LOWER80, _UPPER80, _UPPER95 = 0, 1, 3, 4
CLASSICAL_NAMES = tuple(f.name for f in CLASSICAL_FORECASTERS)


@dataclass
class BatchAnswer:
    """Per method (B, K) forecasts; the fused full path (B, H) mean and (B, 5, H) quantiles; per series,
    what its clock's memory did (the gateway's ``SeriesMemory``, empty from a gateway without memory)."""

    methods: dict[str, Forecasts]
    classical: set[str]
    latency_s: float | None = None
    path_mean_us: np.ndarray | None = None
    path_quantiles_us: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)


def _optional(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values.tolist()]


def _at(rows: list[list[float]], columns: np.ndarray) -> np.ndarray:
    """(B, K) values at step columns (0-based; -1 = horizon not on the grid -> NaN)."""
    table = np.asarray(rows, dtype=np.float64)
    picked = table[:, np.maximum(columns, 0)]
    picked[:, columns < 0] = np.nan
    return picked


class InProcessForecaster:
    """The classical forecasters, called directly: no fleet needed, a fast baseline.

    With ``clean`` each context's spikes become missing samples first, as the gateway does.
    """

    def __init__(self, *, clean: bool = True) -> None:
        self._clean = clean

    def forecast(self, contexts: list[np.ndarray], interval_s: float, horizon: int, columns: np.ndarray) -> BatchAnswer:
        if self._clean:
            contexts = [without_spikes(context)[0] for context in contexts]
        methods: dict[str, Forecasts] = {}
        for forecaster in CLASSICAL_FORECASTERS:
            means, stds = [], []
            for context in contexts:
                result = forecaster.forecast(context, horizon, interval_s=interval_s)
                means.append(result.mean_us)
                stds.append(result.std_us)
            methods[forecaster.name] = Forecasts.from_std(_at(means, columns), _at(stds, columns))
        return BatchAnswer(methods, set(methods))


class GatewayRefused(RuntimeError):
    """The gateway refused a call the benchmark cannot go on without; the message says which and why."""


class GatewayForecaster:
    """One POST /predict per batch of contexts (each context one series of the request)."""

    def __init__(
        self, url: str, *, deadline_s: float, timeout_s: float, api_key: str | None = None, clean: bool = True
    ) -> None:
        import httpx  # only the gateway mode needs it (the core environment has no httpx)

        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers)
        self._deadline_s = deadline_s
        self._clean = clean
        self._error = httpx.HTTPError

    def close(self) -> None:
        self._client.close()

    def models(self) -> dict[str, Any]:
        response = self._client.get("/models")
        response.raise_for_status()
        return response.json()

    def forecast(self, contexts: list[np.ndarray], interval_s: float, horizon: int, columns: np.ndarray) -> BatchAnswer:
        return self._predict(
            [{"offsets_us": _optional(c), "interval_s": interval_s} for c in contexts], horizon, columns
        )

    def forecast_clock(
        self,
        context: np.ndarray,
        interval_s: float,
        horizon: int,
        columns: np.ndarray,
        *,
        clock_id: str,
        start_s: float,
    ) -> BatchAnswer:
        """One origin of a remembered clock: the series names it and says when its first sample was."""
        series = {"offsets_us": _optional(context), "interval_s": interval_s, "start_s": start_s, "clock_id": clock_id}
        return self._predict([series], horizon, columns)

    def forget_clock(self, clock_id: str) -> None:
        """DELETE /clocks/{clock_id}: its next request starts cold (a clock it does not know is forgotten already)."""
        try:
            response = self._client.delete(f"/clocks/{clock_id}")
        except self._error as error:
            raise GatewayRefused(f"forgetting clock {clock_id!r} failed: {error!r}") from error
        if response.status_code not in (200, 204, 404):
            raise GatewayRefused(
                f"forgetting clock {clock_id!r}: the gateway answered {response.status_code}: {response.text[:300]}"
            )

    def _predict(self, series: list[dict[str, Any]], horizon: int, columns: np.ndarray) -> BatchAnswer:
        body = {
            "series": series,
            "horizon": horizon,
            "quantile_levels": QUANTILE_LEVELS,
            "deadline_s": self._deadline_s,
            "clean": self._clean,
        }
        started = time.perf_counter()
        try:
            response = self._client.post("/predict", json=body)
        except self._error as error:
            return BatchAnswer({}, set(), problems=[f"gateway call failed: {error!r}"])
        latency_s = time.perf_counter() - started
        if response.status_code != 200:
            return BatchAnswer(
                {}, set(), latency_s, problems=[f"gateway answered {response.status_code}: {response.text[:300]}"]
            )
        return parse_answer(response.json(), columns, latency_s)


def parse_answer(answer: dict[str, Any], columns: np.ndarray, latency_s: float | None = None) -> BatchAnswer:
    """The fused forecast and each member's calibrated forecast from a FusedPredictResponse body."""
    fused = answer["forecasts"]
    quantiles = np.asarray([f["quantiles_us"] for f in fused], dtype=np.float64)  # (B, 5, H)
    mean = np.asarray([f["mean_us"] for f in fused], dtype=np.float64)
    pick = np.maximum(columns, 0)

    def bound(level: int) -> np.ndarray:
        values = quantiles[:, level, :][:, pick]
        values[:, columns < 0] = np.nan
        return values

    methods = {
        FUSED: Forecasts(
            _at(mean.tolist(), columns), bound(_LOWER80), bound(_UPPER80), bound(_LOWER95), bound(_UPPER95)
        )
    }
    classical: set[str] = set()
    problems: list[str] = []
    for backend in answer["backends"]:
        if backend["status"] != "ok" or not backend.get("forecasts"):
            problems.append(f"{backend['name']}: {backend['status']}: {backend.get('reason')}")
            continue
        # A member with no usable spread for a series is null there: it had no say, score it as missing.
        horizon = len(mean[0])
        missing = [float("nan")] * horizon
        members = backend["forecasts"]
        methods[backend["name"]] = Forecasts.from_std(
            _at([f["mean_us"] if f else missing for f in members], columns),
            _at([f["std_us"] if f else missing for f in members], columns),
        )
        if backend.get("service") is None:
            classical.add(backend["name"])
    return BatchAnswer(methods, classical, latency_s, mean, quantiles, problems, answer.get("memory", []))
