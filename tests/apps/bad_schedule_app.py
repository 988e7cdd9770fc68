"""An app whose schedule has a bad cron expression: loading it must fail with one line."""

from __future__ import annotations

from queueing import Queue

queue = Queue()


@queue.task(name="nightly")
def nightly() -> None:
    return None


queue.schedule(nightly, "0 25 * * *")
