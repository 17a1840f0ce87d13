"""A warm clock's model forecasts, reused for a few seconds of the clock's time, re-anchored.

An agent asks about its clock every second (a 10 s forecast; ``chronotick.agent``), and every model
forecast costs the fleet some 10 ms of CPU and the gateway an HTTP call. Over a few seconds a model's
view of a clock barely moves: what changes is where the clock now is. So for a clock on the warm path
each model's last fresh forecast is kept, and a request up to ``most_s`` later (of the clock's own
time, its samples' timestamps) is answered with it *re-anchored*: the path the model foresaw from
the new origin on, moved to start from the newest sample,

    mean'[k] = last sample + (mean[d + k] - mean[d])        (d: steps since the kept forecast's origin)

and the spread of a forecast k steps ahead, std[k]. So that the path is the model's own to the end,
a warm clock's models are asked that much further ahead than the request's horizon, as far as each
forecasts in the passes the horizon takes anyway (``ModelInfo.one_pass_horizon``; the answer gets
the horizon's steps); steps past a kept forecast's end (for models that stop at 64 steps: a few, or
up to 16 when reused under load) continue its last step's slope. The classical members and the
clock's own autoregression are always fresh, and the memory scores a reused forecast as that
member's answer (it is what the fusion got), so a member whose reused forecasts are worse at a
horizon loses its weight there by itself.

Under load a kept forecast stands in longer: when a model is busy (a call of it is expected to take
more than half the time the request has left, waiting behind its calls in flight included:
``CallCoalescer.busy``), up to ``busy_s`` instead of ``most_s``. A call sent then would wait in a
queue and likely miss the deadline, and the member would be dropped from the answer; a forecast a
few seconds older keeps it, and every call not sent lets the queue drain, so the fleet settles where
its calls come back in time instead of where every one of them is late.

Kept per gateway process, not in the clock store: losing it (a restart, another replica serving the
clock) costs one fresh forecast per member, nothing else. Bounded: the least recently used clock is
dropped beyond ``max_clocks``; a clock holds one forecast per model (two float32 arrays of its
steps, the mean as its changes from its first step: about 1 kB per model at 70 steps with the
objects' overhead (measured; 80 bytes more at the 80 steps that reuse under load asks for), some
70 MB for 10,000 clocks of 7 models). A forecast from another version of a model (a reload) is
never reused.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chronotick.contract import ModelInfo
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.clocks import RecalledClock
from chronotick_gateway.fleet import Service
from chronotick_gateway.fusion import MemberForecast
from chronotick_gateway.members import MemberResult

# A request's origin lines up with a kept forecast's steps within this share of a cadence.
STEP_TOLERANCE = 0.25


def reuse_steps(most_s: float, interval_s: float) -> int:
    """The most steps of ``interval_s`` a kept forecast may be moved: ``most_s`` in whole steps."""
    return int(most_s / interval_s + STEP_TOLERANCE)


@dataclass(frozen=True, slots=True)
class KeptForecast:
    """A model's fresh forecast of a clock, from the origin at ``origin_s`` (its context's last
    sample's time), one value per step of ``interval_s`` after it."""

    version: str
    origin_s: float
    interval_s: float
    path_us: np.ndarray  # (H,) the mean forecast less its first step: only its changes are reused
    std_us: np.ndarray  # (H,)


