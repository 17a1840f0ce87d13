"""The forecast contract: the one schema that services, gateway, client and tests share.

Sign convention (the only one in the project): ``offset_us`` is the local clock's reading minus the
reference time, in microseconds. Positive means the local clock is ahead (fast), as in chrony's
tracking log; the correction a host applies is ``-offset_us``. Readers of logs that use the opposite
sign (Meinberg ``mbgsvcd`` reports reference minus system) negate on the way in.

Missing samples are ``null`` in JSON (``None`` here). NaN and infinity are refused: a value that is
not a number must be marked missing explicitly, so that a broken sensor never passes for a
measurement. Finite numbers are bounded too, far beyond any real clock (the ``MAX_``/``MIN_``
constants below say why): a value outside is refused like a NaN, never left to overflow later.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

MAX_SERIES_PER_REQUEST = 256
MAX_POINTS_PER_SERIES = 8192
MAX_HORIZON_STEPS = 1024
# A series with fewer observed samples than this leaves every member, classical ones included,
# without a spread: the gateway refuses it (422), and the clients wait until they have as many.
MIN_OBSERVED_SAMPLES = 8
DEFAULT_QUANTILE_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

# Bounds on the size of every number a request carries. Each is far beyond any real clock, and each
# keeps the arithmetic done on the numbers (squares of differences in a variance, a Kalman filter's
# covariances, slot indices) finite in float64, and in the float32 that models compute in.
# |offset| of at most 1e15 us, about 31.7 years: no clock worth forecasting is further off, and the
# square of a difference of two offsets (4e30) stays far inside float32's range (3.4e38).
MAX_ABS_OFFSET_US = 1e15
# A covariate is a physical reading (a temperature, a load, a frequency): the offsets' cap, for the
# same arithmetic after a model standardises it.
MAX_ABS_COVARIATE = 1e15
# The cadence: at least a microsecond (no offset is measured faster; PTP's fastest sync is 1/128 s),
# at most a day.
MIN_INTERVAL_S = 1e-6
MAX_INTERVAL_S = 86_400.0
# Timestamps within 1e11 s (about 3,170 years) of their epoch: Unix, GPS or PTP time and seconds
# since boot all fit, float64 still resolves 2e-5 s there, and a span over the smallest cadence,
# (t - t0) / MIN_INTERVAL_S <= 2e17, is an exact slot index (int64 holds 9.2e18).
MAX_ABS_TIMESTAMP_S = 1e11
# A gateway's deadline: a fan-out to the fleet and a model call take tens of milliseconds, and the
# gateway keeps some of the deadline for fusion (30 ms by default); a shorter one could only time out.
MIN_DEADLINE_S = 0.1
MAX_DEADLINE_S = 30.0
# Quantile levels from one in a million to one minus that: no forecast here has evidence about a
# tail further out (the gateway calibrates on a few dozen backtest origins at most), and within it
# the gateway's Student-t quantiles invert accurately (scipy's inversion fails far out in the tail).
MIN_QUANTILE_LEVEL = 1e-6

OFFSET_SIGN_CONVENTION = (
    "offset_us = local clock reading - reference time, in microseconds; positive means the local "
    "clock is ahead (fast); the correction to apply is -offset_us."
)

# JSON floats are finite by construction of this config: pydantic would otherwise accept the
# non-standard NaN/Infinity tokens.
_STRICT_NUMBERS = ConfigDict(allow_inf_nan=False, extra="forbid")

Offset = Annotated[float, Field(ge=-MAX_ABS_OFFSET_US, le=MAX_ABS_OFFSET_US)]
MaybeOffset = Offset | None
CovariateValue = Annotated[float, Field(ge=-MAX_ABS_COVARIATE, le=MAX_ABS_COVARIATE)]
Timestamp = Annotated[float, Field(ge=-MAX_ABS_TIMESTAMP_S, le=MAX_ABS_TIMESTAMP_S)]
QuantileLevel = Annotated[float, Field(ge=MIN_QUANTILE_LEVEL, le=1.0 - MIN_QUANTILE_LEVEL)]
# A clock's name: a host name, an interface (host.eth0), a PTP clock identity (00:1b:21:ff:fe:4a:5c:10)
# all fit. Bounded, and of characters that need no escaping in a URL path segment, a log line or a Redis key.
CLOCK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
ClockId = Annotated[str, Field(min_length=1, max_length=128, pattern=CLOCK_ID_PATTERN)]


class Covariate(BaseModel):
    """A named driver of the clock (temperature, CPU load ...) aligned with the offsets.

    ``past`` has one value per offset sample (``null`` where missing). ``future`` holds values known
    in advance for each forecast step (a scheduled load, say); only models that use future
    covariates accept it.
    """

    model_config = _STRICT_NUMBERS

    past: Annotated[list[CovariateValue | None], Field(min_length=1, max_length=MAX_POINTS_PER_SERIES)]
    future: Annotated[list[CovariateValue], Field(min_length=1, max_length=MAX_HORIZON_STEPS)] | None = None


class SeriesInput(BaseModel):
    """One clock's recent history, oldest first, on a regular cadence.

    Give either ``interval_s`` (the cadence) or ``timestamps_s`` (one per sample, strictly
    increasing); with timestamps, samples are placed on the grid of their median spacing (which
    must lie within the bounds of ``interval_s``) and the holes between them become missing samples.

    A series that names its clock (``clock_id``) lets the gateway remember that clock: it scores its
    earlier forecasts on the samples that have arrived since, and learns weights and bounds from
    them. It then needs sample times to line the samples up with those forecasts: ``timestamps_s``,
    or ``interval_s`` with ``start_s``, the time of the first sample (any epoch, the same every time).
    """

    model_config = _STRICT_NUMBERS

    id: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="Client label echoed back in the forecast."
    )
    offsets_us: Annotated[list[MaybeOffset], Field(min_length=1, max_length=MAX_POINTS_PER_SERIES)]
    interval_s: Annotated[float, Field(ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)] | None = None
    timestamps_s: Annotated[list[Timestamp], Field(max_length=MAX_POINTS_PER_SERIES)] | None = None
    start_s: Timestamp | None = Field(
        default=None,
        description="With interval_s: the time of the first sample, in seconds (any epoch, the "
        "same from request to request). Needed with clock_id when there are no timestamps_s.",
    )
    clock_id: ClockId | None = Field(
        default=None,
        description="The clock this series measures (a host name, say): the gateway remembers "
        "it, scores its forecasts as the truth arrives and learns the fusion weights and bounds of this clock. "
        "Needs sample times (timestamps_s, or interval_s with start_s).",
    )
    covariates: Annotated[dict[str, Covariate], Field(max_length=16)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_alignment(self) -> Self:
        if (self.interval_s is None) == (self.timestamps_s is None):
            raise ValueError("give exactly one of interval_s or timestamps_s")
        n = len(self.offsets_us)
        if self.timestamps_s is not None:
            if len(self.timestamps_s) != n:
                raise ValueError(f"timestamps_s has {len(self.timestamps_s)} values but offsets_us has {n}")
            if any(b <= a for a, b in pairwise(self.timestamps_s)):
                raise ValueError("timestamps_s must be strictly increasing")
            if self.start_s is not None:
                raise ValueError("give start_s with interval_s only: timestamps_s already say when each sample was")
        if self.clock_id is not None and self.timestamps_s is None and self.start_s is None:
            raise ValueError("a series with a clock_id needs sample times: timestamps_s, or start_s with interval_s")
        if all(v is None for v in self.offsets_us):
            raise ValueError("offsets_us holds no observed value (all null)")
        for name, covariate in self.covariates.items():
            if len(covariate.past) != n:
                raise ValueError(f"covariate {name!r}: past has {len(covariate.past)} values but offsets_us has {n}")
        return self


class ForecastQuery(BaseModel):
    """What to forecast: up to 256 clocks, ``horizon`` steps ahead at each series' own cadence."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    series: Annotated[list[SeriesInput], Field(min_length=1, max_length=MAX_SERIES_PER_REQUEST)]
    horizon: Annotated[int, Field(ge=1, le=MAX_HORIZON_STEPS, description="Steps ahead.")]
    quantile_levels: Annotated[list[QuantileLevel], Field(min_length=1, max_length=99)] = Field(
        default_factory=lambda: list(DEFAULT_QUANTILE_LEVELS)
    )
    clean: bool = Field(
        default=True,
        description="Find spikes (a delayed NTP reply, a network burst) and treat them as missing samples "
        "before forecasting; the response's flagged_outliers lists them. See chronotick.cleaning.",
    )

    @model_validator(mode="after")
    def _check_query(self) -> Self:
        levels = self.quantile_levels
        if any(b <= a for a, b in pairwise(levels)):
            raise ValueError("quantile_levels must be strictly increasing")
        for index, series in enumerate(self.series):
            for name, covariate in series.covariates.items():
                if covariate.future is not None and len(covariate.future) != self.horizon:
                    raise ValueError(
                        f"series {index}, covariate {name!r}: future has {len(covariate.future)} "
                        f"values but horizon is {self.horizon}"
                    )
        return self


