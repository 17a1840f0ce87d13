"""Gateway settings, read from the environment (prefix ``CHRONOTICK_GATEWAY_``).

Backend URLs come from here only, never from a request: a client cannot make the gateway call
an address of its choosing.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_GATEWAY_", extra="ignore")

    services: dict[str, AnyHttpUrl] = Field(
        default_factory=dict,
        description='Family services by name, as JSON: {"chronos": "http://chronos:8000"}.',
    )
    api_key: SecretStr | None = Field(default=None, description="When set, POST /predict needs X-API-Key.")
    cors_origins: list[str] = Field(default_factory=list, description="CORS is off unless origins are listed.")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

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
    unready_after_failed_checks: int = Field(
        default=2, ge=1,
        description="A busy service may miss one health check; it leaves the fusion after this many in a row.",
    )

    backtest_origins: int = Field(default=6, ge=0, le=32, description="Rolling origins for calibration.")
    skip_spread_backtests: bool = Field(
        default=True,
        description="Ask point forecasters (TTM, Time-MoE) for their cheap random-walk spread instead of "
        "their residual spread on rolling origins: the gateway calibrates every member on its own backtests "
        "anyway, and the residual spread costs those models most of their time.",
    )
    weight_floor: float = Field(default=0.0, ge=0.0, lt=0.5)
