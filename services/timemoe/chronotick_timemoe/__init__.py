"""The timemoe family service: Time-MoE (from sktime.libs.timemoe) behind the ChronoTick kit."""
