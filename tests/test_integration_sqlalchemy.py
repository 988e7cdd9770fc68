"""Enqueue inside SQLAlchemy transactions (queueing/integrations/sqlalchemy.py), sync and
async: the job is written on the session's own psycopg connection, so it commits, rolls
back and disappears with a savepoint exactly as the business rows do.

Every check of what committed reads through a connection of its own, as any other
observer (a worker) would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)

from queueing import Actor, Job, JobStatus, Queue, UnusableConnection, drivers, ops
from queueing.integrations.sqlalchemy import engine_url
from queueing.ops import NewJob, Op, Transaction
from queueing.rls import set_actor, set_actor_async
from queueing.testing import QueueWorker


class Base(DeclarativeBase):
    pass


class Order(Base):
    """The business row the job must live and die with."""

    __tablename__ = "integration_sa_orders"
    id: Mapped[int] = mapped_column(primary_key=True)


class Boom(Exception):
    """Raised inside a transaction block by the tests."""


def engine_for(queue: Queue, **options: Any) -> Engine:
    return create_engine(engine_url(queue.database_url), **options)


def committed(queue: Queue) -> tuple[list[int], list[str]]:
    """Order ids and job task names visible from outside (a connection of its own)."""
    with psycopg.connect(queue.database_url) as conn:
        orders = [r[0] for r in conn.execute(f"SELECT id FROM {Order.__tablename__} ORDER BY id")]
    return orders, sorted(job.task_name for job in queue.list_jobs())


@pytest.fixture
def engine(queue: Queue) -> Iterator[Engine]:
    engine = engine_for(queue)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.delete(Order))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
async def async_engine(engine: Engine, queue: Queue) -> AsyncIterator[AsyncEngine]:
    async_engine = create_async_engine(engine_url(queue.database_url, asynchronous=True))
    try:
        yield async_engine
    finally:
        await async_engine.dispose()


# --- sync Session -------------------------------------------------------------------------


def test_commit_writes_the_job_and_the_order_together(queue: Queue, engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(Order(id=1))
        job = queue.enqueue("ship", {"order": 1}, connection=session)
        # Same transaction: visible inside, invisible outside until the commit.
        assert queue.get_job(job.id, connection=session).status is JobStatus.PENDING
        assert committed(queue) == ([], [])
    assert committed(queue) == ([1], ["ship"])
    assert queue.get_job(job.id).args == {"order": 1}


def test_rollback_takes_the_job_with_it(queue: Queue, engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Order(id=1))
        queue.enqueue("ship", {"order": 1}, connection=session)
        session.flush()
        session.rollback()
    assert committed(queue) == ([], [])


def test_an_exception_in_the_block_leaves_neither(queue: Queue, engine: Engine) -> None:
    def place_order() -> None:
        with Session(engine) as session, session.begin():
            session.add(Order(id=1))
            queue.enqueue("ship", {"order": 1}, connection=session)
            raise Boom

    with pytest.raises(Boom):
        place_order()
    assert committed(queue) == ([], [])


def test_a_job_in_a_rolled_back_savepoint_disappears_with_it(queue: Queue, engine: Engine) -> None:
    def add_in_savepoint(session: Session) -> None:
        with session.begin_nested():
            session.add(Order(id=2))
            queue.enqueue("dropped", connection=session)
            raise Boom

    with Session(engine) as session, session.begin():
        session.add(Order(id=1))
        queue.enqueue("kept", connection=session)
        with pytest.raises(Boom):
            add_in_savepoint(session)
        nested = session.begin_nested()
        queue.enqueue("dropped_too", connection=session)
        nested.rollback()
        with session.begin_nested():
            queue.enqueue("released", connection=session)
    assert committed(queue) == ([1], ["kept", "released"])


def test_a_savepoint_begun_before_any_statement_still_holds_the_job(
    queue: Queue, engine: Engine
) -> None:
    """begin_nested() emits its SAVEPOINT only once the session takes a connection: the
    enqueue must take it through the session, so the savepoint comes first."""
    with Session(engine) as session, session.begin():
        nested = session.begin_nested()
        queue.enqueue("dropped", connection=session)
        nested.rollback()
        queue.enqueue("kept", connection=session)
    assert committed(queue) == ([], ["kept"])


def test_commit_as_you_go_session_and_scoped_session(queue: Queue, engine: Engine) -> None:
    with Session(engine) as session:
        queue.enqueue("first_statement", connection=session)  # nothing begun before it
        session.commit()
    scoped = scoped_session(sessionmaker(engine))
    queue.enqueue("scoped", connection=scoped)
    scoped.commit()
    scoped.remove()
    assert committed(queue) == ([], ["first_statement", "scoped"])


def test_a_dedupe_key_returns_the_same_job_within_the_transaction(
    queue: Queue, engine: Engine
) -> None:
    with Session(engine) as session, session.begin():
        first = queue.enqueue("report", dedupe_key="r-1", connection=session)
        again = queue.enqueue("report", dedupe_key="r-1", connection=session)
    assert (again.id, first.created, again.created) == (first.id, True, False)
    assert len(queue.list_jobs()) == 1


def test_the_applications_json_decoder_does_not_change_the_record(queue: Queue) -> None:
    """The engine's json_deserializer is the application's, not the queue's."""
    engine = engine_for(queue, json_deserializer=lambda text: "not the queue's")
    try:
        with Session(engine) as session, session.begin():
            job = queue.enqueue("ship", {"order": 1}, connection=session)
            assert queue.get_job(job.id, connection=session).args == {"order": 1}
    finally:
        engine.dispose()
    assert job.args == {"order": 1}


