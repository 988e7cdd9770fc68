"""The record ``enqueue`` returns is the record stored, field by field and type by type.

Since migration 0014 the plain enqueue returns only ids and a creation time, and the
client builds each record from what it sent (``ops.enqueue``); arguments jsonb would not
give back as sent take the path that reads the records back. Here every kind of request
is enqueued and its record compared with ``get_job``'s: same values, same Python types,
same instants. Real PostgreSQL, no mocks.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import json
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from queueing import JobRequest, Queue, ops
from queueing.errors import InvalidPayload
from queueing.limits import MAX_PAYLOAD_BYTES, check_payload
from queueing.models import EnqueuedJob, Job


class Colour(enum.IntEnum):
    RED = 1


class Shade(enum.StrEnum):
    DARK = "dark"


class Point(BaseModel):
    x: float
    y: float


def _same(a: Any, b: Any, where: str = "record") -> None:
    """Equal and of the same types, all the way down (datetimes: the same instant)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _stored(job: Job) -> dict[str, Any]:
    return job.model_dump(exclude={"created"})


# Arguments of an undeclared task: JSON of every kind, and values jsonb changes.
ARGUMENTS: list[Any] = [
    None,
    {},
    {"n": 1, "flag": True, "none": None, "text": 'é\u2028\U0001f600\n"\\', "f": 2.5},
    {"nested": {"list": [1, [2, [3, {"deep": "x"}]]], "empty": {}, "also": []}},
    {"small": 1e-7, "frac": 0.1, "neg": -3.25, "int_like": 3.0, "huge_int": 2**80},
    {"b": 1, "a": 2, "ccc": 3, "dd": 4},  # jsonb orders keys by length, then bytes
    # Not read back as sent: a tuple, exponent-written floats, -0.0, subclasses.
    {"tuple": (1, 2, (3,))},
    {"f": 1e16, "g": -2.5e300},
    {"zero": -0.0},
    {"enum": Colour.RED, "shade": Shade.DARK},
    collections.OrderedDict(a=1, b=[1]),
    {"mixed": [1, (2,), {"z": -0.0}]},
]


@pytest.mark.parametrize("args", ARGUMENTS, ids=range(len(ARGUMENTS)))
def test_an_undeclared_tasks_record_is_the_stored_one(queue: Queue, args: Any) -> None:
    job = queue.enqueue("anything", args)
    assert job.created is True
    _same(_stored(job), _stored(queue.get_job(job.id)))


def test_every_option_of_a_declared_task_is_in_its_record(queue: Queue) -> None:
    @queue.task(name="plot", queue="maps", priority=3, retry=4)
    def plot(point: Point, label: str = "p", weights: tuple[int, ...] = (1, 2)) -> None:
        raise AssertionError("not run")

    @queue.task(name="free")
    def free(k: str) -> None:
        raise AssertionError("not run")

    now = dt.datetime.now(dt.UTC)
    requests = [
        JobRequest(plot, {"point": Point(x=1, y=-0.0), "label": "a"}),
        JobRequest(plot, {"point": {"x": 1e20, "y": 2}}, delay=30, priority=-5),
        JobRequest(plot, {"point": Point(x=0.5, y=0.25)}, run_at=now + dt.timedelta(hours=2)),
        JobRequest(plot, {"point": {"x": 1, "y": 2}}, tenant_id="t1", user_id="u1"),
        JobRequest(plot, {"point": {"x": 1, "y": 2}}, queue="other"),
        JobRequest("free", {"k": "v"}, concurrency_key="k1", concurrency_limit=2),
        JobRequest("free", {"k": "v"}, run_at=now - dt.timedelta(days=1)),
    ]
    jobs = queue.enqueue_many(requests)
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    for job in jobs:
        _same(_stored(job), _stored(queue.get_job(job.id)), f"job {job.id}")


def test_a_batch_that_mixes_kinds_keeps_request_order(queue: Queue) -> None:
    """One tuple in a batch sends the whole batch down the reading path; each record is
    still its own request's."""
    requests = [JobRequest("t", {"i": i, "v": (i,) if i == 7 else [i]}) for i in range(20)]
    for batch in (requests[:5], requests):  # without and with the tuple
        jobs = queue.enqueue_many(batch)
        assert [j.args["i"] for j in jobs] == [r.args["i"] for r in batch]  # type: ignore[index]
        for job in jobs:
            _same(_stored(job), _stored(queue.get_job(job.id)), f"job {job.id}")