_EXAMPLE_SERIES: JsonDict = {
    "offsets_us": [3.1, 3.4, None, 4.0, 4.2, 4.5, 4.9, 5.0, 5.3, 5.6],
    "interval_s": 1.0,
}


class PredictRequest(ForecastQuery):
    """A family service's request: the query, and optionally which of its models answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"series": [_EXAMPLE_SERIES], "horizon": 5}]})

    model: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="Model within the family; the family's default when omitted."
    )
    skip_spread_backtests: bool = Field(
        default=False,
        description="For callers that calibrate spreads themselves (the gateway does, on its own backtests). "
        "A point forecaster (a model without native quantiles, such as TinyTimeMixer or Time-MoE) then skips "
        "its residual-spread backtests, the extra forecasts from rolling origins of each context that are "
        "most of its cost, and answers its point forecast with the context's random-walk spread (the RMS of "
        "its h-step changes) as std_us and quantiles around it: a cheap, uncalibrated claim. Models with "
        "native quantiles or samples answer the same either way.",
    )


# A caller's time limit for one POST /predict, in milliseconds, as a request header. A family
# service drops the request, unanswered (504), when it is still queued once that time has passed:
# under overload, work whose caller has gone would only delay the work of callers still waiting.
TIMEOUT_HEADER = "x-chronotick-timeout-ms"


class SeriesForecast(BaseModel):
    """The forecast of one series, one value per step ahead.

    ``std_us`` is the model's own spread turned into a normal-equivalent standard deviation: for
    each symmetric pair of its native quantiles (q_a, q_1-a) it is (q_1-a - q_a) / (z_1-a - z_a),
    averaged over the pairs. It is the model's claim, not a calibrated error: the gateway calibrates.
    """

    # A backend that answers NaN is a failed backend: refusing it here keeps it out of fusion.
    model_config = ConfigDict(allow_inf_nan=False)

    id: str | None = None
    interval_s: float = Field(description="The cadence the steps are at.")
    mean_us: list[float]
    quantiles_us: list[list[float]] = Field(
        description="One list per entry of the response's quantile_levels, each one value per step."
    )
    std_us: list[float]


class Timings(BaseModel):
    queue_ms: float = Field(description="Waiting for a batch slot and the batch window.")
    inference_ms: float = Field(description="The model call for the whole batch this request ran in.")
    total_ms: float


class PredictResponse(BaseModel):
    family: str
    model: str
    model_id: str = Field(description="Where the weights came from: a local directory or a hub id.")
    model_version: str = Field(description="Hash of the weights file(s): changes when the weights do.")
    horizon: int
    quantile_levels: list[float]
    sign_convention: str = OFFSET_SIGN_CONVENTION
    forecasts: list[SeriesForecast]
    flagged_outliers: list[list[int]] = Field(
        default_factory=list,
        description="Per series: indices into its offsets_us that cleaning flagged as spikes and treated as "
        "missing (empty lists when the request had clean=false).",
    )
    batch_series: int = Field(description="Series in the model batch this request was part of.")
    timings: Timings


# How a service hands a model its context (``chronotick.kit.scaling``): "anchored", relative to the last observed
# value; "last-value-mad", also divided by the context's mean absolute step; "first-differences", the steps between
# consecutive samples in that unit (the model answers steps too, which the kit sums back into offsets).
InputScaling = Literal["anchored", "last-value-mad", "first-differences"]


class ModelInfo(BaseModel):
    name: str
    model_id: str
    model_version: str
    library: str
    min_context: int
    max_context: int = Field(description="Older samples than this are not seen by the model.")
    max_horizon: int
    one_pass_horizon: int | None = Field(
        default=None,
        description="The longest horizon the model forecasts in one pass, where longer ones take more passes "
        "(Toto decodes one 64-step patch a pass); null: any horizon up to max_horizon costs about the same.",
    )
    native_quantile_levels: list[float]
    past_covariates: bool
    future_covariates: bool
    covariate_names: list[str] | None = Field(
        default=None,
        description="For a model that takes covariates (past_covariates), the ones it knows: null = any name "
        "(it takes them as generic drivers); a list = only those it was trained with, and a request carrying "
        "another is refused (422). The gateway sends each model only the covariates it knows.",
    )
    input_scaling: InputScaling = Field(
        default="anchored",
        description="What the model sees: every context relative to its last observed value (anchored), or also "
        "divided by its mean absolute step (last-value-mad), or as the steps between its samples in that unit "
        "(first-differences), as the checkpoint was trained; answers are mapped back.",
    )

    @model_validator(mode="after")
    def _no_names_without_covariates(self) -> Self:
        if self.covariate_names and not self.past_covariates:
            raise ValueError("covariate_names given for a model that takes no covariates")
        return self

    def known_covariates(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` this model uses, sorted: none for a model that takes no covariates,
        every one for a model that takes any name."""
        if not self.past_covariates:
            return []
        if self.covariate_names is None:
            return sorted(set(names))
        return sorted(set(names) & set(self.covariate_names))


