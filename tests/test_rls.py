"""Row-level security (migration 0005), proven with real non-owner roles.

Every test that reads through the API connects as a role created for it: LOGIN,
NOSUPERUSER, NOBYPASSRLS, member of ``queueing_app`` and nothing else. The owner (the
suite's superuser) only seeds rows and checks what changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from queueing import Actor, ConfigurationError, InvalidPayload, JobStatus, Queue
from queueing.rls import set_actor, set_actor_async
from queueing.testing import databases, drain
from tests.helpers import unique_name

API_ROLE = "queueing_api"
APP_ROLE = "queueing_app"
ALL_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


@dataclass(frozen=True)
class Seeded:
    """Job ids by owner: tenant A (users a1, a2), tenant B (b1, and a1 again), no tenant."""

    a1: frozenset[int]
    a2: frozenset[int]
    b1: frozenset[int]
    b_a1: frozenset[int]
    no_tenant: frozenset[int]

    @property
    def tenant_a(self) -> frozenset[int]:
        return self.a1 | self.a2

    @property
    def tenant_b(self) -> frozenset[int]:
        return self.b1 | self.b_a1


@pytest.fixture
def seeded(queue: Queue) -> Seeded:
    def ids(n: int, tenant: str | None, user: str) -> frozenset[int]:
        return frozenset(queue.enqueue("t", tenant_id=tenant, user_id=user).id for _ in range(n))

    return Seeded(
        a1=ids(2, "A", "a1"),
        a2=ids(1, "A", "a2"),
        b1=ids(2, "B", "b1"),
        b_a1=ids(1, "B", "a1"),  # the same user id in another tenant is another person
        no_tenant=ids(1, None, "a1"),
    )


def _as_user(url: str, role: str) -> str:
    return make_conninfo(url, user=role)


@contextlib.contextmanager
def _login_role(admin_url: str, *grants: str) -> Iterator[str]:
    """A fresh LOGIN NOSUPERUSER NOBYPASSRLS role, member of ``grants``; dropped after."""
    role = unique_name("queueing_rls_test")
    ident = pgsql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE").format(ident)
        )
        for grant in grants:
            conn.execute(pgsql.SQL("GRANT {} TO {}").format(pgsql.Identifier(grant), ident))
    try:
        yield role
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            conn.execute(pgsql.SQL("DROP ROLE {}").format(ident))


@pytest.fixture
def app_url(queue: Queue) -> Iterator[str]:
    """The test database, as a fresh application role (member of queueing_app only)."""
    with _login_role(queue.database_url, APP_ROLE) as role:
        yield _as_user(queue.database_url, role)


def _visible(conn: psycopg.Connection[Any]) -> set[int]:
    return {row[0] for row in conn.execute("SELECT id FROM queueing_api_jobs").fetchall()}


def _run_as(conn: psycopg.Connection[Any], actor: Actor, statement: str) -> None:
    with conn.transaction():
        set_actor(conn, actor)
        conn.execute(statement)


def _rows_of(queue: Queue, ids: frozenset[int]) -> list[tuple[Any, ...]]:
    """Everything about these jobs, as the owner sees it (to prove nothing changed)."""
    with psycopg.connect(queue.database_url) as conn:
        return conn.execute(
            "SELECT id, status, abort_requested, cancelled_by, updated_at, priority"
            "  FROM procrastinate_jobs WHERE id = ANY(%s) ORDER BY id",
            [list(ids)],
        ).fetchall()


# --- what each actor sees ---------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (Actor.user("a1", tenant_id="A"), "a1"),
        (Actor.user("a2", tenant_id="A"), "a2"),
        (Actor.admin("A"), "tenant_a"),
        (Actor.user("a1", tenant_id="B"), "b_a1"),
        (Actor.admin("B"), "tenant_b"),
        (Actor.user("b1", tenant_id="A"), None),  # B's user id, claimed in tenant A
        (Actor.admin("C"), None),
    ],
    ids=["user-a1@A", "user-a2@A", "admin@A", "user-a1@B", "admin@B", "user-b1@A", "admin@C"],
)
def test_users_see_their_jobs_admins_their_tenant_and_nobody_another_tenant(
    app_url: str, seeded: Seeded, actor: Actor, expected: str | None
) -> None:
    want: frozenset[int] = getattr(seeded, expected) if expected else frozenset()
    with psycopg.connect(app_url) as conn:
        with conn.transaction():
            set_actor(conn, actor)
            assert _visible(conn) == want
            # One job by id, through the function: the same rule.
            for job_id in seeded.tenant_a | seeded.tenant_b | seeded.no_tenant:
                rows = conn.execute("SELECT id FROM queueing_api_jobs_v1(%s)", [job_id]).fetchall()
                assert rows == ([(job_id,)] if job_id in want else [])
        # A job with no tenant is nobody's through the API.
        assert not (want & seeded.no_tenant)


def test_with_no_actor_the_api_shows_nothing_and_cancels_nothing(
    app_url: str, seeded: Seeded, queue: Queue
) -> None:
    before = _rows_of(queue, seeded.tenant_a | seeded.tenant_b)
    with psycopg.connect(app_url) as conn:
        assert _visible(conn) == set()  # never set on this connection: NULL
        conn.rollback()
        with conn.transaction():
            set_actor(conn, Actor.admin("A"))
            assert _visible(conn) == seeded.tenant_a
        assert _visible(conn) == set()  # set, then its transaction ended: '' (not NULL)
        for job_id in seeded.tenant_a:
            assert conn.execute("SELECT queueing_api_cancel_v1(%s)", [job_id]).fetchone() == (
                "not_found",
            )
        conn.commit()
        # Half an actor, or one of a kind the API does not know, is no actor.
        for settings in (
            {"queueing.tenant_id": "A"},
            {"queueing.actor": "admin"},
            {"queueing.actor": "system", "queueing.tenant_id": "A"},
            {"queueing.actor": "user", "queueing.tenant_id": "A"},  # no user id
            {"queueing.actor": "Admin", "queueing.tenant_id": "A"},
        ):
            with conn.transaction():
                for name, value in settings.items():
                    conn.execute("SELECT set_config(%s, %s, true)", [name, value])
                assert _visible(conn) == set(), settings
    assert _rows_of(queue, seeded.tenant_a | seeded.tenant_b) == before


def test_reads_updates_and_deletes_reach_none_of_another_tenants_rows(
    app_url: str, seeded: Seeded, queue: Queue
) -> None:
    before_b = _rows_of(queue, seeded.tenant_b)
    with psycopg.connect(app_url) as conn:
        # The application role has nothing on the tables themselves, actor or not.
        for statement in (
            "SELECT * FROM procrastinate_jobs",
            "UPDATE procrastinate_jobs SET priority = 1",
            "DELETE FROM procrastinate_jobs",
            "SELECT * FROM queueing_jobs",
            "DELETE FROM queueing_jobs",
            "SELECT * FROM queueing_attempts",
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES ('q', 't', '{}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                _run_as(conn, Actor.admin("A"), statement)
        # The API view is read-only.
        for statement in (
            "UPDATE queueing_api_jobs SET status = 'cancelled'",
            "DELETE FROM queueing_api_jobs",
        ):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                _run_as(conn, Actor.admin("A"), statement)
        # Nor can it become the API's role.
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Identifier(API_ROLE)))
        # Cancelling B's jobs as A's admin: not found, as if they did not exist.
        with conn.transaction():
            set_actor(conn, Actor.admin("A"))
            for job_id in seeded.tenant_b:
                outcome = conn.execute("SELECT queueing_api_cancel_v1(%s)", [job_id]).fetchone()
                assert outcome == ("not_found",)
    assert _rows_of(queue, seeded.tenant_b) == before_b


def test_the_policies_bind_the_api_role_itself(seeded: Seeded, queue: Queue) -> None:
    """Not only the functions' code: the row-level policies on the table limit what the
    API's own role reads, updates and deletes (a bug in an API function could not leak)."""
    before_b = _rows_of(queue, seeded.tenant_b)
    with psycopg.connect(queue.database_url) as conn:
        conn.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Identifier(API_ROLE)))
        assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (0,)
        set_actor(conn, Actor.admin("A"))
        seen = {r[0] for r in conn.execute("SELECT id FROM procrastinate_jobs").fetchall()}
        assert seen == seeded.tenant_a
        cur = conn.execute("UPDATE procrastinate_jobs SET cancelled_by = 'probe'")
        assert cur.rowcount == len(seeded.tenant_a)  # and none of B's
        cur = conn.execute(
            "UPDATE procrastinate_jobs SET cancelled_by = 'probe' WHERE id = ANY(%s)",
            [list(seeded.tenant_b)],
        )
        assert cur.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM procrastinate_jobs")
        conn.rollback()
    assert _rows_of(queue, seeded.tenant_b) == before_b


