"""Gateway settings: defaults, then the fleet configuration file, then the environment.

Every setting is a key of the YAML file named by ``CHRONOTICK_GATEWAY_CONFIG_FILE`` (no file when
unset) and an environment variable ``CHRONOTICK_GATEWAY_<KEY>``; the environment wins, so a
container can override any key of a shared file. Nested keys take ``__``:
``CHRONOTICK_GATEWAY_SHORT_TERM__BACKENDS='["kalman"]'``.

Backend URLs come from here only, never from a request: a client cannot make the gateway call
an address of its choosing.
"""

from __future__ import annotations

import os

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from chronotick.contract import MAX_HORIZON_STEPS, MAX_POINTS_PER_SERIES, MAX_SERIES_PER_REQUEST

ENV_PREFIX = "CHRONOTICK_GATEWAY_"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG_FILE"


class _HorizonRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backends: list[str] = Field(min_length=1, description="Member or service names, as in a request's backends.")


class ShortTermRoute(_HorizonRoute):
    """The members that answer short forecasts (those reaching at most ``max_horizon_s`` ahead)."""

    max_horizon_s: float = Field(gt=0.0)


class LongTermRoute(_HorizonRoute):
    """The members that answer long forecasts (those reaching at least ``min_horizon_s`` ahead)."""

    min_horizon_s: float = Field(gt=0.0)