class BatchingInfo(BaseModel):
    enabled: bool
    window_ms: float
    max_batch_series: int


class ServiceInfo(BaseModel):
    family: str
    default_model: str
    models: list[ModelInfo]
    versions: dict[str, str] = Field(description="Python, torch, transformers and model libraries.")
    batching: BatchingInfo
    sign_convention: str = OFFSET_SIGN_CONVENTION


class Problem(BaseModel):
    """An RFC 9457 problem+json body: every error answer of the project has this shape."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="For validation errors: each field path and the reason."
    )


# --- The gateway's contract: the same query, fused over backends -------------------------------


class FusedPredictRequest(ForecastQuery):
    """A gateway request: the query, which backends to fuse and how long the client waits."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"series": [_EXAMPLE_SERIES], "horizon": 5, "deadline_s": 1.0}]}
    )

    backends: Annotated[list[Annotated[str, Field(max_length=100)]], Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="Backends by member name (a model such as chronos-bolt, or a classical forecaster "
        "such as kalman) or by service name (all of its models). Default: those the gateway's configuration "
        "names for the forecast's horizon in seconds (short_term, long_term), else every ready one.",
    )
    deadline_s: Annotated[float, Field(ge=MIN_DEADLINE_S, le=MAX_DEADLINE_S)] | None = Field(
        default=None, description="Answer within this many seconds (the gateway's default when omitted)."
    )


