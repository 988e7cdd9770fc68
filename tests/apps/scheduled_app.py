"""An app with periodic jobs: ``--app tests.apps.scheduled_app:queue``.

``queue`` runs ``tick`` every five minutes; ``redeployed`` is the same app after a deploy
that removed that schedule and added another (a schedule removed from the code must
stop firing).
"""

from __future__ import annotations

from queueing import JobContext, Queue

queue = Queue()


@queue.task(name="tick")
async def tick(ctx: JobContext, label: str) -> str | None:
    """Returns the tick it ran for, as the handler's context gives it."""
    return ctx.schedule_tick.isoformat() if ctx.schedule_tick else None


queue.schedule(tick, "*/5 * * * *", args={"label": "five"}, name="every-five")

redeployed = Queue()


@redeployed.task(name="tick")
async def tick_again(ctx: JobContext, label: str) -> str | None:
    return ctx.schedule_tick.isoformat() if ctx.schedule_tick else None


redeployed.schedule(tick_again, "*/5 * * * *", args={"label": "new"}, name="every-five-new")
