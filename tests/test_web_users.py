"""The end-user view: pages and the live stream read through the row-level-security API
on a connection of the web role (a LOGIN role that is only a member of queueing_app)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx2
import psycopg
import pytest
from starlette.testclient import TestClient

from queueing import JobStatus, Queue
from queueing.web import EndUsers, create_app
from queueing.web.feed import hinted_job_ids
from tests.apps.web_host import demo_actor
from tests.web_support import host_process, web_role_url

ORIGIN = "http://testserver"


@pytest.fixture
def web_url(queue: Queue) -> Iterator[str]:
    with web_role_url(queue.database_url) as url:
        yield url


@pytest.fixture
def users(queue: Queue, web_url: str) -> Iterator[TestClient]:
    app = create_app(queue, end_users=EndUsers(actor=demo_actor, database_url=web_url))
    with TestClient(app) as client:
        yield client


def as_actor(client: TestClient, actor: str) -> TestClient:
    client.cookies.set("demo_actor", actor)
    return client


def shown(client: TestClient) -> set[int]:
    page = client.get("/me")
    assert page.status_code == 200, page.text
    return {int(i) for i in re.findall(r'data-job-id="(\d+)"', page.text)}


def test_each_actor_sees_only_their_jobs(users: TestClient, queue: Queue) -> None:
    a1 = queue.enqueue("t", tenant_id="A", user_id="a1").id
    a2 = queue.enqueue("t", tenant_id="A", user_id="a2").id
    b1 = queue.enqueue("t", tenant_id="B", user_id="b1").id
    b_a1 = queue.enqueue("t", tenant_id="B", user_id="a1").id  # same user id, other tenant
    assert shown(as_actor(users, "user:A:a1")) == {a1}
    assert shown(as_actor(users, "user:B:a1")) == {b_a1}
    assert shown(as_actor(users, "admin:A")) == {a1, a2}
    assert shown(as_actor(users, "admin:B")) == {b1, b_a1}
    users.cookies.clear()
    assert users.get("/me").status_code == 401


def test_the_operator_pages_are_not_served_to_end_users(users: TestClient) -> None:
    as_actor(users, "user:A:a1")
    for path in ("/", "/jobs", "/workers", "/events"):
        assert users.get(path).status_code == 404


def cancel(client: TestClient, job_id: int) -> int:
    client.get("/me")  # the CSRF cookie
    token = client.cookies.get("queueing_csrf")
    assert token
    return client.post(
        f"/me/jobs/{job_id}/cancel",
        data={"csrf": token},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    ).status_code


def test_a_user_cancels_their_own_job_and_nobody_elses(users: TestClient, queue: Queue) -> None:
    mine = queue.enqueue("t", tenant_id="A", user_id="a1").id
    colleague = queue.enqueue("t", tenant_id="A", user_id="a2").id
    other_tenant = queue.enqueue("t", tenant_id="B", user_id="a1").id
    as_actor(users, "user:A:a1")
    assert cancel(users, colleague) == 404
    assert cancel(users, other_tenant) == 404
    assert cancel(users, mine) == 303
    assert cancel(users, mine) == 409  # already cancelled
    assert queue.get_job(mine).cancelled_by == "user:a1"
    assert queue.get_job(colleague).status == JobStatus.PENDING
    assert queue.get_job(other_tenant).status == JobStatus.PENDING
    as_actor(users, "admin:A")
    assert cancel(users, colleague) == 303
    assert queue.get_job(colleague).cancelled_by == "admin:A"


def test_the_web_role_cannot_read_the_tables(web_url: str) -> None:
    """What the view runs on: nothing but the API (so a bug here cannot widen it)."""
    with psycopg.connect(web_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT id FROM procrastinate_jobs")


STREAM_DEADLINE_S = 60.0
"""How long a test reads an event stream for an event (the stream sends a keepalive every
15 s, so the deadline is checked at least that often)."""


def changed_events(stream: Iterator[str]) -> Iterator[list[int]]:
    """The id lists of a stream's ``changed`` events, as they come; AssertionError once
    ``STREAM_DEADLINE_S`` has passed (never a test that hangs on a silent stream)."""
    deadline = time.monotonic() + STREAM_DEADLINE_S
    name = None
    for line in stream:
        if time.monotonic() > deadline:
            raise AssertionError(f"no expected event within {STREAM_DEADLINE_S:g} s")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name == "changed":
            yield json.loads(line.removeprefix("data: "))["ids"]
    raise AssertionError("the stream ended")


def events_until(stream: Iterator[str], job_id: int) -> list[list[int]]:
    """The ``changed`` events' id lists read from an SSE stream up to the first naming
    ``job_id``."""
    seen: list[list[int]] = []
    for ids in changed_events(stream):
        seen.append(ids)
        if job_id in ids:
            return seen
    raise AssertionError(f"the stream ended without naming job {job_id}: {seen}")


def test_the_stream_of_a_user_never_carries_another_users_job(queue: Queue, web_url: str) -> None:
    mine = queue.enqueue("t", tenant_id="A", user_id="a1").id
    colleague = queue.enqueue("t", tenant_id="A", user_id="a2").id
    other_tenant = queue.enqueue("t", tenant_id="B", user_id="b1").id
    with (
        host_process(queue.database_url, web_url) as app_url,
        httpx2.Client(cookies={"demo_actor": "user:A:a1"}, timeout=30.0) as client,
        client.stream("GET", f"{app_url}/me/events") as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == "event: ready"
        # The feed's first look at everything: read before any change, so that no hint
        # below coalesces with it into an unnamed "look at everything".
        assert next(changed_events(lines)) == []
        queue.cancel(other_tenant)  # changes first: hints the stream must drop
        queue.cancel(colleague)
        queue.enqueue("t", tenant_id="B", user_id="b1")  # an insert hint
        queue.cancel(mine)
        seen = events_until(lines, mine)
    named = {job_id for ids in seen for job_id in ids}
    assert named == {mine}, seen


def test_the_stream_needs_an_actor(queue: Queue, web_url: str) -> None:
    with host_process(queue.database_url, web_url) as app_url:
        response = httpx2.get(f"{app_url}/me/events", timeout=30.0)
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("channel", "payload", "expected"),
    [
        ("queueing_jobs_changed_v2", "42", [42]),
        ("queueing_jobs_changed_v2", "42,7,42", [7, 42]),
        ("queueing_jobs_changed_v2", "42,,7", [None]),
        ("queueing_jobs_changed_v2", "42,x", [None]),
        ("queueing_jobs_changed_v2", "4" * 25, [None]),
        ("queueing_jobs_changed_v2", "'; DROP TABLE x; --", [None]),
        ("queueing_jobs_changed_v2", "٤٢", [None]),  # digits, but not ASCII ones
        ("procrastinate_any_queue_v1", '{"type": "job_inserted", "job_id": 7}', [7]),
        ("procrastinate_any_queue_v1", '{"type": "abort_job_requested", "job_id": 8}', [8]),
        ("procrastinate_any_queue_v1", '{"type": "job_inserted", "job_id": "7"}', [None]),
        ("procrastinate_any_queue_v1", "[" * 8000, [None]),
    ],
)
def test_a_notification_names_a_job_or_everything(
    channel: str, payload: str, expected: list[int | None]
) -> None:
    """Anyone may NOTIFY: a payload the feed cannot read makes pages look at everything
    (re-read as their reader, so it shows nothing new), never raises."""
    assert hinted_job_ids(channel, payload) == expected


def test_a_forged_notification_neither_breaks_nor_leaks_into_a_stream(
    queue: Queue, web_url: str
) -> None:
    mine = queue.enqueue("t", tenant_id="A", user_id="a1").id
    other = queue.enqueue("t", tenant_id="B", user_id="b1").id
    with (
        host_process(queue.database_url, web_url) as app_url,
        httpx2.Client(cookies={"demo_actor": "user:A:a1"}, timeout=30.0) as client,
        client.stream("GET", f"{app_url}/me/events") as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "event: ready"
        events = changed_events(lines)
        # The feed's first look at everything, as it starts listening (an empty list).
        assert next(events) == []
        with psycopg.connect(queue.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('queueing_jobs_changed_v2', 'not an id')")
            # Unreadable: look at everything again. Read it before going on: a hint
            # coalesced with it would go out as that empty list too, unnamed.
            assert next(events) == []
            conn.execute("SELECT pg_notify('queueing_jobs_changed_v2', %s)", [str(other)])
        queue.cancel(mine)
        seen = events_until(lines, mine)
    assert {job_id for ids in seen for job_id in ids} == {mine}, seen


def test_a_users_jobs_come_in_pages(users: TestClient, queue: Queue) -> None:
    ids = [queue.enqueue("t", tenant_id="A", user_id="a1").id for _ in range(5)]
    as_actor(users, "user:A:a1")
    first = users.get("/me?limit=2").text
    assert [int(i) for i in re.findall(r'data-job-id="(\d+)"', first)] == ids[:2:-1]
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older is not None
    second = users.get(older.group(1).replace("&amp;", "&")).text
    assert [int(i) for i in re.findall(r'data-job-id="(\d+)"', second)] == ids[2:0:-1]
    assert users.get("/me?limit=0").status_code == 400
    assert users.get("/me?status=failed").status_code == 400