def test_cancel_through_the_api_follows_the_ownership_rules(
    app_url: str, seeded: Seeded, queue: Queue
) -> None:
    mine, running = sorted(seeded.a1)
    (other_users,) = seeded.a2
    # One of a1's jobs is running (as a worker would have claimed it).
    with psycopg.connect(queue.database_url) as conn:
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [running])
    with psycopg.connect(app_url) as conn, conn.transaction():
        set_actor(conn, Actor.user("a1", tenant_id="A"))
        cancel = "SELECT queueing_api_cancel_v1(%s)"
        # Another user's job is not even visible to a user: not found.
        assert conn.execute(cancel, [other_users]).fetchone() == ("not_found",)
        assert conn.execute(cancel, [mine]).fetchone() == ("cancelled",)
        assert conn.execute(cancel, [mine]).fetchone() == ("terminal",)
        assert conn.execute(cancel, [running]).fetchone() == ("stop_requested",)
        assert conn.execute(cancel, [running]).fetchone() == ("already_requested",)
    assert queue.get_job(mine).status is JobStatus.CANCELLED
    assert queue.get_job(mine).cancelled_by == "user:a1"
    assert queue.get_job(running).cancel_requested
    assert queue.get_job(other_users).status is JobStatus.PENDING


def test_a_thousand_alternating_transactions_on_one_pooled_connection_leak_nothing(
    app_url: str, seeded: Seeded
) -> None:
    """A/B/none in turn, some rolled back half-way, over a pool of one connection: each
    transaction sees exactly its own actor's rows, never the previous one's."""
    actors = [Actor.admin("A"), Actor.user("a1", tenant_id="B"), None, Actor.admin("B")]
    expected = [seeded.tenant_a, seeded.b_a1, frozenset(), seeded.tenant_b]
    backends: set[int] = set()
    with ConnectionPool(app_url, min_size=1, max_size=1, open=True) as pool:
        for i in range(1000):
            actor, want = actors[i % len(actors)], expected[i % len(expected)]
            with pool.connection() as conn:
                backends.add(conn.info.backend_pid)
                try:
                    with conn.transaction():
                        if actor is not None:
                            set_actor(conn, actor)
                        assert _visible(conn) == want, (i, actor)
                        if i % 7 == 3:
                            raise _Abandon  # the request fails after reading
                except _Abandon:
                    pass
                # Between transactions, on the same connection: nobody.
                assert _visible(conn) == set(), i
    assert len(backends) == 1


