"""Fusion: the members' forecasts of a series made one, with bounds that hold.

``calibrated`` is the math (pure functions over arrays): calibration on the request's own
backtests, inverse-variance weights, correlation, Student-t quantiles. ``answer`` (imported as
``chronotick_gateway.fusion.answer``: it reads the clock memory, which reads this math) chooses for
each series between the clock's remembered weights and bounds and the in-context fusion, and
assembles the fused answer's forecasts and each member's part in it.
"""

from chronotick_gateway.fusion.calibrated import (
    PRIOR_PSEUDO_ORIGINS,
    FusedForecast,
    MemberForecast,
    calibrated_std,
    effective_origins,
    error_correlation,
    fuse,
    inverse_variance_weights,
    predictive_quantiles,
    shrunk_correlation,
    standardized_errors,
    step_scales,
    variance_scale,
)

__all__ = [
    "PRIOR_PSEUDO_ORIGINS",
    "FusedForecast",
    "MemberForecast",
    "calibrated_std",
    "effective_origins",
    "error_correlation",
    "fuse",
    "inverse_variance_weights",
    "predictive_quantiles",
    "shrunk_correlation",
    "standardized_errors",
    "step_scales",
    "variance_scale",
]
