"""Retry policies: how many attempts, how long to wait between them, which errors retry.

procrastinate's RetryStrategy computes exponential waits as ``base ** n`` (5, 25,
125 s); job queues our users come from (BullMQ, Sidekiq, Oban) double a base delay
(5, 10, 20 s), which is what this policy does.
"""

from __future__ import annotations

import enum
import random

from pydantic import BaseModel, ConfigDict, Field


class Backoff(enum.StrEnum):
    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class RetryPolicy(BaseModel):
    """When a failed attempt is tried again.

    ``max_attempts`` counts every attempt, the first included: 1 means no retry.
    The wait before attempt ``n + 1`` (after ``n`` failed attempts) is
    ``delay`` (constant), ``delay * n`` (linear) or ``delay * 2 ** (n - 1)``
    (exponential), capped at ``max_delay``, then spread by up to ``jitter`` of itself.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    max_attempts: int = Field(default=3, ge=1)
    backoff: Backoff = Backoff.EXPONENTIAL
    delay: float = Field(default=5.0, ge=0)
    max_delay: float = Field(default=3600.0, ge=0)
    jitter: float = Field(default=0.0, ge=0, le=1)
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def delay_after(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` attempts have failed."""
        n = max(failed_attempts, 1)
        if self.backoff is Backoff.CONSTANT:
            wait = self.delay
        elif self.backoff is Backoff.LINEAR:
            wait = self.delay * n
        else:
            wait = self.delay * 2 ** (n - 1)
        wait = min(wait, self.max_delay)
        if self.jitter:
            wait *= 1 + random.uniform(-self.jitter, self.jitter)
        return wait

    def should_retry(self, error: BaseException, attempts: int, max_attempts: int) -> bool:
        """Whether a job that failed its ``attempts``-th attempt gets another one.

        ``max_attempts`` is the job's own (stored at enqueue), which wins over the
        policy's so that changing a task's policy does not rewrite queued jobs.
        """
        return attempts < max_attempts and isinstance(error, self.retry_on)


NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()
