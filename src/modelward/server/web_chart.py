"""The fleet overview's trend chart, laid out server-side as SVG geometry (no script, no library).

``trend_chart`` turns ``queries.trend`` items into points, a line, the area under it and axis
ticks; ``templates/fleet_overview.html`` draws them as an inline ``<svg role="img">`` with a
``<title>`` per point and the numbers in a table beside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelward.fleet.report import SEVERITIES


@dataclass(frozen=True, slots=True)
class ChartPoint:
    x: float
    y: float
    day: str
    total: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """The trend as SVG geometry: one point per day with reports, a line and the area under it."""

    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    days: int
    points: list[ChartPoint]
    line: str
    area: str
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    summary: str


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``value``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _breakdown(by_severity: Mapping[str, int]) -> str:
    parts = [f"{by_severity[s]} {s}" for s in SEVERITIES if by_severity.get(s)]
    return ", ".join(parts) if parts else "none"


def trend_chart(
    items: Sequence[Mapping[str, Any]], days: int, today: dt.date, width: int = 720
) -> Chart:
    """Lay out ``queries.trend`` items (oldest first) over the ``days`` ending ``today``.

    x is the day within the window (days without reports leave a gap between points, they are not
    drawn as zero: nothing was counted then), y the open violations that day, from 0 to a round
    maximum.
    """
    height, left, right, top, bottom = 220, 48.0, width - 16.0, 14.0, 220 - 30.0
    first = today - dt.timedelta(days=days - 1)
    ymax = _nice_ceiling(max([int(i["total"]) for i in items] + [1]))

    def x_of(day: dt.date) -> float:
        if days == 1:
            return round((left + right) / 2, 1)
        return round(left + (day - first).days / (days - 1) * (right - left), 1)

    def y_of(n: int) -> float:
        return round(bottom - n / ymax * (bottom - top), 1)

    points = []
    for item in items:
        day = dt.date.fromisoformat(str(item["day"]))
        total = int(item["total"])
        label = f"{day.isoformat()}: {total} open violations ({_breakdown(item['by_severity'])})"
        points.append(ChartPoint(x_of(day), y_of(total), day.isoformat(), total, label))
    line = " ".join(f"{p.x},{p.y}" for p in points)
    area = (
        f"M{points[0].x},{bottom} "
        + " ".join(f"L{p.x},{p.y}" for p in points)
        + f" L{points[-1].x},{bottom} Z"
        if points
        else ""
    )
    ticks = sorted({0, ymax // 2, ymax} if ymax % 2 == 0 else {0, ymax})
    x_days = [first, today] if days > 1 else [today]
    if days >= 7:
        x_days.insert(1, first + dt.timedelta(days=(days - 1) // 2))
    if points:
        last = points[-1]
        summary = (
            f"{len(points)} of the last {days} days have reports; "
            f"latest {last.day}: {last.total} open violations."
        )
    else:
        summary = f"No reports in the last {days} days."
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        days=days,
        points=points,
        line=line,
        area=area,
        y_ticks=[(y_of(t), str(t)) for t in ticks],
        x_ticks=[(x_of(d), d.strftime("%b %d")) for d in x_days],
        summary=summary,
    )
