"""The agent's settings, read from the environment (prefix ``CHRONOTICK_AGENT_``).

A wrong value stops the agent at start with the setting's name and the reason (see
``load_settings``), rather than an agent that runs and serves nonsense.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronotick.clockid import clock_id_from
from chronotick.contract import (
    MAX_DEADLINE_S,
    MAX_HORIZON_STEPS,
    MAX_POINTS_PER_SERIES,
    MIN_DEADLINE_S,
    MIN_INTERVAL_S,
    ClockId,
)

ENV_PREFIX = "CHRONOTICK_AGENT_"


def default_clock_id() -> str:
    """This host's name as a clock id (see ``chronotick.clockid``); "" when it has no letter or
    digit, which the setting refuses, so that such a host names its clock explicitly."""
    return clock_id_from(socket.gethostname())


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # --- where the real measurements come from ------------------------------------------------
    source: Literal["ntp", "chrony"] = Field(
        default="chrony", description="ntp: ask an NTP server with ntplib; chrony: read `chronyc -c tracking`."
    )
    ntp_server: str = Field(default="127.0.0.1", min_length=1, description="NTP server host name or address.")
    ntp_port: int = Field(default=123, ge=1, le=65535)
    ntp_version: int = Field(default=4, ge=3, le=4)
    source_timeout_s: float = Field(
        default=1.0, gt=0.0, le=30.0, description="How long one measurement may take (NTP reply or chronyc)."
    )
    max_ntp_delay_s: float = Field(
        default=1.0, gt=0.0, description="A reply whose round-trip delay is negative or above this is rejected."
    )
    chronyc: list[str] = Field(
        default_factory=lambda: ["chronyc"],
        min_length=1,
        description='The chronyc command and its options, JSON: ["chronyc", "-h", "/run/chrony/chronyd.sock"].',
    )
    measure_interval_s: float = Field(default=1.0, ge=MIN_INTERVAL_S, le=3600.0, description="Cadence of measurements.")
    source_backoff_max_s: float = Field(
        default=30.0, gt=0.0, description="Longest wait between attempts while the source fails."
    )

    # --- the rolling window and the system covariates ---------------------------------------
    window_samples: int = Field(
        default=512,
        ge=8,
        le=MAX_POINTS_PER_SERIES,
        description="Measurement slots kept (a failed one is kept as missing).",
    )
    covariates: bool = Field(default=True, description="Send CPU load, memory and temperature with the offsets.")

    # --- the fleet --------------------------------------------------------------------------
    gateway_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8000"))
    clock_id: ClockId = Field(
        default_factory=default_clock_id,
        description="The clock the requests name, so that the gateway remembers it (scores its forecasts as the "
        "measurements arrive, learns its fusion weights and bounds). Default: the host name, characters outside "
        "the contract's CLOCK_ID_PATTERN replaced with '-'. Give each clock its own: two agents sharing an id "
        "would mix their clocks' memories.",
    )
    api_key: SecretStr | None = None
    short_horizon_s: float = Field(default=10.0, gt=0.0)
    short_every_s: float = Field(default=1.0, gt=0.0, description="How often the short forecast is asked for.")
    long_horizon_s: float = Field(default=60.0, gt=0.0)
    long_every_s: float = Field(default=30.0, gt=0.0, description="How often the long forecast is asked for.")
    deadline_s: float = Field(
        default=1.0, ge=MIN_DEADLINE_S, le=MAX_DEADLINE_S, description="deadline_s sent with each forecast."
    )
    fleet_backoff_max_s: float = Field(
        default=30.0, gt=0.0, description="Longest wait between forecast requests while the gateway fails."
    )

    # --- what is served ---------------------------------------------------------------------
    max_drift_ppm: float = Field(
        default=50.0,
        gt=0.0,
        le=100_000.0,
        description="Stated bound on how fast the offset can move away from the last real measurement, in "
        "microseconds per second (ppm), like chrony's maxclockerror: the served error bound grows at this rate "
        "from the last measurement. 50 ppm is a common crystal tolerance; a clock that chronyd disciplines "
        "drifts far less.",
    )
    error_bound_limit_us: float = Field(
        default=1000.0,
        gt=0.0,
        description="The largest error bound this host tolerates, in microseconds: exported as "
        "chronotick_agent_error_bound_limit_us, which the ChronoTickAgentErrorBoundHigh alert compares the served "
        "bound with (monitoring/alerts.yml). The agent serves a wider bound all the same.",
    )
    score_horizons_s: list[float] = Field(
        default_factory=lambda: [1.0, 5.0, 10.0, 30.0, 60.0],
        min_length=1,
        description="Horizons at which forecasts are scored against later measurements (MAE, coverage).",
    )
    host: str = Field(default="127.0.0.1", description="Where the agent's HTTP endpoint listens.")
    port: int = Field(default=8100, ge=1, le=65535)

    @model_validator(mode="after")
    def _check_horizons(self) -> Self:
        for name in ("short_horizon_s", "long_horizon_s"):
            steps = round(getattr(self, name) / self.measure_interval_s)
            if not 1 <= steps <= MAX_HORIZON_STEPS:
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()}: {getattr(self, name):g} s is {steps} steps of "
                    f"measure_interval_s {self.measure_interval_s:g} s; 1 to {MAX_HORIZON_STEPS} allowed"
                )
        if any(h <= 0 for h in self.score_horizons_s):
            raise ValueError(f"{ENV_PREFIX}SCORE_HORIZONS_S: every horizon must be positive")
        return self

    def horizon_steps(self, horizon_s: float) -> int:
        return max(1, round(horizon_s / self.measure_interval_s))


def _settings_error(error: ValidationError, given_as: Mapping[str, str]) -> str:
    """One line per wrong setting, named as it was given: the option in ``given_as`` (field ->
    option), else the environment variable that sets it."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        name = given_as.get(field, f"{ENV_PREFIX}{field.upper()}")
        # A check across settings names them in its message; a single setting is named here.
        lines.append(f"{name}: {message} (got {item.get('input')!r})" if field else message)
    return "invalid agent configuration:\n  " + "\n  ".join(lines)


class SettingsInvalid(ValueError):
    """The configuration cannot run; the message names each wrong setting."""


def load_settings(option_names: Mapping[str, str] | None = None, **overrides: object) -> AgentSettings:
    """Settings from the environment, ``overrides`` (command-line options; None: not given) winning;
    an unknown ``CHRONOTICK_AGENT_*`` variable is an error too (a misspelt setting would silently
    not apply). ``option_names`` (field -> option, e.g. ``gateway_url`` -> ``--gateway``) name a
    wrong override in the error as the user typed it."""
    given = {name: value for name, value in overrides.items() if value is not None}
    known = {f"{ENV_PREFIX}{name.upper()}" for name in AgentSettings.model_fields}
    unknown = sorted(name for name in os.environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known)
    if unknown:
        raise SettingsInvalid(
            f"invalid agent configuration: unknown setting {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        return AgentSettings(**given)
    except ValidationError as error:
        given_as = {name: (option_names or {}).get(name, f"option {name}") for name in given}
        raise SettingsInvalid(_settings_error(error, given_as)) from error
