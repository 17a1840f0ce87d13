"""System metrics that drive a clock's drift, sampled with each measurement as covariates.

A crystal's frequency follows its temperature, and CPU load heats it: the names match the
covariates the models that take them were trained with (``cpu_load``, ``temperature_c``).
Temperature is only reported where the machine has sensors; a reading that fails is missing,
never zero.
"""

from __future__ import annotations

import math

import psutil

CPU_LOAD = "cpu_load"
MEMORY_USED = "memory_used_fraction"
TEMPERATURE = "temperature_c"


def has_temperature_sensors() -> bool:
    reader = getattr(psutil, "sensors_temperatures", None)
    return bool(reader and reader())


class SystemMetrics:
    """Covariate names this machine can report, and one sample of them at a time."""

    def __init__(self) -> None:
        self.names = [CPU_LOAD, MEMORY_USED] + ([TEMPERATURE] if has_temperature_sensors() else [])
        psutil.cpu_percent(interval=None)  # the first call only starts psutil's measuring interval

    def sample(self) -> dict[str, float | None]:
        """CPU load (0-1, since the previous sample), memory in use (0-1), mean sensor temperature."""
        values: dict[str, float | None] = {
            CPU_LOAD: psutil.cpu_percent(interval=None) / 100.0,
            MEMORY_USED: psutil.virtual_memory().percent / 100.0,
        }
        if TEMPERATURE in self.names:
            readings = [
                t.current
                for group in psutil.sensors_temperatures().values()
                for t in group
                if t.current is not None and math.isfinite(t.current)
            ]
            values[TEMPERATURE] = sum(readings) / len(readings) if readings else None
        return values