def test_records_of_a_batch_share_one_creation_time(queue: Queue) -> None:
    jobs = queue.enqueue_many([JobRequest("t") for _ in range(50)])
    assert {j.created_at for j in jobs} == {jobs[0].created_at}
    assert all(j.updated_at == j.created_at == j.scheduled_at for j in jobs)
    assert [j.id for j in jobs] == sorted({j.id for j in jobs})


def test_a_dedupe_key_returns_the_live_job_record(queue: Queue) -> None:
    first = queue.enqueue("t", {"a": 1}, dedupe_key="once")
    again = queue.enqueue("t", {"a": 2}, dedupe_key="once")
    assert (first.created, again.created) == (True, False)
    assert again.id == first.id
    _same(_stored(again), _stored(queue.get_job(first.id)))


async def test_the_async_api_returns_the_stored_record(queue: Queue) -> None:
    try:
        jobs = await queue.aio.enqueue_many(
            [JobRequest("t", {"x": 1.5}), JobRequest("t", {"x": (1,)}, delay=5)]
        )
        one = await queue.aio.enqueue("t", {"y": "z"}, priority=2)
        for job in [*jobs, one]:
            _same(_stored(job), _stored(await queue.aio.get_job(job.id)), f"job {job.id}")
    finally:
        await queue.aio.close()


def test_a_lent_connection_in_another_time_zone_gets_the_stored_record(queue: Queue) -> None:
    """The record's times are in the lending connection's zone, as a read on it shows."""
    with psycopg.connect(queue.database_url) as conn:
        conn.execute("SET TIME ZONE 'Asia/Kathmandu'")  # +05:45
        job = queue.enqueue("t", {"a": 1}, delay=60, connection=conn)
        conn.commit()
        stored = queue.get_job(job.id, connection=conn)
    assert job.created_at.utcoffset() == dt.timedelta(hours=5, minutes=45)
    assert job.scheduled_at.utcoffset() == job.created_at.utcoffset()
    _same(_stored(job), _stored(stored))
    assert job.scheduled_at.isoformat() == stored.scheduled_at.isoformat()


@pytest.mark.parametrize(
    ("args", "exact"),
    [
        ({}, True),
        ({"a": [1, {"b": "c"}], "f": 0.5, "t": True, "n": None, "i": -(2**70)}, True),
        ({"f": 9.999999999999998e15, "small": 5e-324}, True),
        ({"t": (1,)}, False),
        ({"a": [{"f": 1e16}]}, False),
        ({"z": -0.0}, False),
        ({"e": Colour.RED}, False),
        ({"s": Shade.DARK}, False),
        (collections.OrderedDict(a=1), False),
        ({"a": {"b": collections.OrderedDict()}}, False),
    ],
)
def test_which_arguments_read_back_exactly(args: dict[str, Any], exact: bool) -> None:
    assert check_payload(args) is exact


def _first_query(jobs: list[ops.NewJob]) -> str:
    effect = next(ops.enqueue(jobs))
    assert isinstance(effect, ops.Query)
    return effect.name


def test_the_enqueue_path_follows_the_arguments_and_the_key(queue: Queue) -> None:
    plain = queue.prepare([JobRequest("t", {"a": 1}), JobRequest("t")])
    inexact = queue.prepare([JobRequest("t", {"a": 1}), JobRequest("t", {"a": (1,)})])
    keyed = queue.prepare([JobRequest("t", {"a": 1}), JobRequest("t", dedupe_key="k")])
    assert _first_query(plain) == "enqueue_new"
    assert _first_query(inexact) == "enqueue_plain"
    assert _first_query(keyed) == "enqueue"


def test_an_enqueued_record_is_a_valid_enqueued_job(queue: Queue) -> None:
    """Built, not parsed: it still goes through the model's validation."""
    [job] = queue.enqueue_many([JobRequest("t", {"a": 1})])
    assert isinstance(job, EnqueuedJob)
    assert EnqueuedJob.model_validate_json(job.model_dump_json()) == job


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("\x01" * 43_689, True),  # 6 bytes each as JSON: 262,134, and 9 around it
        ("\x01" * 43_690, False),  # under the limit in characters, over it in bytes
        ("é" * 131_000, True),  # 2 bytes each in UTF-8
        ("é" * 131_100, False),
        ("\U0001f600" * 65_530, True),  # 4 bytes each
        ("\U0001f600" * 65_540, False),
    ],
)
def test_the_size_limit_is_in_bytes_of_json(text: str, fits: bool) -> None:
    """The walk's bound lets most arguments skip being encoded to be measured; near the
    limit they are encoded, and escapes and UTF-8 count as the bytes they take."""
    args = {"t": text}
    size = len(json.dumps(args, ensure_ascii=False).encode())
    assert (size <= MAX_PAYLOAD_BYTES) is fits  # the cases straddle the limit
    if fits:
        check_payload(args)
    else:
        with pytest.raises(InvalidPayload, match=f"{size} bytes as JSON"):
            check_payload(args)


