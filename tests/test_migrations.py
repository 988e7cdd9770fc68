"""Migrations: idempotent, concurrent-safe, versioned; outdated schemas are refused."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from queueing import Queue, SchemaNotMigrated, sql
from queueing.worker import Worker


def test_migrate_is_idempotent_and_records_the_version(empty_database: str) -> None:
    q = Queue(empty_database)
    with pytest.raises(SchemaNotMigrated, match="queueing db migrate"):
        q.get_job(1)
    assert q.migrate() == [m.version for m in sql.migrations()]
    assert q.migrate() == []
    state = q.schema_status()
    assert state.up_to_date
    assert state.current_version == sql.latest_version()
    assert [v for v, _, _ in state.applied] == [m.version for m in sql.migrations()]


def test_concurrent_migrations_apply_once(empty_database: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            results.append(Queue(empty_database).migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], [m.version for m in sql.migrations()]]


def test_a_worker_refuses_an_outdated_schema(queue: Queue) -> None:
    with psycopg.connect(queue.database_url) as conn:
        conn.execute("DELETE FROM queueing_migrations WHERE version = %s", [sql.latest_version()])
        conn.commit()
    try:
        fresh = Queue(queue.database_url)
        with pytest.raises(SchemaNotMigrated, match="run `queueing db migrate`"):
            asyncio.run(Worker(fresh).run(until_idle=True))
        with pytest.raises(SchemaNotMigrated, match="run `queueing db migrate`"):
            fresh.enqueue("x")
    finally:
        with psycopg.connect(queue.database_url) as conn:
            latest = sql.migrations()[-1]
            conn.execute(
                "INSERT INTO queueing_migrations (version, name) VALUES (%s, %s)",
                [latest.version, latest.name],
            )
            conn.commit()


def test_a_newer_schema_asks_for_an_upgrade(queue: Queue) -> None:
    with psycopg.connect(queue.database_url) as conn:
        conn.execute("INSERT INTO queueing_migrations (version, name) VALUES (9999, 'future')")
        conn.commit()
    try:
        with pytest.raises(SchemaNotMigrated, match="upgrade queueing"):
            Queue(queue.database_url).get_job(1)
    finally:
        with psycopg.connect(queue.database_url) as conn:
            conn.execute("DELETE FROM queueing_migrations WHERE version = 9999")
            conn.commit()