def reanchored(
    kept: KeptForecast, origin_s: float, interval_s: float, last_us: float, horizon: int, most_s: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``kept`` moved to the origin at ``origin_s`` with the sample ``last_us`` there: (mean, std, its
    age in seconds); None where it cannot stand in for a fresh forecast (too old, not on the same
    grid, too short for ``horizon``, or no sample to anchor at)."""
    if abs(interval_s - kept.interval_s) > 1e-9 * interval_s or not np.isfinite(last_us):
        return None
    age_s = origin_s - kept.origin_s
    steps = round(age_s / interval_s)
    off_grid = abs(age_s - steps * interval_s) > STEP_TOLERANCE * interval_s
    # (too old in whole steps: with a log's median spacing as the cadence, 1.00002 s say, 10 steps are 10.0002 s)
    if steps < 1 or off_grid or steps > reuse_steps(most_s, interval_s):
        return None
    kept_steps = kept.path_us.size
    if horizon > kept_steps:
        return None
    path = kept.path_us.astype(np.float64)  # path[j]: the forecast j + 1 steps after the kept origin
    beyond = steps + horizon - kept_steps
    if beyond > 0:  # at most ``steps``: continue the last step's slope
        slope = path[-1] - path[-2] if kept_steps > 1 else 0.0
        path = np.concatenate([path, path[-1] + slope * np.arange(1, beyond + 1)])
    mean = last_us + path[steps : steps + horizon] - path[steps - 1]
    return mean, kept.std_us[:horizon].astype(np.float64), float(age_s)


class ForecastReuse:
    """Each clock's last fresh forecast of each model (of up to ``max_clocks`` clocks)."""

    def __init__(self, max_clocks: int) -> None:
        self.max_clocks = max_clocks
        self._clocks: OrderedDict[str, dict[str, KeptForecast]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clocks)

    def reuse(
        self,
        clock_id: str,
        model: str,
        version: str,
        origin_s: float,
        interval_s: float,
        last_us: float,
        horizon: int,
        most_s: float,
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The model's kept forecast of the clock, re-anchored if at most ``most_s`` old
        (``reanchored``); None: ask the model."""
        kept = self._clocks.get(clock_id, {}).get(model)
        if kept is None or kept.version != version:
            return None
        return reanchored(kept, origin_s, interval_s, last_us, horizon, most_s)

    def keep(
        self,
        clock_id: str,
        model: str,
        version: str,
        origin_s: float,
        interval_s: float,
        mean_us: np.ndarray,
        std_us: np.ndarray,
    ) -> None:
        """Keep a fresh forecast (never a re-anchored one: its age would start again)."""
        if not (np.all(np.isfinite(mean_us)) and np.all(np.isfinite(std_us))):
            return
        models = self._clocks.setdefault(clock_id, {})
        self._clocks.move_to_end(clock_id)
        # float32 keeps changes of up to 16 ms to a nanosecond: relative to the first step, not to
        # zero, where a clock far off its reference would need every digit for its level.
        models[model] = KeptForecast(
            version, origin_s, interval_s, (mean_us - mean_us[0]).astype(np.float32), std_us.astype(np.float32)
        )
        while len(self._clocks) > self.max_clocks:
            self._clocks.popitem(last=False)

    def forget(self, clock_id: str) -> None:
        self._clocks.pop(clock_id, None)


def reuse_reach(plans: list[SeriesPlan], warm: list[RecalledClock], horizon: int, most_s: float) -> int | None:
    """How far ahead to ask the models so that their forecasts can stand in for the next ``most_s``
    seconds, for a request on the warm path (``warm``: its series' clocks, ``clocks.warm_clocks``);
    None: ask them for ``horizon``."""
    if most_s <= 0 or not warm:
        return None
    return horizon + max(reuse_steps(most_s, plan.grid.interval_s) for plan in plans)


def within(result: MemberResult, horizon: int) -> MemberResult:
    """The member's forecasts cut to the answer's horizon (a model asked further, for reuse)."""
    if result.forecasts is None or all(f.mean_us.size == horizon for f in result.forecasts):
        return result
    return dataclasses.replace(
        result,
        forecasts=[
            dataclasses.replace(
                f,
                mean_us=f.mean_us[:horizon],
                std_us=f.std_us[:horizon],
                backtest_errors_us=f.backtest_errors_us[:, :horizon],
                backtest_std_us=f.backtest_std_us[:, :horizon],
            )
            for f in result.forecasts
        ],
    )


def reused_members(
    reuse: ForecastReuse,
    remote: list[tuple[Service, ModelInfo]],
    plans: list[SeriesPlan],
    warm: list[RecalledClock],
    horizon: int,
    most_s: float,
    busy_s: float,
    remaining_s: float,
    busy: Callable[[Service, str, float], bool],
) -> tuple[list[tuple[Service, ModelInfo]], list[MemberResult]]:
    """The remote members still to ask, and those answered from their kept forecasts, for a request
    on the warm path (``warm``: its series' clocks) with ``remaining_s`` before its deadline: a
    member is not asked when every series' clock has a kept forecast of it recent enough (at most
    ``most_s`` old, or ``busy_s``, at least as long, while ``busy`` says a call of the model would
    take too long: ``CallCoalescer.busy``; one series left out would need the call all the same)."""
    ask, reused = [], []
    for service, model in remote:
        oldest_s = busy_s if busy(service, model.name, remaining_s) else most_s
        answers = [
            reuse.reuse(
                clock.clock_id,
                model.name,
                model.model_version,
                clock.samples.last_s,
                plan.grid.interval_s,
                float(plan.grid.offsets_us[-1]),
                horizon,
                oldest_s,
            )
            for clock, plan in zip(warm, plans, strict=True)
        ]
        kept = [answer for answer in answers if answer is not None]
        if len(kept) < len(answers):
            ask.append((service, model))
            continue
        forecasts = [MemberForecast.without_backtests(mean, std) for mean, std, _ in kept]
        reused.append(
            MemberResult(model.name, service.name, "ok", None, 0.0, 0, forecasts, age_s=max(age for _, _, age in kept))
        )
    return ask, reused


def keep_fresh(
    reuse: ForecastReuse, results: list[MemberResult], versions: dict[str, str], warm: list[RecalledClock]
) -> None:
    """Keep the fresh forecasts of the models just asked (``versions``) of the request's clocks
    (``warm``, in series order)."""
    for result in results:
        if not result.ok or result.name not in versions or result.forecasts is None:
            continue
        for index, clock in enumerate(warm):
            forecast = result.forecasts[index]
            reuse.keep(
                clock.clock_id,
                result.name,
                versions[result.name],
                clock.samples.last_s,
                clock.samples.interval_s,
                forecast.mean_us,
                forecast.std_us,
            )
