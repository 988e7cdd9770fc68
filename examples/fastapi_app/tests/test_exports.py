"""The service end to end: HTTP in, jobs in PostgreSQL, a worker running them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from queueing import JobStatus, Queue
from queueing.testing import QueueWorker

ADA = {"X-User": "ada", "X-Tenant": "acme"}
BOB = {"X-User": "bob", "X-Tenant": "acme"}
ADA_ELSEWHERE = {"X-User": "ada", "X-Tenant": "globex"}


def exports(queue: Queue) -> list[tuple[str, str, int]]:
    with psycopg.connect(queue.database_url) as conn:
        return conn.execute("SELECT user_id, kind, job_id FROM exports ORDER BY id").fetchall()


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The data of each server-sent event (keep-alive comments skipped)."""
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


def test_an_export_and_its_job_are_written_together(client: TestClient, queue: Queue) -> None:
    answer = client.post("/exports", json={"kind": "invoices"}, headers=ADA)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    job = queue.get_job(body["job_id"])
    assert (job.status, job.user_id, job.tenant_id) == (JobStatus.PENDING, "ada", "acme")
    assert exports(queue) == [("ada", "invoices", job.id)]


def test_a_double_click_returns_the_same_export_and_job(client: TestClient, queue: Queue) -> None:
    first = client.post("/exports", json={"kind": "orders"}, headers=ADA)
    second = client.post("/exports", json={"kind": "orders"}, headers=ADA)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {**first.json(), "created": False}

    def click(_: int) -> tuple[int, int]:
        answer = client.post("/exports", json={"kind": "customers"}, headers=ADA)
        return answer.status_code, answer.json()["job_id"]

    with ThreadPoolExecutor(4) as pool:  # clicks at the same instant: still one job
        answers = list(pool.map(click, range(4)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({job_id for _, job_id in answers}) == 1
    assert len(queue.list_jobs()) == len(exports(queue)) == 2


def test_a_refused_request_writes_nothing(client: TestClient, queue: Queue) -> None:
    assert client.post("/exports", json={"kind": "passwords"}, headers=ADA).status_code == 422
    assert client.post("/exports", json={"kind": "orders"}).status_code == 401
    long_user = {"X-User": "x" * 300, "X-Tenant": "acme"}  # over the queue's id limit
    refused = client.post("/exports", json={"kind": "orders"}, headers=long_user)
    assert (refused.status_code, refused.json()["error"]) == (422, "InvalidPayload")
    assert queue.list_jobs() == [] and exports(queue) == []


def test_my_jobs_are_only_mine(client: TestClient, queue: Queue) -> None:
    ids = {
        who: client.post("/exports", json={"kind": "orders"}, headers=headers).json()["job_id"]
        for who, headers in (("ada", ADA), ("bob", BOB), ("ada@globex", ADA_ELSEWHERE))
    }
    for who, headers in (("ada", ADA), ("bob", BOB), ("ada@globex", ADA_ELSEWHERE)):
        mine = client.get("/jobs", headers=headers).json()
        assert [job["id"] for job in mine] == [ids[who]], who
    assert client.get("/jobs").status_code == 401


def test_progress_streams_until_the_job_completes(
    client: TestClient, queue: Queue, queueing_worker: QueueWorker
) -> None:
    job_id = client.post("/exports", json={"kind": "invoices"}, headers=ADA).json()["job_id"]
    with client.stream("GET", f"/jobs/{job_id}/events", headers=ADA) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = events(stream.iter_lines())
        first = next(received)
        with queueing_worker.background():  # the worker starts once the stream is open
            rest = list(received)
    assert (first["status"], first["progress"]) == ("pending", 0)
    assert (rest[-1]["status"], rest[-1]["progress"]) == ("completed", 100)
    progress = [e["progress"] for e in [first, *rest]]
    assert progress == sorted(progress)
    assert rest[-1]["detail"] == {"stage": "upload"}


def test_a_cancel_ends_the_stream(client: TestClient, queue: Queue) -> None:
    job_id = client.post("/exports", json={"kind": "orders"}, headers=ADA).json()["job_id"]
    with client.stream("GET", f"/jobs/{job_id}/events", headers=ADA) as stream:
        received = events(stream.iter_lines())
        assert next(received)["status"] == "pending"
        queue.cancel(job_id)
        assert [e["status"] for e in received] == ["cancelled"]


def test_no_stream_of_someone_elses_job(client: TestClient) -> None:
    job_id = client.post("/exports", json={"kind": "orders"}, headers=ADA).json()["job_id"]
    for other in (BOB, ADA_ELSEWHERE):
        answer = client.get(f"/jobs/{job_id}/events", headers=other)
        assert (answer.status_code, answer.json()) == (404, {"detail": f"job {job_id} not found"})