# overloaded: not asked, because the service's recent latency and the calls it already had said it
# could not answer before the deadline (the gateway's admission control).
BackendStatus = Literal["ok", "failed", "timeout", "circuit_open", "not_ready", "skipped", "overloaded"]


class BackendResult(BaseModel):
    """What one fusion member contributed to a gateway answer."""

    name: str = Field(description="The member: a model name, or a classical forecaster's name.")
    service: str | None = Field(description="The family service it runs in; null for classical members.")
    status: BackendStatus
    reason: str | None = None
    latency_ms: float | None = None
    retries: int = 0
    covariates_used: list[str] = Field(
        default_factory=list,
        description="The request's covariates its forecast used: those the model knows, the only ones it is "
        "sent (so a covariate one member was not trained with costs no member). Empty for classical members, "
        "models that take no covariates and members that did not answer.",
    )
    forecast_age_s: float | None = Field(
        default=None,
        description="Set when the model was not asked: its forecast of the series' clocks from this many seconds "
        "earlier (of the clocks' own time) stood in, re-anchored at the newest sample. A warm clock's model "
        "forecasts are reused for up to the gateway's reuse_forecasts_s (reuse_when_busy_s while the model's "
        "service is busy); null: a fresh forecast.",
    )
    calibration_scale: list[float] | None = Field(
        default=None, description="Per series: the variance scale its backtests gave (1 = its own spread was right)."
    )
    weights: list[list[float]] | None = Field(default=None, description="Per series, per step: its fusion weight.")
    forecasts: list[SeriesForecast | None] | None = Field(
        default=None,
        description="Per series, its own forecast with its calibrated standard deviation; null for a series "
        "where it had no usable spread (and so no weight).",
    )


# How a series' answer used its clock's memory:
#   stateless   the series named no clock;
#   cold-start  its clock has too few scored forecasts: bounds from the request's own backtests, weights
#               from them too, handing over to the remembered ones as the clock's scored forecasts accrue;
#   remembered  weights and bounds learned from the clock's scored forecasts, no backtests (the warm path);
#   unavailable the clock memory could not be reached: answered as stateless, and the answer is degraded.
MemoryState = Literal["stateless", "cold-start", "remembered", "unavailable"]


