"""The dashboard over HTTP (Starlette's TestClient, a real database): pages, filters,
400s, actions, CSRF, read-only, authentication and escaping."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx2
import psycopg
import pytest
from starlette.testclient import TestClient

from queueing import Actor, ConfigurationError, JobStatus, Queue, sql
from queueing.testing import drain
from queueing.web import basic_auth, create_app, local_operator
from tests.helpers import run_cli, worker_process
from tests.web_support import dashboard_process

ORIGIN = "http://testserver"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def client(app_queue: Queue) -> Iterator[TestClient]:
    with TestClient(create_app(app_queue, operator=local_operator("ops"))) as client:
        yield client


@pytest.fixture
def read_only(app_queue: Queue) -> Iterator[TestClient]:
    app = create_app(app_queue, operator=local_operator("ops"), read_only=True)
    with TestClient(app) as client:
        yield client


def post(client: TestClient, path: str, origin: str | None = ORIGIN, **data: str) -> str | int:
    """POST a form as the dashboard's pages do (its CSRF cookie and token); the status."""
    client.get("/workers")  # sets the CSRF cookie
    token = client.cookies.get("queueing_csrf")
    assert token
    headers = {"Origin": origin} if origin else {}
    response = client.post(
        path, data={"csrf": token, **data}, headers=headers, follow_redirects=False
    )
    return response.status_code


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-job-id="(\d+)"', html)]


def failed_job(queue: Queue, message: str = "boom") -> int:
    job = queue.enqueue("fail", {"message": message}, queue="failing")
    drain(queue, queues=["failing"])  # (the other queues' jobs stay pending)
    assert queue.get_job(job.id).status == JobStatus.FAILED
    return job.id


# --- pages --------------------------------------------------------------------------------


def test_the_overview_counts_each_queue(client: TestClient, app_queue: Queue) -> None:
    app_queue.enqueue("add", {"a": 1, "b": 2}, queue="alpha")
    app_queue.enqueue("add", {"a": 1, "b": 2}, queue="alpha", delay=3600)
    app_queue.enqueue("add", {"a": 1, "b": 2}, queue="beta")
    failed_job(app_queue)
    page = client.get("/")
    assert page.status_code == 200
    alpha = re.search(r'data-queue="alpha">(.*?)</tr>', page.text, re.S)
    assert alpha is not None
    cells = re.findall(r'<td class="num[^"]*">(?:<a[^>]*>)?(\d+)', alpha.group(1))
    assert cells == ["1", "1", "0", "0"]  # pending, delayed, active, failed in the last hour
    failing = re.search(r'data-queue="failing">(.*?)</tr>', page.text, re.S)
    assert failing is not None
    assert re.findall(r'<td class="num[^"]*">(?:<a[^>]*>)?(\d+)', failing.group(1))[3] == "1"
    assert "<svg" in failing.group(1) and "<title>1 finished, 5-0 min ago" in failing.group(1)


def test_jobs_filter_by_status_queue_task_tenant_user_and_error(
    client: TestClient, app_queue: Queue
) -> None:
    a = app_queue.enqueue("add", {"a": 1, "b": 2}, queue="q1", tenant_id="T", user_id="u")
    b = app_queue.enqueue("noop", queue="q2", tenant_id="T", user_id="v")
    failed = failed_job(app_queue, "disk full on /var")
    assert row_ids(client.get("/jobs").text) == [failed, b.id, a.id]
    assert row_ids(client.get("/jobs?status=failed").text) == [failed]
    assert row_ids(client.get("/jobs?status=pending&status=failed").text) == [failed, b.id, a.id]
    assert row_ids(client.get("/jobs?queue=q1").text) == [a.id]
    assert row_ids(client.get("/jobs?task=noop").text) == [b.id]
    assert row_ids(client.get("/jobs?tenant=T&user=v").text) == [b.id]
    assert row_ids(client.get("/jobs?error=DISK FULL").text) == [failed]
    assert row_ids(client.get("/jobs?error=valueerror").text) == [failed]
    assert row_ids(client.get("/jobs?error=%25").text) == []  # text, not a pattern
    assert "1 matching job<" in client.get("/jobs?queue=q1").text