def _count(queue: Queue) -> int:
    with psycopg.connect(queue.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert row is not None
    return int(row[0])


def _big_batch(n: int) -> list[JobRequest]:
    """Over ops.ENQUEUE_CHUNK jobs of every kind: plain, inexact arguments, a dedupe
    key met again two chunks later, delays."""
    assert n > 2 * ops.ENQUEUE_CHUNK
    requests = [JobRequest("t", {"i": i}, delay=i % 3 or None) for i in range(n)]
    requests[3] = JobRequest("t", {"i": 3}, dedupe_key="twice")
    requests[n - 3] = JobRequest("t", {"i": n - 3}, dedupe_key="twice")
    requests[ops.ENQUEUE_CHUNK + 1] = JobRequest("t", {"i": ops.ENQUEUE_CHUNK + 1, "t": (1,)})
    return requests


def _check_big_batch(queue: Queue, requests: list[JobRequest], jobs: list[Job]) -> None:
    assert len(jobs) == len(requests)
    n = len(requests)
    for i, (request, job) in enumerate(zip(requests, jobs, strict=True)):
        if i == n - 3:  # the key met again: the first job's record, not a new one
            assert (job.created, job.id) == (False, jobs[3].id)
            continue
        assert job.args["i"] == request.args["i"]  # type: ignore[index]
        _same(_stored(job), _stored(queue.get_job(job.id)), f"job {i}")
    # (Ids follow request order within a chunk without keys; a keyed chunk draws its
    # keyed jobs' ids after the others'.)
    assert len({j.id for j in jobs if j.created}) == n - 1
    assert _count(queue) == n - 1


def test_a_batch_over_a_chunk_is_enqueued_in_order_with_its_records(queue: Queue) -> None:
    requests = _big_batch(2 * ops.ENQUEUE_CHUNK + 37)
    _check_big_batch(queue, requests, queue.enqueue_many(requests))


async def test_a_batch_over_a_chunk_through_the_async_api(queue: Queue) -> None:
    requests = _big_batch(3 * ops.ENQUEUE_CHUNK + 1)
    try:
        jobs = await queue.aio.enqueue_many(requests)
    finally:
        await queue.aio.close()
    _check_big_batch(queue, requests, jobs)


def test_a_batch_over_a_chunk_on_a_lent_connection_commits_with_it(queue: Queue) -> None:
    requests = _big_batch(2 * ops.ENQUEUE_CHUNK + 5)
    with psycopg.connect(queue.database_url) as conn:
        jobs = queue.enqueue_many(requests, connection=conn)
        assert _count(queue) == 0  # not before the caller commits
        conn.commit()
    _check_big_batch(queue, requests, jobs)


@pytest.mark.parametrize("lent", [False, True], ids=["own", "lent"])
def test_a_bad_request_in_a_late_chunk_writes_nothing(queue: Queue, lent: bool) -> None:
    """The chunks before it were sent already (on the queue's own connection): they are
    rolled back with it. On a lent connection nothing was sent: the caller's transaction
    holds none of the batch, and may go on and commit."""
    queue.enqueue("t", {"before": True})
    requests = [JobRequest("t", {"i": i}) for i in range(2 * ops.ENQUEUE_CHUNK + 10)]
    requests[-5] = JobRequest("t", {"bad": float("nan")})
    if lent:
        with psycopg.connect(queue.database_url) as conn:
            with pytest.raises(InvalidPayload, match="NaN"):
                queue.enqueue_many(requests, connection=conn)
            conn.execute("SELECT 1")  # the transaction is still usable
            conn.commit()
    else:
        with pytest.raises(InvalidPayload, match="NaN"):
            queue.enqueue_many(requests)
    assert _count(queue) == 1


async def test_a_bad_request_in_a_late_chunk_writes_nothing_through_the_async_api(
    queue: Queue,
) -> None:
    requests = [JobRequest("t", {"i": i}) for i in range(ops.ENQUEUE_CHUNK + 10)]
    requests[-1] = JobRequest("t", {"bad": float("inf")})
    try:
        with pytest.raises(InvalidPayload, match="Infinity"):
            await queue.aio.enqueue_many(requests)
        # The pooled connection came back clean: the next batch goes through.
        assert len(await queue.aio.enqueue_many(requests[:-1])) == len(requests) - 1
    finally:
        await queue.aio.close()
    assert _count(queue) == len(requests) - 1
