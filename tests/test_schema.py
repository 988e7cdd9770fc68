"""sql/schema.sql is the schema the migrations build; migrations keep the previous release working.

sql/schema.sql is generated (``scripts/schema-sql``). Here a database built by
``Queue.migrate()`` and one built by running sql/schema.sql are compared through a
description of their catalogs (tests/schema_catalog.sql), so the check needs no pg_dump
and runs on any server version.

The compatibility policy (docs/design.md, migration 0004's note):
- a process refuses to start on a schema older than its code ("run `queueing db
  migrate`") or newer ("upgrade queueing"): ``queueing.ops.check_schema``;
- a migration keeps the SQL functions the previous release calls, never changes a
  function in place (a changed function gets a new ``_vN`` name), and drops a replaced
  version no earlier than one migration after its replacement.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib.resources
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate.schema import SchemaManager
from psycopg import sql as pgsql

from queueing import Queue, SchemaNotMigrated, sql
from queueing.testing import databases
from queueing.worker import Worker

REGENERATE = "scripts/schema-sql"
SCHEMA_SQL = sql.sql_dir() / "schema.sql"

# The SQL functions each release calls, by the schema version it ships with: its named
# queries (sql/queries.sql), procrastinate's (a procrastinate worker may share the
# database) and the end-user API granted to queueing_app. Migration N + 1 must keep
# every one of RELEASE_CALLS[N], so that release N's running workers survive a rolling
# deploy. test_this_release_calls_are_recorded asks for a new entry with each migration.
_RELEASE_5 = frozenset(
    {
        "procrastinate_cancel_job_v1",
        "procrastinate_defer_jobs_v1",
        "procrastinate_defer_periodic_job_v2",
        "procrastinate_fetch_job_v2",
        "procrastinate_finish_job_v1",
        "procrastinate_prune_stalled_workers_v1",
        "procrastinate_register_worker_v1",
        "procrastinate_retry_job_v2",
        "procrastinate_unregister_worker_v1",
        "procrastinate_update_heartbeat_v1",
        "queueing_api_cancel_v1",
        "queueing_api_jobs_v1",
        "queueing_cancel_v2",
        "queueing_claim_v1",
        "queueing_enqueue_v1",
        "queueing_enqueue_v2",
        "queueing_finish_v2",
        "queueing_prune_v1",
        "queueing_rescue_v1",
        "queueing_retry_v2",
        "queueing_run_now_v1",
        "queueing_wake_workers_v1",
    }
)

# Each later release: what it stopped calling, and what it calls instead.
RELEASE_CALLS: dict[int, frozenset[str]] = {5: _RELEASE_5}
RELEASE_CALLS[6] = RELEASE_CALLS[5] - {
    "queueing_claim_v1",
    "queueing_finish_v2",
    "queueing_rescue_v1",
} | {"queueing_claim_v2", "queueing_finish_v3", "queueing_rescue_v2"}
RELEASE_CALLS[7] = RELEASE_CALLS[6] - {"queueing_claim_v2", "queueing_rescue_v2"} | {
    "queueing_claim_v3",
    "queueing_rescue_v3",
    "queueing_status_name_v1",
}
RELEASE_CALLS[8] = RELEASE_CALLS[7] - {"queueing_claim_v3"} | {"queueing_claim_v4"}
RELEASE_CALLS[9] = RELEASE_CALLS[8] - {"queueing_claim_v4"} | {
    "queueing_claim_v5",
    "queueing_now_v1",
}
RELEASE_CALLS[10] = RELEASE_CALLS[9] - {"queueing_cancel_v2"} | {
    "queueing_cancel_v3",
    "queueing_register_worker_v1",
}
RELEASE_CALLS[11] = RELEASE_CALLS[10]
RELEASE_CALLS[12] = RELEASE_CALLS[11] - {
    "queueing_claim_v5",
    "queueing_enqueue_v1",
    "queueing_enqueue_v2",
    "queueing_finish_v3",
} | {"queueing_claim_v6", "queueing_enqueue_v3", "queueing_enqueue_v4", "queueing_finish_v4"}
RELEASE_CALLS[13] = RELEASE_CALLS[12] - {
    "queueing_claim_v6",
    "queueing_prune_v1",
    "queueing_rescue_v3",
} | {"queueing_claim_v7", "queueing_prune_v2", "queueing_rescue_v4"}
# Still calls queueing_enqueue_v3, for arguments jsonb would not give back as sent;
# queueing_finish_v4 through queueing_finish_v5, queueing_claim_v7 through _v8.
RELEASE_CALLS[14] = RELEASE_CALLS[13] - {"queueing_claim_v7", "queueing_finish_v4"} | {
    "queueing_claim_v8",
    "queueing_enqueue_v5",
    "queueing_finish_v5",
}
RELEASE_CALLS[15] = RELEASE_CALLS[14] | {"queueing_listen_job_changes_v1"}

_CALL = re.compile(r"\b((?:queueing|procrastinate)_\w+)\s*\(")
_VERSIONED = re.compile(r"^(\w+)_v(\d+)$")


def _catalog_queries() -> dict[str, str]:
    text = (Path(__file__).parent / "schema_catalog.sql").read_text(encoding="utf-8")
    return sql.named_blocks(text)


CATALOG = _catalog_queries()


def _query(name: str) -> pgsql.SQL:
    # Test-only catalog queries from tests/schema_catalog.sql, never user input.
    return pgsql.SQL(CATALOG[name])


@contextmanager
def fresh_database(role: str) -> Iterator[str]:
    """An empty database of its own (no schema at all); dropped afterwards."""
    admin = databases.server_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"queueing_schema_{role}_{worker}_{os.getpid()}"
    databases.drop_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.query("create_database").format(name=pgsql.Identifier(name)))
    try:
        yield databases.with_database(admin, name)
    finally:
        databases.drop_database(admin, name)


def describe(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every object of the database's schemas ("kind name" -> its description), and the
    schema version recorded in it."""
    objects: dict[str, str] = {}
    for kind, name, detail in conn.execute(_query("describe")).fetchall():
        key = f"{kind} {name}"
        objects[key] = f"{objects[key]}\n{detail}" if key in objects else str(detail)
    state = conn.execute(sql.query("schema_state")).fetchone()
    if state is not None and state[1]:
        for version, name, _applied_at in conn.execute(sql.query("applied_migrations")):
            objects[f"migration {version}"] = name
    return objects


