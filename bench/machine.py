"""The facts of the machine a run was taken on: CPUs, load, PostgreSQL and its settings,
versions of everything measured."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from typing import Any

import psycopg

from bench.procs import REPO_ROOT
from bench.sql_blocks import claim_function, query

PACKAGES = ("queueing", "procrastinate", "pgqueuer", "psycopg", "asyncpg", "uvloop")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_head() -> str | None:
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


async def machine_facts(admin_url: str) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        cur = await conn.execute(query("server_facts"))
        row = await cur.fetchone()
        assert row is not None
    from queueing.sql import latest_version

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": row[1],
        "postgres_full": row[0],
        "postgres_settings": row[2],
        "versions": {p: _version(p) for p in PACKAGES},
        "git": _git_head(),
        "schema_version": latest_version(),
        "claim_function": claim_function(),
        "load_before": load_average(),
    }
