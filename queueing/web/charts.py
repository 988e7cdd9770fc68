"""The pages' small charts as numbers for SVG attributes (no script, no inline style):
the overview's throughput bars and a job's attempt timeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from queueing.models import Attempt, Job

BAR_WIDTH, BAR_GAP, CHART_HEIGHT = 8, 2, 24
TIMELINE_WIDTH = 600


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    count: int
    minutes_ago: int


def throughput_bars(counts: Sequence[int]) -> list[Bar]:
    """One bar per five-minute slot (oldest first), scaled to the busiest slot."""
    top = max(counts, default=0) or 1
    bars = []
    for i, count in enumerate(counts):
        height = round((CHART_HEIGHT - 2) * count / top) if count else 0
        bars.append(
            Bar(
                x=i * (BAR_WIDTH + BAR_GAP),
                y=CHART_HEIGHT - max(height, 1),
                width=BAR_WIDTH,
                height=max(height, 1),  # an empty slot is a hairline, not nothing
                count=count,
                minutes_ago=(len(counts) - i) * 5,
            )
        )
    return bars


def chart_width(counts: Sequence[int]) -> int:
    return len(counts) * (BAR_WIDTH + BAR_GAP)


@dataclass(frozen=True)
class Span:
    x: int
    width: int
    attempt: Attempt


def attempt_timeline(job: Job, attempts: Sequence[Attempt], now: dt.datetime) -> list[Span]:
    """Each attempt as a span on one line from the job's creation to its end (or now)."""
    start = job.created_at
    end = job.finished_at or now
    total = max((end - start).total_seconds(), 0.001)
    spans = []
    for attempt in attempts:
        begin = attempt.started_at or attempt.finished_at
        x = round(TIMELINE_WIDTH * max((begin - start).total_seconds(), 0) / total)
        width = round(TIMELINE_WIDTH * (attempt.finished_at - begin).total_seconds() / total)
        spans.append(Span(x=min(x, TIMELINE_WIDTH - 2), width=max(width, 2), attempt=attempt))
    return spans
