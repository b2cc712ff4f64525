"""A bar chart drawn on the server as SVG: readable without JavaScript, each bar with its own
accessible label, and the same figures in a table beneath (``templates/insights/_bar_chart.html``).
No library draws what this needs in so few lines; this computes the geometry only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from django.utils import translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from stall.core.money import currency_exponent, format_money

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 240, 64, 28, 12


@lru_cache(maxsize=64)
def _shape(currency: str, locale: str):
    """How ``format_money`` writes an amount of this currency in this locale, learnt from one
    sample: (prefix, group mark, decimal mark, suffix), or None when the sample does not show
    the plain shape "<prefix>1<g>234<g>567<d>89<suffix>" (then every amount goes to Babel)."""
    exponent = currency_exponent(currency)
    sample = format_money(1234567 * 10**exponent + (89 if exponent == 2 else 0), currency, locale)
    if exponent not in (0, 2):
        return None
    decimals = r"(?P<d>\D)89" if exponent == 2 else r"(?P<d>)"
    match = re.fullmatch(r"(?P<pre>\D*?)1(?P<g>\D?)234(?P=g)567" + decimals + r"(?P<post>\D*)", sample)
    if not match:
        return None
    return match["pre"], match["g"], match["d"], match["post"]


def fast_money(amount: int, currency: str) -> str:
    """``format_money`` for the many figures of a chart and its table, without asking Babel for
    each (Babel takes about half a millisecond per amount); the same text, checked by a test."""
    locale = translation.get_language() or "en"
    shape = _shape(currency, locale)
    if shape is None or amount < 0:
        return format_money(amount, currency, locale)
    prefix, group, decimal, suffix = shape
    exponent = currency_exponent(currency)
    whole, fraction = divmod(amount, 10**exponent) if exponent else (amount, 0)
    text = f"{whole:,}".replace(",", group)
    if exponent:
        text += f"{decimal}{fraction:0{exponent}d}"
    return f"{prefix}{text}{suffix}"


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
                        round(h, 2), label, fast_money(value, currency), i % every == 0))
    gridlines = [(round(TOP + plot_h * (1 - k / 4), 2), fast_money(top * k // 4, currency)) for k in range(5)]
    return Chart(title, bars, gridlines)


def bar_chart_html(chart: Chart, *, id: str, rows: list[dict]) -> SafeString:
    """The chart as an SVG figure with the same figures in a table beneath. Written in Python,
    not a template: a year by day is a few thousand elements, which Django's template engine takes
    hundreds of milliseconds to draw and this takes a few. Every text is escaped."""
    e = escape
    out = [
        f'<figure class="chart"><svg viewBox="0 0 {chart.width} {chart.height}" role="img" aria-labelledby="{e(id)}-title" '
        f'class="chart-svg" preserveAspectRatio="xMidYMid meet"><title id="{e(id)}-title">{e(chart.title)}</title>'
    ]
    for y, text in chart.gridlines:
        out.append(f'<line x1="{chart.left}" x2="{chart.width}" y1="{y}" y2="{y}" class="grid"/>'
                   f'<text x="{chart.left - 6}" y="{y}" class="axis" text-anchor="end" dominant-baseline="middle" '
                   f'aria-hidden="true">{e(text)}</text>')
    for bar in chart.bars:
        label = e(f"{bar.label}: {bar.text}")
        out.append(f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}" class="bar" role="img" '
                   f'aria-label="{label}"><title>{label}</title></rect>')
        if bar.tick:
            out.append(f'<text x="{bar.x}" y="{chart.baseline + 16}" class="axis" aria-hidden="true">{e(bar.label)}</text>')
    out.append(f'</svg><figcaption class="small muted">{e(chart.title)}. The figures are in the table below.</figcaption>'
               '</figure><details class="chart-table"><summary>Chart figures as a table</summary><div class="table-wrap">'
               f'<table class="rows" data-testid="{e(id)}-table"><thead><tr><th scope="col">Period</th>'
               '<th scope="col" class="num">Gross</th><th scope="col" class="num">Net</th>'
               '<th scope="col" class="num">Orders</th></tr></thead><tbody>')
    for row in rows:
        out.append(f'<tr><th scope="row">{e(row["label"])}</th><td class="num nowrap">{e(row["gross_text"])}</td>'
                   f'<td class="num nowrap">{e(row["net_text"])}</td><td class="num">{int(row["orders"])}</td></tr>')
    out.append("</tbody></table></div></details>")
    return mark_safe("".join(out))  # noqa: S308 - every interpolated text is escaped above
