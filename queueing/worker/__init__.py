"""The worker daemon: ``Worker`` runs jobs; ``daemon`` wires it to signals for the CLI."""

from queueing.worker.loop import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