def schema_difference(
    from_migrations: dict[str, str], from_schema_sql: dict[str, str]
) -> str | None:
    """None if the two descriptions agree, else what differs and how to fix it."""
    report = []
    for key in sorted(from_migrations.keys() | from_schema_sql.keys()):
        built, written = from_migrations.get(key), from_schema_sql.get(key)
        if written is None:
            report.append(f"+ {key} (only built by the migrations): {built}")
        elif built is None:
            report.append(f"- {key} (only in sql/schema.sql): {written}")
        elif built != written:
            diff = difflib.unified_diff(
                written.splitlines(),
                built.splitlines(),
                "sql/schema.sql",
                "migrations",
                n=2,
                lineterm="",
            )
            report.append(f"~ {key} differs:\n" + "\n".join(f"    {d}" for d in diff))
    if not report:
        return None
    return (
        f"sql/schema.sql is not the schema the migrations build: regenerate it with "
        f"`{REGENERATE}` and commit it.\n" + "\n".join(report)
    )


@pytest.fixture(scope="module")
def migrated_url() -> Iterator[str]:
    with fresh_database("migrated") as url:
        Queue(url).migrate()
        yield url


@pytest.fixture(scope="module")
def schema_sql_url() -> Iterator[str]:
    with fresh_database("file") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            # The file is ours; several statements in one simple query.
            conn.execute(pgsql.SQL(SCHEMA_SQL.read_text(encoding="utf-8")))
        yield url


def _described(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return describe(conn)


def test_schema_sql_builds_the_schema_the_migrations_build(
    migrated_url: str, schema_sql_url: str
) -> None:
    difference = schema_difference(_described(migrated_url), _described(schema_sql_url))
    assert difference is None, difference


def test_schema_sql_says_it_is_generated_and_how() -> None:
    head = SCHEMA_SQL.read_text(encoding="utf-8")[:2000]
    assert "GENERATED" in head
    assert REGENERATE in head
    assert f"schema version {sql.latest_version()}," in head


def test_a_database_built_from_schema_sql_is_current(schema_sql_url: str) -> None:
    queue = Queue(schema_sql_url)
    state = queue.schema_status()
    assert state.up_to_date
    assert state.current_version == sql.latest_version()
    assert queue.stats() == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param(
            "CREATE FUNCTION queueing_extra_v1() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
            "queueing_extra_v1",
            id="new function",
        ),
        pytest.param(
            "CREATE OR REPLACE FUNCTION queueing_actor_sees_v1(p_tenant_id text, p_user_id text)"
            " RETURNS boolean LANGUAGE sql STABLE AS 'SELECT false'",
            "queueing_actor_sees_v1",
            id="function body changed",
        ),
        pytest.param(
            "ALTER FUNCTION queueing_stamp_job_v1() SET work_mem = '8MB'",
            "queueing_stamp_job_v1",
            id="function setting",
        ),
        pytest.param(
            "GRANT SELECT ON queueing_attempts TO queueing_app",
            "queueing_attempts",
            id="grant",
        ),
        pytest.param(
            "DROP POLICY queueing_actor_read ON procrastinate_jobs",
            "queueing_actor_read",
            id="policy dropped",
        ),
        pytest.param(
            "ALTER TABLE procrastinate_events ENABLE ROW LEVEL SECURITY",
            "procrastinate_events",
            id="row-level security",
        ),
        pytest.param(
            "CREATE INDEX queueing_extra_idx ON procrastinate_jobs (queue_name)",
            "queueing_extra_idx",
            id="index",
        ),
        pytest.param(
            "ALTER TABLE queueing_attempts ADD COLUMN extra text",
            "extra",
            id="column",
        ),
    ],
)
def test_a_migration_without_a_regenerated_schema_sql_fails(
    migrated_url: str, schema_sql_url: str, change: str, named: str
) -> None:
    from_schema_sql = _described(schema_sql_url)
    with psycopg.connect(migrated_url) as conn:
        # A new migration, applied in a transaction that is rolled back afterwards.
        conn.execute(pgsql.SQL(change))  # a literal of the parameters above
        from_migrations = describe(conn)
        conn.rollback()
    difference = schema_difference(from_migrations, from_schema_sql)
    assert difference is not None
    assert f"regenerate it with `{REGENERATE}`" in difference
    objects = [line for line in difference.splitlines() if line.startswith(("+ ", "- ", "~ "))]
    assert any(named in line for line in objects), difference