# --- sync Connection ----------------------------------------------------------------------


def test_a_connection_commits_and_rolls_back_the_job(queue: Queue, engine: Engine) -> None:
    with engine.connect() as conn:
        queue.enqueue("first_statement", connection=conn)  # begins, as a statement would
        conn.execute(sqlalchemy.insert(Order).values(id=1))
        conn.commit()
        queue.enqueue("rolled_back", connection=conn)
        conn.rollback()
    with engine.begin() as conn:
        savepoint = conn.begin_nested()
        queue.enqueue("in_savepoint", connection=conn)
        savepoint.rollback()
    assert committed(queue) == ([1], ["first_statement"])


# --- a real worker ------------------------------------------------------------------------


def test_a_worker_runs_the_committed_job(
    queue: Queue, engine: Engine, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="ship")
    def ship(order: int) -> str:
        with Session(engine) as session:
            found = session.scalars(select(Order.id).where(Order.id == order)).one()
        return f"shipped {found}"

    with Session(engine) as session, session.begin():
        session.add(Order(id=7))
        job = queue.enqueue(ship, {"order": 7}, connection=session)
    with Session(engine) as session:
        queue.enqueue(ship, {"order": 8}, connection=session)
        session.rollback()
    assert queueing_worker.drain().outcomes == {job.id: "completed"}
    assert queue.get_job(job.id).result == "shipped 7"


# --- row-level security through the session -----------------------------------------------