def test_jobs_filter_by_time_and_page_by_keyset(client: TestClient, app_queue: Queue) -> None:
    ids = [app_queue.enqueue("noop").id for _ in range(5)]
    with psycopg.connect(app_queue.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE procrastinate_jobs SET created_at = '2020-01-01T00:00:00Z' WHERE id = ANY(%s)",
            [ids[:2]],
        )
    assert row_ids(client.get("/jobs?before=2021-01-01T00:00").text) == ids[1::-1]
    assert row_ids(client.get("/jobs?after=2021-01-01T00:00:00%2B00:00").text) == ids[:1:-1]
    first = client.get("/jobs?limit=2").text
    assert row_ids(first) == [ids[4], ids[3]] and "5 matching jobs" in first
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert row_ids(second) == [ids[2], ids[1]] and "5 matching jobs" in second


def test_a_job_page_shows_arguments_error_traceback_and_attempts(
    client: TestClient, app_queue: Queue
) -> None:
    job_id = failed_job(app_queue, "it broke")
    page = client.get(f"/jobs/{job_id}").text
    assert "ValueError: it broke" in page
    assert "Traceback" in page and "raise ValueError(message)" in page
    assert "&#34;message&#34;: &#34;it broke&#34;" in page
    assert re.search(r"run 1 \(attempt 1\): <strong>failed</strong>\s+on worker \d+", page)
    assert 'class="timeline"' in page


def worker_row(html: str, worker_id: int) -> str:
    row = re.search(rf'data-worker-id="{worker_id}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no line for worker {worker_id}"
    return row.group(1)


def test_the_workers_page_shows_a_real_workers_host_pid_and_start(
    client: TestClient, app_queue: Queue
) -> None:
    with worker_process(app_queue.database_url) as worker:
        started = worker.wait_for_log("worker.started")
        assert (started["host"], started["pid"]) == (socket.gethostname(), worker.proc.pid)
        row = worker_row(client.get("/workers").text, worker.id)
    assert f'<td class="worker-host">{socket.gethostname()}</td>' in row
    assert f'<td class="num worker-pid">{worker.proc.pid}</td>' in row
    (start, heartbeat) = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)</td>", row)
    assert start <= heartbeat


def test_a_worker_registered_by_procrastinate_itself_shows_no_host_or_pid(
    client: TestClient, app_queue: Queue
) -> None:
    # procrastinate's own registration is kept: its workers may share the database.
    with psycopg.connect(app_queue.database_url, autocommit=True) as conn:
        (worker_id,) = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone() or ()
    row = worker_row(client.get("/workers").text, worker_id)
    assert '<td class="worker-host">—</td>' in row and '<td class="num worker-pid">—</td>' in row


