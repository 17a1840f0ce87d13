"""Settings every family service shares, read from the environment (prefix ``CHRONOTICK_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_", extra="ignore")

    batching: bool = Field(default=True, description="Merge concurrent requests into one model call.")
    batch_window_ms: float = Field(
        default=3.0,
        ge=0.0,
        le=100.0,
        description="How long the first request of a batch waits for others to join it.",
    )
    max_batch_series: int = Field(default=256, ge=1, le=4096)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    torch_threads: int | None = Field(
        default=1,
        ge=1,
        description="Intra-op threads for torch. One by default: micro models on a few cores run faster "
        "without intra-op parallelism (measured in BENCHMARKS.md); raise it for large pretrained models.",
    )