class SeriesMemory(BaseModel):
    """What a series' clock memory did for its answer."""

    clock_id: str | None = None
    state: MemoryState
    scored: int = Field(
        default=0,
        description="The fewest scored forecasts of this clock at any remembered horizon within this "
        "forecast: the evidence behind its remembered weights and bounds.",
    )
    newly_scored: int = Field(
        default=0, description="Earlier forecasts of this clock that this request's samples scored."
    )
    handover: float = Field(
        default=0.0,
        description="The share of the remembered weights in the fusion (0: the request's backtests "
        "alone; 1: the memory alone, the warm path).",
    )


class FusedPredictResponse(BaseModel):
    """The fused forecast: ``std_us`` is the calibrated scale and the quantiles are Student-t with
    ``degrees_of_freedom`` (see the gateway's fusion module)."""

    horizon: int
    quantile_levels: list[float]
    sign_convention: str = OFFSET_SIGN_CONVENTION
    forecasts: list[SeriesForecast] = Field(description="The fused forecast; std_us is calibrated.")
    degrees_of_freedom: list[list[float]] = Field(
        description="Per series, per step: the evidence behind the fused scale (effective backtest origins "
        "plus the prior's pseudo-origins; fewer at long steps, where the backtest windows overlap)."
    )
    flagged_outliers: list[list[int]] = Field(
        default_factory=list,
        description="Per series: indices into its offsets_us that cleaning flagged as spikes and treated as "
        "missing (empty lists when the request had clean=false).",
    )
    backends: list[BackendResult]
    memory: list[SeriesMemory] = Field(
        default_factory=list,
        description="Per series: whether its weights and bounds came from its clock's "
        "memory (remembered) or from the request's own backtests (stateless, cold-start).",
    )
    degraded: bool = Field(
        description="True when a backend that should have answered did not, or the clock memory could not be reached."
    )
    reasons: list[str] = Field(default_factory=list)
    elapsed_ms: float


class ClockObservations(BaseModel):
    """Measurements of a remembered clock, sent without asking for a forecast: they score its
    pending forecasts (a client that measures every second but asks every minute sends them here)."""

    model_config = _STRICT_NUMBERS

    offsets_us: Annotated[list[MaybeOffset], Field(min_length=1, max_length=MAX_POINTS_PER_SERIES)]
    timestamps_s: Annotated[list[Timestamp], Field(min_length=1, max_length=MAX_POINTS_PER_SERIES)]

    @model_validator(mode="after")
    def _check_alignment(self) -> Self:
        if len(self.timestamps_s) != len(self.offsets_us):
            raise ValueError(
                f"timestamps_s has {len(self.timestamps_s)} values but offsets_us has {len(self.offsets_us)}"
            )
        if any(b <= a for a, b in pairwise(self.timestamps_s)):
            raise ValueError("timestamps_s must be strictly increasing")
        return self


class ObservationsScored(BaseModel):
    clock_id: str
    scored: int = Field(description="Pending forecasts these observations scored.")
    pending: int = Field(description="Forecasts of this clock still waiting for their truth.")


class HorizonMemory(BaseModel):
    """What a clock's memory learned at one scored horizon."""

    horizon_s: float
    scored: int = Field(description="Forecasts scored at this horizon.")
    rule: str = Field(description="The combination rule in use here (the one with the smaller recent loss).")
    weights: dict[str, float] = Field(description="Each member's remembered weight.")
    mae_us: dict[str, float] = Field(description="Realised mean absolute error of each member and of 'fused'.")
    coverage: dict[str, float] = Field(
        description="Realised coverage of the fused central intervals, by level ('0.8', '0.95'), over the "
        "forecasts answered with remembered bounds."
    )
    error_scale_us: float = Field(
        description="The clock's recent mean absolute fused error here: the unit of its conformal scores."
    )


class ClockReport(BaseModel):
    """GET /clocks/{clock_id}: what the gateway remembers of one clock."""

    clock_id: str
    interval_s: float
    last_sample_s: float | None
    requests: int
    pending_forecasts: int
    state_bytes: int = Field(description="The size of this clock's stored state.")
    horizons: list[HorizonMemory]


class ServiceStatus(BaseModel):
    name: str
    url: str
    ready: bool
    breaker: Literal["closed", "half_open", "open"]
    last_error: str | None = None
    info: ServiceInfo | None = None


class FleetModels(BaseModel):
    services: list[ServiceStatus]
    classical: list[str]
    per_clock: list[str] = Field(
        default_factory=list,
        description="Members the gateway learns for each remembered clock (online-ar): "
        "they answer series that name a warm clock.",
    )
    config_version: str | None = Field(
        default=None,
        description="The gateway's configuration in force: a short sha256 of its configuration "
        "file, or 'env' when it has none.",
    )