class _Abandon(Exception):
    pass


async def test_set_actor_async_is_the_same_call(app_url: str, seeded: Seeded) -> None:
    async with await psycopg.AsyncConnection.connect(app_url) as conn, conn.transaction():
        await set_actor_async(conn, Actor.user("a2", tenant_id="A"))
        cur = await conn.execute("SELECT id FROM queueing_api_jobs")
        assert {r[0] for r in await cur.fetchall()} == seeded.a2


def test_set_actor_refuses_what_would_not_mean_what_it_says(app_url: str) -> None:
    with psycopg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(ConfigurationError, match="needs a transaction"):
            set_actor(conn, Actor.admin("A"))  # would end with its own statement
        with conn.transaction():
            with pytest.raises(ConfigurationError, match="system actor"):
                set_actor(conn, Actor.system())
            with pytest.raises(ConfigurationError, match="operator actor does not read"):
                set_actor(conn, Actor.operator("ada"))  # the system's rights: the owner role
            with pytest.raises(ConfigurationError, match="needs a tenant_id"):
                set_actor(conn, Actor.user("u1"))
            with pytest.raises(InvalidPayload, match="tenant_id must be 1 to 256"):
                set_actor(conn, Actor.admin("t" * 257))
            with pytest.raises(InvalidPayload, match="NUL"):
                set_actor(conn, Actor.user("u\x00", tenant_id="A"))