def test_set_actor_takes_a_session(queue: Queue, engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        set_actor(session, Actor.user("ada", tenant_id="acme"))
        actor = session.execute(sqlalchemy.text("SELECT current_setting('queueing.user_id')"))
        assert actor.scalar_one() == "ada"


# --- what it refuses ----------------------------------------------------------------------


def _refused(queue: Queue, connection: object, match: str) -> None:
    with pytest.raises(UnusableConnection, match=match):
        queue.enqueue("never", connection=connection)  # type: ignore[arg-type]


def test_another_database_or_driver_is_refused_and_nothing_is_written(
    queue: Queue, engine: Engine
) -> None:
    sqlite = create_engine("sqlite://")
    psycopg2 = create_engine(engine_url(queue.database_url).set(drivername="postgresql+psycopg2"))
    try:
        with Session(sqlite) as session:
            _refused(queue, session, r"on sqlite\+pysqlite: .*psycopg 3 only")
        with Session(psycopg2) as session, session.begin():
            session.add(Order(id=1))
            _refused(queue, session, r"on postgresql\+psycopg2: .*postgresql\+psycopg://")
            session.rollback()
        with psycopg2.connect() as conn:
            _refused(queue, conn, r"on postgresql\+psycopg2")
    finally:
        sqlite.dispose()
        psycopg2.dispose()
    assert committed(queue) == ([], [])


def test_closed_or_broken_sessions_and_odd_objects_are_refused(
    queue: Queue, engine: Engine
) -> None:
    conn = engine.connect()
    conn.close()
    _refused(queue, conn, "cannot join .*Connection: This Connection is closed")
    closed = Session(engine, close_resets_only=False)
    closed.close()
    _refused(queue, closed, "cannot join .*Session: .*permanently closed")
    with Session(engine) as broken:
        broken.add(Order(id=1))
        broken.add(Order(id=1))  # a duplicate key: the flush fails
        with pytest.raises(sqlalchemy.exc.SQLAlchemyError):
            broken.flush()
        _refused(queue, broken, "cannot join .*Session: .*rolled back")
    _refused(queue, object(), "connection= takes a psycopg Connection, a SQLAlchemy")
    _refused(queue, engine, "Engine .*an engine has no transaction: pass the Session")
    _refused(queue, AsyncSession(), "AsyncSession is async: use queue.aio")
    assert committed(queue) == ([], [])


# --- async --------------------------------------------------------------------------------


async def test_async_session_commit_rollback_exception_and_savepoint(
    queue: Queue, async_engine: AsyncEngine
) -> None:
    aio = queue.aio
    try:
        async with AsyncSession(async_engine) as session, session.begin():
            session.add(Order(id=1))
            job = await aio.enqueue("kept", {"order": 1}, connection=session)
            assert committed(queue) == ([], [])  # not yet: the session's transaction
            nested = await session.begin_nested()
            await aio.enqueue("in_savepoint", connection=session)
            await nested.rollback()
            await set_actor_async(session, Actor.admin("acme"))
            setting = await session.execute(sqlalchemy.text("SHOW queueing.actor"))
            assert setting.scalar_one() == "admin"
        async with AsyncSession(async_engine) as session:
            session.add(Order(id=2))
            await aio.enqueue("rolled_back", connection=session)
            await session.rollback()

        async def place_order() -> None:
            async with AsyncSession(async_engine) as session, session.begin():
                session.add(Order(id=3))
                await aio.enqueue("raised", connection=session)
                raise Boom

        with pytest.raises(Boom):
            await place_order()
        assert committed(queue) == ([1], ["kept"])
        assert (await aio.get_job(job.id)).args == {"order": 1}
    finally:
        await aio.close()


async def test_async_connection_joins_and_a_worker_runs_the_job(
    queue: Queue, async_engine: AsyncEngine, queueing_worker: QueueWorker
) -> None:
    @queue.task(name="ship")
    async def ship(order: int) -> int:
        return order

    aio = queue.aio
    try:
        async with async_engine.connect() as conn:
            job = await aio.enqueue(ship, {"order": 1}, connection=conn)
            await conn.execute(sqlalchemy.insert(Order).values(id=1))
            await conn.commit()
            await aio.enqueue(ship, {"order": 2}, connection=conn)
            await conn.rollback()
        assert (await queueing_worker.drain_async()).outcomes == {job.id: "completed"}
        assert (await aio.get_job(job.id)).result == 1
    finally:
        await aio.close()
    assert committed(queue) == ([1], ["ship"])


async def test_async_refusals_write_nothing(
    queue: Queue, engine: Engine, async_engine: AsyncEngine
) -> None:
    asyncpg = create_async_engine("postgresql+asyncpg://localhost/never_connected")
    aio = queue.aio
    try:
        async with AsyncSession(asyncpg) as session:
            with pytest.raises(UnusableConnection, match=r"on postgresql\+asyncpg: .*psycopg 3"):
                await aio.enqueue("never", connection=session)
        with pytest.raises(UnusableConnection, match=r"on postgresql\+asyncpg"):
            await aio.enqueue("never", connection=asyncpg.connect())  # refused before it starts
        with Session(engine) as session, pytest.raises(UnusableConnection, match="sync Queue"):
            await aio.enqueue("never", connection=session)  # type: ignore[arg-type]
        closed = AsyncSession(async_engine, close_resets_only=False)
        await closed.close()
        with pytest.raises(UnusableConnection, match=r"cannot join .*AsyncSession: .*closed"):
            await aio.enqueue("never", connection=closed)
    finally:
        await asyncpg.dispose()
        await aio.close()
    assert committed(queue) == ([], [])


# --- our own transaction blocks on a lent connection -----------------------------------


def _enqueue_in_a_transaction_effect(job: NewJob) -> Op[list[Job]]:
    """An operation that wraps its write in a Transaction effect (as retention's do)."""
    return (yield Transaction(ops.enqueue([job])))  # type: ignore[no-any-return]


def test_a_transaction_effect_never_commits_the_callers_transaction(
    queue: Queue, engine: Engine
) -> None:
    """psycopg's transaction() BEGINs and COMMITs on a connection with no transaction
    begun yet (a fresh session): on a lent connection the operation must join the
    session's transaction instead, and a savepoint once one is begun."""
    job = NewJob("rolled_back", "default", 0, {}, None, None, None, 1)
    with Session(engine) as session:
        raw = session.connection().connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        drivers.run_sync(_enqueue_in_a_transaction_effect(job), raw, lent=True)
        session.add(Order(id=1))
        session.flush()
        drivers.run_sync(_enqueue_in_a_transaction_effect(job), raw, lent=True)  # a savepoint
        session.rollback()
    assert committed(queue) == ([], [])


async def test_a_transaction_effect_never_commits_the_callers_async_transaction(
    queue: Queue, async_engine: AsyncEngine
) -> None:
    job = NewJob("rolled_back", "default", 0, {}, None, None, None, 1)
    async with AsyncSession(async_engine) as session:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        assert isinstance(raw, psycopg.AsyncConnection)
        await drivers.run_async(_enqueue_in_a_transaction_effect(job), raw, lent=True)
        await drivers.run_async(_enqueue_in_a_transaction_effect(job), raw, lent=True)
        await session.rollback()
    assert committed(queue) == ([], [])