def test_a_process_refuses_a_newer_schema() -> None:
    """The policy's other side (an older schema is tests/test_migrations.py's)."""
    admin = databases.server_url()
    name = f"queueing_schema_newer_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = databases.create_database(admin, name)
    try:
        latest = sql.latest_version()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.query("record_migration"), {"version": latest + 1, "name": "from_the_future"}
            )
        queue = Queue(url)
        upgrade = f"schema is version {latest + 1}, newer than this queueing .*: upgrade queueing"
        with pytest.raises(SchemaNotMigrated, match=upgrade):
            asyncio.run(Worker(queue).run(until_idle=True))
        with pytest.raises(SchemaNotMigrated, match=upgrade):
            queue.enqueue("x")
        with pytest.raises(SchemaNotMigrated, match=upgrade):
            queue.get_job(1)
    finally:
        databases.drop_database(admin, name)


def _functions(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, bool, str]]:
    """identity -> (name, is a trigger function, definition)."""
    return {
        identity: (name, is_trigger, definition)
        for identity, name, is_trigger, definition in conn.execute(_query("functions"))
    }


def _replaced(name: str, names: set[str]) -> bool:
    """Whether a newer ``_vN`` of function ``name`` is among ``names``."""
    match = _VERSIONED.match(name)
    if match is None:
        return False
    base, version = match[1], int(match[2])
    return any(
        (m := _VERSIONED.match(other)) is not None and m[1] == base and int(m[2]) > version
        for other in names
    )


def test_each_migration_keeps_what_the_previous_release_calls() -> None:
    problems: list[str] = []
    with fresh_database("steps") as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pgsql.SQL(SchemaManager.get_schema()))
        conn.execute(sql.query("ensure_migrations_table"))
        before = _functions(conn)
        for migration in sql.migrations():
            conn.execute(pgsql.SQL(migration.text))
            after = _functions(conn)
            names_before = {name for name, _, _ in before.values()}
            names_after = {name for name, _, _ in after.values()}
            step = f"migration {migration.version:04d}"
            for identity, (name, is_trigger, definition) in before.items():
                if identity in after:
                    if after[identity][2] != definition:
                        problems.append(
                            f"{step} changes {identity} in place: give the new form a new "
                            f"name (_vN+1) and keep this one for the previous release"
                        )
                elif not is_trigger and not _replaced(name, names_before):
                    problems.append(
                        f"{step} drops {identity}, which the previous schema version had no "
                        f"newer version of: drop a replaced function one migration later"
                    )
            for name in sorted(RELEASE_CALLS.get(migration.version - 1, set()) - names_after):
                problems.append(f"{step} drops {name}, which release {migration.version - 1} calls")
            before = after
    assert problems == [], "\n".join(problems)


def _called_by_this_release(conn: psycopg.Connection[Any]) -> frozenset[str]:
    ours = (sql.sql_dir() / "queries.sql").read_text(encoding="utf-8")
    procrastinates = (
        importlib.resources.files("procrastinate.sql").joinpath("queries.sql").read_text()
    )
    existing = {name for name, _, _ in _functions(conn).values()}
    called = {m[1] for text in (ours, procrastinates) for m in _CALL.finditer(text)}
    api = {name for (name,) in conn.execute(_query("app_functions"))}
    return frozenset((called & existing) | api)


def test_this_release_calls_are_recorded(migrated_url: str) -> None:
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        called = _called_by_this_release(conn)
    latest = sql.latest_version()
    listed = ",\n".join(f'            "{name}"' for name in sorted(called))
    assert RELEASE_CALLS.get(latest) == called, (
        f"the SQL functions this release calls are not recorded for schema version {latest}; "
        f"the next migration must keep them. Add to RELEASE_CALLS in tests/test_schema.py:\n"
        f"    {latest}: frozenset(\n        {{\n{listed},\n        }}\n    ),"
    )
