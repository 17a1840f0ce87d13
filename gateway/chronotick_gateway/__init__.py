"""The ChronoTick gateway: fan-out, calibrated fusion, retries, breaker, classical fallback."""