async def test_set_actor_async_refuses_the_same_way(app_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(app_url, autocommit=True) as conn:
        with pytest.raises(ConfigurationError, match="needs a transaction"):
            await set_actor_async(conn, Actor.admin("A"))
        async with conn.transaction():
            with pytest.raises(ConfigurationError, match="system actor"):
                await set_actor_async(conn, Actor.system())


# --- the catalog audit ----------------------------------------------------------


def test_catalog_audit_grants_definer_functions_views_and_forced_rls(
    queue: Queue, app_url: str
) -> None:
    app_role = conninfo_to_dict(app_url)["user"]
    with psycopg.connect(queue.database_url) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        # Row-level security is on and forced on the job tables.
        rls = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname IN ('procrastinate_jobs', 'queueing_attempts') ORDER BY relname"
        ).fetchall()
        assert rls == [("procrastinate_jobs", True, True), ("queueing_attempts", True, True)]
        # No privilege for PUBLIC on any of the queue's tables, views or sequences, and
        # none for application roles except SELECT on the API view.
        relations = conn.execute(
            "SELECT c.oid, c.relname, c.relkind, c.relacl FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'S', 'p')"
            "   AND (c.relname LIKE 'procrastinate%%' OR c.relname LIKE 'queueing%%')",
            [schema[0]],
        ).fetchall()
        assert len(relations) >= 8
        for oid, name, kind, _acl in relations:
            public = conn.execute(
                "SELECT a.privilege_type FROM pg_class AS c,"
                " aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) AS a"
                " WHERE c.oid = %s AND a.grantee = 0",
                [oid],
            ).fetchall()
            assert public == [], (name, public)
            for role in (APP_ROLE, app_role):
                if kind == "S":
                    has = conn.execute(
                        "SELECT has_sequence_privilege(%s, %s, 'USAGE, SELECT, UPDATE')",
                        [role, oid],
                    ).fetchone()
                    assert has == (False,), (role, name)
                    continue
                for privilege in ALL_TABLE_PRIVILEGES.split(", "):
                    has = conn.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", [role, oid, privilege]
                    ).fetchone()
                    allowed = name == "queueing_api_jobs" and privilege == "SELECT"
                    assert has == (allowed,), (role, name, privilege)
        # Every SECURITY DEFINER function pins search_path and is not PUBLIC's to run.
        definers = conn.execute(
            "SELECT p.oid::regprocedure::text, p.proconfig,"
            "       EXISTS (SELECT FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner)))"
            "                AS a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')"
            "  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s AND p.prosecdef",
            [schema[0]],
        ).fetchall()
        assert sorted(d[0] for d in definers) == [
            "queueing_api_cancel_v1(bigint)",
            "queueing_api_jobs_v1(bigint)",
        ]
        for signature, config, public_may_run in definers:
            assert any(c.startswith("search_path=pg_catalog,") for c in config or []), signature
            assert not public_may_run, signature
        # Every view of the queue runs with its caller's rights.
        views = conn.execute(
            "SELECT c.relname, c.reloptions FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'v'"
            "   AND (c.relname LIKE 'procrastinate%%' OR c.relname LIKE 'queueing%%')",
            [schema[0]],
        ).fetchall()
        assert {v[0] for v in views} >= {"queueing_jobs", "queueing_api_jobs"}
        for name, options in views:
            assert "security_invoker=true" in (options or []), name
        # The API role is an ordinary role: no login, no bypass, no superuser.
        api_role = conn.execute(
            "SELECT rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s",
            [API_ROLE],
        ).fetchone()
        assert api_role == (False, False, False)


# --- a non-superuser owner --------------------------------------------------------


def test_a_non_superuser_owner_migrates_and_runs_the_queue_under_forced_rls() -> None:
    """FORCE ROW LEVEL SECURITY binds the tables' owner too: the owner's own policy is
    what lets the library and the workers see every job. (Superusers bypass RLS, so
    this is the only test that would notice that policy missing.)"""
    admin = databases.server_url()
    owner = unique_name("queueing_rls_owner")
    name = unique_name("queueing_rls_db")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(pgsql.Identifier(owner)))
        # queueing_api exists (the suite's template made it): from PostgreSQL 16 on only
        # a role with ADMIN on it may grant it, so an administrator does, once.
        conn.execute(
            pgsql.SQL("GRANT {} TO {}").format(pgsql.Identifier(API_ROLE), pgsql.Identifier(owner))
        )
        conn.execute(
            pgsql.SQL("CREATE DATABASE {} OWNER {}").format(
                pgsql.Identifier(name), pgsql.Identifier(owner)
            )
        )
    try:
        url = _as_user(databases.with_database(admin, name), owner)
        queue = Queue(url)
        try:

            @queue.task
            def add(a: int, b: int) -> int:
                return a + b

            assert queue.migrate()
            jobs = [queue.enqueue(add, {"a": i, "b": 1}, tenant_id="A") for i in range(5)]
            assert drain(queue).claimed == 5
            assert [queue.get_job(j.id).result for j in jobs] == [1, 2, 3, 4, 5]
            assert len(queue.list_jobs()) == 5
        finally:
            queue.close()
    finally:
        databases.drop_database(admin, name)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(owner)))
