"""The dashboard in a real headless Chromium, against a real ``queueing dashboard``
process (or the host app mounting the end-user view) and a real worker.

Every wait is on a condition with a deadline (WebDriverWait); every test ends with the
browser console free of errors. The README's screenshots are taken here (kept in
docs/screenshots when scripts/screenshots runs these tests).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator

import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By

from queueing import JobStatus, Queue
from tests import web_support
from tests.apps import web_tasks
from tests.helpers import WorkerProcess, pointed_at, wait_all, worker_process
from tests.web_support import (
    chromium,
    console_errors,
    console_log,
    dashboard_process,
    host_process,
    open_live,
    screenshot,
    wait_until,
    web_role_url,
)

XSS = "<script>alert(1)</script>"
APP = "tests.apps.web_tasks:queue"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def driver(browser: WebDriver) -> Iterator[WebDriver]:
    """The module's browser, with no cookie and an empty console log."""
    browser.delete_all_cookies()
    console_log(browser)
    yield browser
    browser.get("about:blank")  # closes the page's event stream


@pytest.fixture
def tasks(queue: Queue) -> Iterator[Queue]:
    """The tests' app (tests/apps/web_tasks.py) on this test's database."""
    with pointed_at(web_tasks.queue, queue.database_url) as app:
        yield app


@pytest.fixture
def dashboard(queue: Queue) -> Iterator[str]:
    with dashboard_process(queue.database_url) as url:
        yield url


@pytest.fixture
def worker(queue: Queue) -> Iterator[WorkerProcess]:
    with worker_process(queue.database_url, "--app", APP) as process:
        yield process


def mark_page(driver: WebDriver) -> None:
    """Mark the loaded page: the mark is gone if the page reloads."""
    driver.execute_script("window.__notReloaded = true;")


def not_reloaded(driver: WebDriver) -> bool:
    return driver.execute_script("return window.__notReloaded === true;") is True


# Read in one script each: htmx may swap an element between a lookup and a read.


def text_of(driver: WebDriver, css: str) -> str:
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;"
    found = driver.execute_script(script, css)
    assert found is not None, f"no {css} on {driver.current_url}"
    return str(found).strip()


def progress_of(driver: WebDriver, css: str) -> int:
    script = "const e = document.querySelector(arguments[0]); return e ? e.value : null;"
    found = driver.execute_script(script, css)
    assert found is not None, f"no {css} on {driver.current_url}"
    return int(found)


def click(driver: WebDriver, css: str) -> None:
    """Click ``css``, again if htmx replaced it under the click."""

    def clicked(d: WebDriver) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(driver, f"click {css}", clicked)


def rows(driver: WebDriver) -> list[int]:
    script = (
        "return Array.from(document.querySelectorAll('tr[data-job-id]'))"
        ".map(r => Number(r.dataset.jobId));"
    )
    return [int(i) for i in driver.execute_script(script)]


def test_the_overview_loads_and_follows_new_jobs_live(
    driver: WebDriver, tasks: Queue, dashboard: str, worker: WorkerProcess
) -> None:
    done = [tasks.enqueue("add", {"a": i, "b": 1}).id for i in range(6)]
    done += [tasks.enqueue("fail", {"message": "out of paper"}, queue="reports").id]
    wait_all(tasks, done, timeout=60)
    tasks.enqueue("add", {"a": 1, "b": 1}, queue="emails", delay=3600)
    open_live(driver, f"{dashboard}/")
    mark_page(driver)
    assert driver.find_elements(By.CSS_SELECTOR, 'tr[data-queue="default"] svg rect')
    tasks.enqueue("add", {"a": 2, "b": 2}, queue="invoices", delay=3600)
    wait_until(
        driver,
        "the new queue's line appears",
        lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-queue="invoices"]'),
    )
    assert not_reloaded(driver)
    click(driver, 'tr[data-queue="emails"] button[data-action="pause"]')
    wait_until(
        driver,
        "the queue shows paused",
        lambda d: text_of(d, 'tr[data-queue="emails"] td.queue-state').startswith("paused"),
    )
    assert [q.paused for q in tasks.list_queues() if q.name == "emails"] == [True]
    screenshot(driver, "overview")
    assert console_errors(driver) == []


def test_filtering_the_jobs_list(driver: WebDriver, tasks: Queue, dashboard: str) -> None:
    a = [tasks.enqueue("add", {"a": i, "b": 0}, queue="alpha", delay=3600).id for i in range(2)]
    b = tasks.enqueue("add", {"a": 9, "b": 9}, queue="beta", delay=3600).id
    driver.get(f"{dashboard}/jobs")
    assert rows(driver) == [b, *a[::-1]]
    driver.find_element(By.NAME, "queue").send_keys("alpha")
    driver.find_element(By.ID, "apply-filters").click()
    wait_until(driver, "the filtered list", lambda d: "queue=alpha" in d.current_url)
    assert rows(driver) == a[::-1]
    assert text_of(driver, "#jobs-count") == "2 matching jobs"
    assert console_errors(driver) == []


