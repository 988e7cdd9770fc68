"""What the dashboard's tests share: the dashboard and the host app as real processes,
the web role the end-user view connects as, and a headless Chromium.

The browser is Debian's (``apt-get install chromium chromium-driver``) driven by selenium
through /usr/bin/chromedriver, passed explicitly so that Selenium Manager never downloads
one. Without it the browser tests fail with one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import ROOT, WorkerProcess
from tests.test_rls import APP_ROLE, _as_user, _login_role

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NO_BROWSER = (
    "no browser for the dashboard's tests: install Debian's chromium and its driver "
    "(sudo apt-get install -y chromium chromium-driver)"
)
WAIT = 30.0
"""Seconds a browser test waits for a condition (a loaded machine is slow, never wrong)."""


@contextlib.contextmanager
def web_role_url(database_url: str) -> Iterator[str]:
    """``database_url`` as a fresh LOGIN role that is only a member of queueing_app."""
    with _login_role(database_url, APP_ROLE) as role:
        yield _as_user(database_url, role)


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], started: str) -> Iterator[str]:
    """A Python process of this repository; the URL its ``started`` line gives."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = WorkerProcess(proc)  # reads its JSON lines on stderr as they come
    try:
        yield str(log.wait_for_log(started, timeout=60)["url"])
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def dashboard_process(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``queueing dashboard --port 0 ARGS`` on ``database_url``; its base URL."""
    with _process(
        ["-m", "queueing", "dashboard", "--port", "0", "--database-url", database_url, *args],
        env or {},
        "dashboard.started",
    ) as url:
        yield url.rstrip("/")


@contextlib.contextmanager
def host_process(database_url: str, web_user_url: str) -> Iterator[str]:
    """tests/apps/web_host.py (the end-user view mounted at /app); its /app URL."""
    env = {"QUEUEING_DATABASE_URL": database_url, "QUEUEING_WEB_USER_URL": web_user_url}
    with _process(["-m", "tests.apps.web_host"], env, "host.started") as url:
        yield url.rstrip("/")


def chromium() -> WebDriver:
    """A headless Chromium; pytest.fail with one line when none is installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(NO_BROWSER, pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # (root in CI containers)
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_until(driver: WebDriver, what: str, condition: Any) -> Any:
    """``condition(driver)``'s first truthy value, within ``WAIT`` seconds."""
    return WebDriverWait(driver, WAIT).until(condition, f"{what}: not within {WAIT:g}s")


def open_live(driver: WebDriver, url: str) -> None:
    """Load a page and wait until its event stream is open (changes after this are seen)."""
    driver.get(url)
    wait_until(
        driver,
        f"{url}: live stream open",
        lambda d: d.find_element("tag name", "body").get_attribute("data-stream") == "on",
    )


def console_log(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (and forgets them)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's errors since the last call."""
    return [e for e in console_log(driver) if e.get("level") == "SEVERE"]


def screenshot(driver: WebDriver, name: str) -> None:
    """Save the page as ``name``.png: into docs/screenshots when ``scripts/screenshots``
    runs the browser tests (QUEUEING_SCREENSHOTS_DIR), else into a temporary folder, so
    that a test run leaves the checkout as it found it."""
    folder = Path(os.environ.get("QUEUEING_SCREENSHOTS_DIR") or _scratch_screenshots())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot {name}"
    assert path.stat().st_size > 0


def _scratch_screenshots() -> Path:
    return Path(tempfile.gettempdir()) / f"queueing-screenshots-{os.getuid()}-{os.getpid()}"
