"""The worker daemon: ``Worker`` runs jobs; ``daemon`` wires it to signals for the CLI.

One module per part (docs/design.md, "The worker", draws how they connect):

- ``worker``: builds the parts below, wires them, runs and stops them;
- ``claim_loop``: claims due jobs and starts them; ``lost_claims``: gives back a claim
  whose reply was lost;
- ``running``: the jobs running now; ``execute``: one handler's run into an ``Outcome``;
- ``finisher``: writes outcomes in batches; ``registration``: the worker id and its
  finisher;
- ``listener``: LISTEN hints; ``abort_watch``: stops cancelled jobs;
- ``heartbeat`` (a thread) and ``watchdog``: liveness, and what blocks the event loop;
- ``rescuer`` and ``pruner`` (both ``periodic``): maintenance, one worker at a time;
- ``progress``: handlers' progress reports; ``connection``: connections and reconnects;
  ``services``: supervision; ``backoff``: retry pacing; ``outcome``: the types shared
  with SQL; ``daemon``: the process around a worker.
"""

from queueing.worker.running import WorkerStats
from queueing.worker.worker import Worker

__all__ = ["Worker", "WorkerStats"]