def test_a_running_jobs_progress_bar_advances_without_a_reload(
    driver: WebDriver, tasks: Queue, dashboard: str, worker: WorkerProcess
) -> None:
    job = tasks.enqueue("slow_stages", {"stages": 20, "seconds": 0.4})
    open_live(driver, f"{dashboard}/jobs/{job.id}")
    mark_page(driver)
    wait_until(driver, "progress starts", lambda d: progress_of(d, "#job-progress") > 0)
    first = progress_of(driver, "#job-progress")
    wait_until(driver, "progress advances", lambda d: progress_of(d, "#job-progress") > first)
    wait_until(driver, "the job completes", lambda d: text_of(d, "#job-status") == "completed")
    assert progress_of(driver, "#job-progress") == 100
    assert not_reloaded(driver)
    assert console_errors(driver) == []


def test_cancel_from_the_page_cancels_in_the_database(
    driver: WebDriver, tasks: Queue, dashboard: str
) -> None:
    job = tasks.enqueue("add", {"a": 1, "b": 2}, delay=3600)
    open_live(driver, f"{dashboard}/jobs/{job.id}")
    click(driver, "#cancel")
    wait_until(driver, "the page shows it", lambda d: text_of(d, "#job-status") == "cancelled")
    record = tasks.get_job(job.id)
    # Served on loopback without basic auth, the operator is the local user.
    assert (record.status, record.cancelled_by) == (
        JobStatus.CANCELLED,
        f"operator:{getpass.getuser()}",
    )
    assert console_errors(driver) == []


def test_a_retry_from_the_page_runs_the_job_again(
    driver: WebDriver, tasks: Queue, dashboard: str, worker: WorkerProcess
) -> None:
    job = tasks.enqueue("fail", {"message": "printer on fire"})
    assert tasks.wait_for(job.id, timeout=60).status == JobStatus.FAILED
    open_live(driver, f"{dashboard}/jobs/{job.id}")
    click(driver, "#retry")
    wait_until(
        driver,
        "the second attempt shows",
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#attempts li")) == 2
            and text_of(d, "#job-status") == "failed"
        ),
    )
    assert [a.outcome for a in tasks.attempts(job.id)] == ["failed", "failed"]
    screenshot(driver, "job")
    assert console_errors(driver) == []


def test_a_job_whose_argument_is_a_script_renders_it_as_text(
    driver: WebDriver, queue: Queue, dashboard: str
) -> None:
    job = queue.enqueue("render_me", {"text": XSS}, user_id=XSS)
    for path in (f"/jobs/{job.id}", "/jobs"):
        open_live(driver, f"{dashboard}{path}")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.accept()
    open_live(driver, f"{dashboard}/jobs/{job.id}")
    assert XSS in text_of(driver, "#job-args")
    assert not driver.find_elements(By.CSS_SELECTOR, "#job-args script")
    assert console_errors(driver) == []


def test_the_end_user_view_shows_only_the_users_jobs_live(
    driver: WebDriver, tasks: Queue, worker: WorkerProcess
) -> None:
    finished = tasks.enqueue("add", {"a": 1, "b": 2}, tenant_id="acme", user_id="ada")
    tasks.wait_for(finished.id, timeout=60)
    colleague = tasks.enqueue("add", {"a": 5, "b": 5}, tenant_id="acme", user_id="bob", delay=60)
    other = tasks.enqueue("slow_stages", {"stages": 10, "seconds": 0.3}, tenant_id="umbrella",
                          user_id="ada")  # fmt: skip
    with (
        web_role_url(tasks.database_url) as web_url,
        host_process(tasks.database_url, web_url) as app_url,
    ):
        # The host app's "session": set before the first page load (over DevTools).
        cookie = {"name": "demo_actor", "value": "user:acme:ada", "url": app_url}
        driver.execute_cdp_cmd("Network.setCookie", cookie)
        open_live(driver, f"{app_url}/me")
        mark_page(driver)
        running = tasks.enqueue("slow_stages", {"stages": 20, "seconds": 0.4}, tenant_id="acme",
                                user_id="ada")  # fmt: skip
        bar = f'tr[data-job-id="{running.id}"] progress'
        wait_until(driver, "the new job appears", lambda d: running.id in rows(d))
        wait_until(driver, "its progress starts", lambda d: progress_of(d, bar) > 0)
        first = progress_of(driver, bar)
        wait_until(driver, "its progress advances", lambda d: progress_of(d, bar) > first)
        screenshot(driver, "me")
        assert rows(driver) == [running.id, finished.id]
        assert not_reloaded(driver)
        for hidden in (colleague.id, other.id):
            assert f'data-job-id="{hidden}"' not in driver.page_source
        assert console_errors(driver) == []


def test_without_a_browser_the_tests_fail_with_one_line_saying_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web_support, "CHROMIUM", web_support.CHROMIUM.with_name("no-such-chromium"))
    with pytest.raises(pytest.fail.Exception) as failed:
        web_support.chromium()
    assert str(failed.value) == web_support.NO_BROWSER
    assert "\n" not in web_support.NO_BROWSER and "apt-get install" in web_support.NO_BROWSER