# --- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/jobs?status=bogus", "unknown status 'bogus' (one of pending, active, completed"),
        ("/jobs?limit=-1", "limit must be between 1 and 500, got -1"),
        ("/jobs?limit=1000000", "limit must be between 1 and 500, got 1000000"),
        ("/jobs?limit=ten", "limit must be an integer, got 'ten'"),
        ("/jobs?before_id=0", "before_id must be a positive integer, got '0'"),
        ("/jobs?before_id=99999999999999999999", "before_id must be a positive integer"),
        ("/jobs?after=yesterday", "after must be an ISO 8601 time, got 'yesterday'"),
        ("/jobs?queue=no%20spaces", "invalid queue name 'no spaces'"),
        ("/jobs?tenant=a%00b", "tenant contains a NUL character"),
        ("/jobs?queue=a&queue=b", "query parameter 'queue' given more than once"),
        ("/jobs?sort=id", "unknown query parameter 'sort'"),
        ("/?x=1", "unknown query parameter 'x'"),
        ("/jobs/abc", "job id must be a positive integer, got 'abc'"),
        ("/jobs/-3", "job id must be a positive integer, got '-3'"),
        ("/jobs/99999999999999999999", "job id must be a positive integer"),
        ("/jobs/bulk?action=delete", "action must be one of cancel, retry"),
    ],
)
def test_bad_query_parameters_get_a_400_with_one_line(
    client: TestClient, path: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert response.text.startswith(message) and "\n" not in response.text


def test_an_unknown_job_is_a_404(client: TestClient) -> None:
    response = client.get("/jobs/424242")
    assert (response.status_code, response.text) == (404, "job 424242 not found")


# --- actions ------------------------------------------------------------------------------


def test_cancel_retry_and_run_now_go_through_the_library(
    client: TestClient, app_queue: Queue
) -> None:
    pending = app_queue.enqueue("noop", delay=3600)
    assert post(client, f"/jobs/{pending.id}/run-now") == 303
    assert app_queue.get_job(pending.id).scheduled_at <= app_queue.get_job(pending.id).updated_at
    assert post(client, f"/jobs/{pending.id}/cancel") == 303
    cancelled = app_queue.get_job(pending.id)
    assert (cancelled.status, cancelled.cancelled_by) == (JobStatus.CANCELLED, "operator:ops")
    failed = failed_job(app_queue)
    assert post(client, f"/jobs/{failed}/retry") == 303
    assert app_queue.get_job(failed).status == JobStatus.PENDING
    assert post(client, f"/jobs/{failed}/retry") == 409  # pending now: not retryable
    assert post(client, f"/jobs/{failed}/explode") == 400


def test_bulk_retry_states_the_count_then_retries_those_jobs(
    client: TestClient, app_queue: Queue
) -> None:
    failed = [failed_job(app_queue, f"boom {i}") for i in range(3)]
    other = app_queue.enqueue("noop").id
    confirm = client.get("/jobs/bulk?action=retry&status=failed").text
    assert "This will retry 3 jobs" in confirm and ">Retry 3 jobs<" in confirm
    newest = re.search(r'name="newest_id" value="(\d+)"', confirm)
    assert newest is not None and int(newest.group(1)) == max(failed)
    late = failed_job(app_queue, "after the confirmation")
    assert (
        post(client, "/jobs/bulk", action="retry", newest_id=newest.group(1), status="failed")
        == 200
    )
    assert {app_queue.get_job(i).status for i in failed} == {JobStatus.PENDING}
    assert app_queue.get_job(late).status == JobStatus.FAILED  # not counted: not touched
    assert app_queue.get_job(other).status == JobStatus.PENDING


def test_bulk_cancel_of_a_queue(client: TestClient, app_queue: Queue) -> None:
    ids = [app_queue.enqueue("noop", queue="doomed").id for _ in range(2)]
    kept = app_queue.enqueue("noop", queue="kept").id
    confirm = client.get("/jobs/bulk?action=cancel&queue=doomed").text
    assert "This will cancel 2 jobs" in confirm
    newest = str(max(ids))
    assert post(client, "/jobs/bulk", action="cancel", newest_id=newest, queue="doomed") == 200
    assert {app_queue.get_job(i).status for i in ids} == {JobStatus.CANCELLED}
    assert app_queue.get_job(kept).status == JobStatus.PENDING


def queue_cell(html: str, queue: str) -> str:
    row = re.search(rf'data-queue="{queue}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no line for queue {queue}"
    cell = re.search(r'<td class="queue-state">(.*?)</td>', row.group(1), re.S)
    assert cell is not None
    return cell.group(1)


def test_pause_and_resume_from_the_overview_hold_and_release_a_real_workers_claims(
    client: TestClient, app_queue: Queue
) -> None:
    held = app_queue.enqueue("add", {"a": 1, "b": 2}, queue="reports")
    app_queue.set_queue_limit("reports", 3)
    assert 'data-action="pause"' in queue_cell(client.get("/").text, "reports")
    assert post(client, "/queues/reports/pause") == 303
    cell = queue_cell(client.get("/").text, "reports")
    assert "paused" in cell and "(max 3 active)" in cell and 'data-action="resume"' in cell
    # A minute between polls: after the resume, only its notification wakes the worker.
    with worker_process(app_queue.database_url, "--poll-interval", "60") as worker:
        # Enqueued after `held`: claimed first only if the claim skips the paused queue.
        later = app_queue.enqueue("noop")
        assert app_queue.wait_for(later.id, timeout=30).status == JobStatus.COMPLETED
        assert app_queue.get_job(held.id).status == JobStatus.PENDING
        assert post(client, "/queues/reports/resume") == 303
        assert app_queue.wait_for(held.id, timeout=30).result == 3
        # Its log line, which the test reads from the worker's pipe as it comes: wait for
        # it (the job's row can be read before the line has been).
        assert worker.wait_for_job_log("job.completed", held.id, timeout=30)
    (info,) = [q for q in app_queue.list_queues() if q.name == "reports"]
    assert (info.paused, info.max_active) == (False, 3)


def test_a_queue_action_is_checked_by_the_library(client: TestClient, app_queue: Queue) -> None:
    assert post(client, "/queues/nowhere/pause") == 404  # no job or setting uses it
    assert post(client, "/queues/bad%20name/pause") == 422
    app_queue.enqueue("noop", queue="known")
    assert post(client, "/queues/known/explode") == 400
    assert client.get("/queues/known/pause").status_code == 405  # never a GET
    assert post(client, "/queues/known/pause", origin="https://evil.example") == 403
    assert [q.paused for q in app_queue.list_queues() if q.name == "known"] == [False]


# --- CSRF, read-only, authentication --------------------------------------------------------


def test_a_post_without_its_token_or_from_another_origin_is_refused(
    client: TestClient, app_queue: Queue
) -> None:
    job = app_queue.enqueue("noop")
    assert post(client, f"/jobs/{job.id}/cancel", origin="https://evil.example") == 403
    assert post(client, f"/jobs/{job.id}/cancel", origin=None) == 403
    no_token = client.post(f"/jobs/{job.id}/cancel", headers={"Origin": ORIGIN})
    assert (no_token.status_code, no_token.text) == (
        403,
        "missing or wrong CSRF token: reload the page and try again",
    )
    wrong = client.post(
        f"/jobs/{job.id}/cancel", data={"csrf": "x" * 43}, headers={"Origin": ORIGIN}
    )
    assert wrong.status_code == 403
    assert client.get(f"/jobs/{job.id}/cancel").status_code == 405  # never a GET
    assert app_queue.get_job(job.id).status == JobStatus.PENDING


def test_read_only_hides_and_refuses_every_action(read_only: TestClient, app_queue: Queue) -> None:
    job = app_queue.enqueue("noop")
    page = read_only.get(f"/jobs/{job.id}").text
    assert 'id="cancel"' not in page and "read-only" in page
    assert "bulk-retry" not in read_only.get("/jobs").text
    assert post(read_only, f"/jobs/{job.id}/cancel") == 403
    assert post(read_only, "/jobs/bulk", action="cancel", newest_id=str(job.id)) == 403
    assert read_only.get("/jobs/bulk?action=cancel").status_code == 403
    assert app_queue.get_job(job.id).status == JobStatus.PENDING
    overview = read_only.get("/").text
    assert "running" in queue_cell(overview, "default") and "data-action" not in overview
    assert post(read_only, "/queues/default/pause") == 403
    assert [q.paused for q in app_queue.list_queues()] == [False]


def test_basic_auth_guards_every_operator_page(app_queue: Queue) -> None:
    app = create_app(app_queue, operator=basic_auth("ops", "s3cret"))
    with TestClient(app) as client:
        for path in ("/", "/jobs", "/workers", "/events"):
            response = client.get(path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Basic")
        assert client.get("/", auth=("ops", "wrong")).status_code == 401
        assert client.get("/", auth=("nobody", "s3cret")).status_code == 401
        assert client.get("/", auth=("ops", "s3cret")).status_code == 200


def test_a_cancel_from_the_page_records_the_basic_auth_users_name(app_queue: Queue) -> None:
    job = app_queue.enqueue("noop")
    app = create_app(app_queue, operator=basic_auth("ada", "s3cret"))
    with TestClient(app) as client:
        client.auth = ("ada", "s3cret")  # on every request, as a browser resends it
        assert post(client, f"/jobs/{job.id}/cancel") == 303
    cancelled = app_queue.get_job(job.id)
    assert (cancelled.status, cancelled.cancelled_by) == (JobStatus.CANCELLED, "operator:ada")
    assert cancelled.cancelled_by_actor == Actor.operator("ada")


def test_an_operator_name_from_the_host_app_is_checked(app_queue: Queue) -> None:
    job = app_queue.enqueue("noop")
    with TestClient(create_app(app_queue, operator=lambda request: "x" * 300)) as client:
        response = client.get("/")
        assert (response.status_code, response.text) == (
            422,
            "operator name must be 1 to 256 characters",
        )
    assert app_queue.get_job(job.id).status == JobStatus.PENDING


def test_an_app_without_any_authentication_is_refused(app_queue: Queue) -> None:
    with pytest.raises(ConfigurationError, match="needs operator="):
        create_app(app_queue)


def test_the_cli_refuses_to_serve_off_loopback_without_auth() -> None:
    result = run_cli("dashboard", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert result.stderr == (
        "error: refusing to serve the dashboard on 0.0.0.0 without authentication: set "
        "QUEUEING_DASHBOARD_USER and QUEUEING_DASHBOARD_PASSWORD (basic auth)\n"
    )


# --- escaping -----------------------------------------------------------------------------


def test_user_data_renders_as_text(client: TestClient, app_queue: Queue) -> None:
    job = app_queue.enqueue("greet", {"payload": {"name": XSS}}, tenant_id=XSS, user_id=XSS)
    failed = failed_job(app_queue, XSS)
    for path in (f"/jobs/{job.id}", f"/jobs/{failed}", "/jobs", f"/jobs?user={XSS}"):
        page = client.get(path).text
        assert XSS not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
    headers = client.get("/jobs").headers
    assert "script-src 'self'" in headers["content-security-policy"]


# --- the CLI's dashboard process ----------------------------------------------------------


def test_the_cli_dashboard_serves_read_only_and_with_basic_auth(app_queue: Queue) -> None:
    job = app_queue.enqueue("noop")
    credentials = {"QUEUEING_DASHBOARD_USER": "ops", "QUEUEING_DASHBOARD_PASSWORD": "pw"}
    with (
        dashboard_process(app_queue.database_url, "--read-only", env=credentials) as url,
        httpx2.Client(base_url=url, timeout=30.0) as http,
    ):
        assert http.get("/").status_code == 401
        page = http.get(f"/jobs/{job.id}", auth=("ops", "pw"))
        assert page.status_code == 200 and 'id="cancel"' not in page.text
        token = http.cookies.get("queueing_csrf")
        assert token
        refused = http.post(
            f"/jobs/{job.id}/cancel",
            data={"csrf": token},
            headers={"Origin": url},
            auth=("ops", "pw"),
        )
        assert refused.status_code == 403
    assert app_queue.get_job(job.id).status == JobStatus.PENDING


def test_the_cli_dashboard_refuses_a_database_without_the_schema(empty_database: str) -> None:
    result = run_cli("dashboard", "--port", "0", "--database-url", empty_database)
    assert result.returncode == 1
    assert result.stderr == (
        "error: database schema is version 0, queueing needs version "
        f"{sql.latest_version()}: run `queueing db migrate`\n"
    )