class GatewaySettings(BaseSettings):
    # forbid: a misspelt key in the file must fail, not be silently ignored.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    services: dict[str, AnyHttpUrl] = Field(
        default_factory=dict,
        description='Family services by name, as JSON: {"chronos": "http://chronos:8000"}.',
    )
    short_term: ShortTermRoute | None = Field(
        default=None, description="Default backends of a request without backends that looks this short ahead."
    )
    long_term: LongTermRoute | None = Field(
        default=None, description="Default backends of a request without backends that looks this far ahead."
    )
    api_key: SecretStr | None = Field(default=None, description="When set, POST /predict needs X-API-Key.")
    cors_origins: list[str] = Field(default_factory=list, description="CORS is off unless origins are listed.")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Tighter than the contract's caps where an operator wants them (the contract's are the most);
    # unlike the body limit they apply per request, so a reload changes them at once.
    max_series: int = Field(
        default=MAX_SERIES_PER_REQUEST, ge=1, le=MAX_SERIES_PER_REQUEST, description="Series in one request."
    )
    max_points_per_series: int = Field(
        default=MAX_POINTS_PER_SERIES, ge=8, le=MAX_POINTS_PER_SERIES, description="Samples in one series' context."
    )
    max_horizon: int = Field(
        default=MAX_HORIZON_STEPS, ge=1, le=MAX_HORIZON_STEPS, description="Steps a request may forecast."
    )

    default_deadline_s: float = Field(default=1.0, gt=0.0, le=30.0)
    fusion_margin_s: float = Field(
        default=0.03, ge=0.0, description="Kept back from the deadline for fusion and the answer."
    )
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_initial_s: float = Field(default=0.02, ge=0.0)
    retry_max_s: float = Field(default=0.2, ge=0.0)
    breaker_failures: int = Field(default=3, ge=1, description="Consecutive failures that open it.")
    breaker_reset_s: float = Field(default=2.0, gt=0.0, description="Open this long before a probe.")
    health_interval_s: float = Field(default=1.0, gt=0.0)
    health_timeout_s: float = Field(default=1.0, gt=0.0)
    service_max_in_flight: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Calls in flight to one service at most; more wait for a slot, or are skipped as "
        "'overloaded' when the service's recent latency says they would miss the deadline.",
    )
    model_calls_in_flight: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Calls in flight to one model (of one kind: horizon, covariates) at most; the requests that "
        "want it meanwhile go together in the next call (a model forecasts a batch for little more than one "
        "series). Raise it to the number of replicas behind a service's address, so that each can take a call.",
    )
    unready_after_failed_checks: int = Field(
        default=2,
        ge=1,
        description="A busy service may miss one health check; it leaves the fusion after this many in a row.",
    )
    config_poll_s: float = Field(
        default=1.0, gt=0.0, le=60.0, description="How often the configuration file is checked for changes."
    )

    backtest_origins: int = Field(default=6, ge=0, le=32, description="Rolling origins for calibration.")
    classical_processes: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Helper processes that compute the classical members off the event loop, which then only "
        "reads, sends and fuses (0: on the loop itself). A request they could not finish in time, or one alone "
        "with no model to call, is computed on the loop all the same. Read at start only.",
    )
    skip_spread_backtests: bool = Field(
        default=True,
        description="Ask point forecasters (TTM, Time-MoE) for their cheap random-walk spread instead of "
        "their residual spread on rolling origins: the gateway calibrates every member on its own backtests "
        "anyway, and the residual spread costs those models most of their time.",
    )
    weight_floor: float = Field(default=0.0, ge=0.0, lt=0.5)

    # The clock memory (issue: the gateway remembers each clock). Read at start only.
    clock_store_url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="Keep the clocks' memory in this Redis (redis://host:6379/0), shared by every gateway "
        "worker and replica using it; unset: in this process (saved to clock_state_file on shutdown).",
    )
    clock_state_file: str | None = Field(
        default=None,
        description="Without a Redis: where the in-process clock memory is saved on shutdown "
        "and restored from on start; unset: it lasts as long as the process.",
    )
    max_clocks: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Clocks the in-process memory holds at most (the least recently "
        "heard from is forgotten first); a Redis bounds its memory by its maxmemory.",
    )
    # 512: the clocks one gateway keeps busy at its own capacity (about 100 warm requests a second,
    # agents asking every 5 s); past that each decoded state would be forgotten before it is used.
    decoded_clocks_held: int = Field(
        default=512,
        ge=0,
        le=1_000_000,
        description="Clocks whose state this gateway keeps decoded, as it last wrote it (about 130 kB each), "
        "so that their next request skips decoding it when the store still holds those bytes; 0: none.",
    )
    clock_idle_expiry_s: float = Field(
        default=86_400.0, gt=0.0, description="A clock not heard from this long is forgotten."
    )
    warm_after_scored: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Scored forecasts a clock needs at every remembered horizon within a forecast before its "
        "answer uses remembered weights and bounds alone and skips the backtests (the warm path).",
    )
    # Read by each request (a reload changes it at once).
    reuse_forecasts_s: float = Field(
        default=5.0,
        ge=0.0,
        le=60.0,
        description="On the warm path, a model's forecast of a clock stands in for a fresh one for this many "
        "seconds of the clock's time, re-anchored at the newest sample (the model is not asked); 0: always ask.",
    )
    reuse_when_busy_s: float = Field(
        default=20.0,
        ge=0.0,
        le=60.0,
        description="The same, for a model whose service is busy (its calls are expected to take more than half "
        "the time a request has left): its forecast stands in for up to this many seconds of the clock's time "
        "(at least reuse_forecasts_s), so that under load the fleet answers with every member, some of them "
        "older, rather than without the members it cannot reach in time, and its queues drain.",
    )

    @property
    def longest_reuse_s(self) -> float:
        """The oldest a kept forecast may be when it stands in: ``reuse_when_busy_s``, never less than
        ``reuse_forecasts_s`` (a busy service's member waits at least as long as an idle one's)."""
        return max(self.reuse_forecasts_s, self.reuse_when_busy_s)

    @model_validator(mode="after")
    def _routes_do_not_overlap(self) -> GatewaySettings:
        if self.short_term and self.long_term and self.long_term.min_horizon_s <= self.short_term.max_horizon_s:
            raise ValueError(
                f"long_term.min_horizon_s ({self.long_term.min_horizon_s}) must be above "
                f"short_term.max_horizon_s ({self.short_term.max_horizon_s})"
            )
        return self

    def default_backends(self, horizon_s: float) -> list[str] | None:
        """The configured members for a forecast reaching ``horizon_s`` ahead; None: every ready one."""
        if self.short_term and horizon_s <= self.short_term.max_horizon_s:
            return self.short_term.backends
        if self.long_term and horizon_s >= self.long_term.min_horizon_s:
            return self.long_term.backends
        return None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Earlier sources win: arguments, the environment, then the file, then the defaults."""
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=config_file),)
        return sources
