"""The chronos family service: Chronos-Bolt, Chronos-2 and TimesFM 2.5 behind the ChronoTick kit."""
