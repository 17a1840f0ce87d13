"""Plain-text line charts for terminals (over ssh, in a log): the ``--plot`` and ``--report`` views.

Drawn by plotext (the ``client`` extra), imported only when a chart is asked for. Each line has
its own marker, so the chart still reads without colour (``color=False``: piped output, tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_WIDTH = 100
DEFAULT_HEIGHT = 24


@dataclass(frozen=True)
class Line:
    """One labelled line; points whose y is not finite (missing samples) are left out."""

    label: str | None
    x: Sequence[float]
    y: Sequence[float]
    marker: str
    connected: bool = True


def line_chart(
    lines: list[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    color: bool = False,
) -> str:
    """The chart as text, ``height`` rows of ``width`` columns (ANSI colours only with ``color``)."""
    import plotext

    figure = plotext.figure
    # plotext draws on one module-wide figure: start from a blank one every time.
    figure.clear.all()
    figure.plot_size(width, height)
    figure.title(title)
    figure.label(x_label, "x")
    figure.label(y_label, "y")
    for line in lines:
        points = [(float(x), float(y)) for x, y in zip(line.x, line.y, strict=True) if math.isfinite(y)]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        signal = figure.signal(list(xs), list(ys), marker=line.marker)
        if line.label:
            signal.label(line.label)
        if line.connected:
            signal.lines()
        figure.draw(signal)
    text = figure.build().string(colorless=not color)
    figure.clear.all()
    return text
