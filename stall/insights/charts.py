"""A bar chart drawn on the server as SVG: readable without JavaScript, each bar with its own
accessible label, and the same figures in a table beneath (``templates/insights/_bar_chart.html``).
No library draws what this needs in so few lines; this computes the geometry only."""

from __future__ import annotations

from dataclasses import dataclass

from stall.core.money import format_money

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 240, 64, 28, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the period ("2026-03-05")
    text: str  # the amount, formatted ("$12.50")
    tick: bool  # label the axis under this bar


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    gridlines: list[tuple[float, str]]  # (y, formatted amount)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM


def _nice_top(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value``."""
    if value <= 0:
        return 1
    power = 1
    while power * 10 <= value:
        power *= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return int(step * power)
    return 10 * power


def bar_chart(*, title: str, points: list[tuple[str, int]], currency: str) -> Chart:
    """``points``: (label, amount in minor units), oldest first."""
    top = _nice_top(max((v for _, v in points), default=0))
    plot_h = HEIGHT - BOTTOM - TOP
    plot_w = WIDTH - LEFT - 8
    slot = plot_w / max(len(points), 1)
    gap = min(slot * 0.2, 6)
    every = max(1, len(points) // 8)
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_h * max(value, 0) / top
        bars.append(Bar(round(LEFT + i * slot + gap / 2, 2), round(TOP + plot_h - h, 2), round(max(slot - gap, 1), 2),
                        round(h, 2), label, format_money(value, currency), i % every == 0))
    gridlines = [(round(TOP + plot_h * (1 - k / 4), 2), format_money(top * k // 4, currency)) for k in range(5)]
    return Chart(title, bars, gridlines)
