"""The HTTP API: request an export, list my jobs, stream one job's progress.

- ``POST /exports`` writes the export row and enqueues its job in ONE SQLAlchemy
  transaction (``connection=session``): both exist, or neither. A dedupe key makes a
  double click return the export and job already queued (200) instead of a second (201).
- ``GET /jobs`` lists the current user's jobs through the queue's row-level-security API
  (``queueing_api_jobs``), read as a role that can see nothing else.
- ``GET /jobs/{id}/events`` streams the job's progress as server-sent events until it
  ends, woken by the queue's notifications (no polling).

Two database roles, one database: the app's own role writes (its tables and the queue's),
and a reader role, member of ``queueing_app`` only, reads jobs for end users
(docs/row_level_security.md). Run it::

    export QUEUEING_DATABASE_URL=postgresql://app@localhost/app
    export READER_DATABASE_URL=postgresql://app_reader@localhost/app
    queueing db migrate && queueing worker --app exports.jobs:queue &
    uvicorn --factory exports.app:create_app
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from exports.db import Base, Export, api_jobs
from exports.jobs import build_export, queue
from queueing import TERMINAL_STATUSES, Actor, ConfigurationError, Job, QueueingError
from queueing.integrations.sqlalchemy import engine_url
from queueing.rls import set_actor_async

KEEPALIVE_SECONDS = 15.0
"""A comment line this often on a quiet stream, so proxies do not close it."""

router = APIRouter()


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str


def current_user(
    x_user: Annotated[str | None, Header()] = None,
    x_tenant: Annotated[str | None, Header()] = None,
) -> User:
    """Stand-in for your authentication: take the user from a verified session or JWT,
    never from headers a client can set."""
    if not x_user or not x_tenant:
        raise HTTPException(401, "X-User and X-Tenant headers are required")
    return User(x_user, x_tenant)


CurrentUser = Annotated[User, Depends(current_user)]


class ExportRequest(BaseModel):
    kind: Literal["invoices", "orders", "customers"]


class ExportOut(BaseModel):
    export_id: int
    job_id: int
    status: str
    created: bool


class JobOut(BaseModel):
    id: int
    task_name: str
    status: str
    progress: int
    progress_detail: Any
    result: Any


async def writer_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(request.app.state.writer, expire_on_commit=False) as session:
        yield session


@router.post("/exports", status_code=201)
async def request_export(
    body: ExportRequest,
    user: CurrentUser,
    response: Response,
    session: Annotated[AsyncSession, Depends(writer_session)],
) -> ExportOut:
    """Queue an export; a double click gets the export already queued."""
    async with session.begin():  # the export row and its job: one transaction
        job = await queue.aio.enqueue(
            build_export,
            {"kind": body.kind},
            tenant_id=user.tenant_id,
            user_id=user.id,
            dedupe_key=f"export:{user.id}:{body.kind}",  # per tenant, while pending or active
            connection=session,
        )
        if job.created:
            export = Export(
                tenant_id=user.tenant_id, user_id=user.id, kind=body.kind, job_id=job.id
            )
            session.add(export)
            await session.flush()
        else:
            export = (await session.scalars(select(Export).where(Export.job_id == job.id))).one()
            response.status_code = 200
    return ExportOut(export_id=export.id, job_id=job.id, status=job.status, created=job.created)


@asynccontextmanager
async def acting_for(request: Request, user: User) -> AsyncIterator[AsyncSession]:
    """A transaction as the reader role, acting for ``user``: the queue's API shows it
    that user's jobs only (the actor ends with the transaction)."""
    async with AsyncSession(request.app.state.reader) as session, session.begin():
        await set_actor_async(session, Actor.user(user.id, tenant_id=user.tenant_id))
        yield session


@router.get("/jobs")
async def my_jobs(request: Request, user: CurrentUser) -> list[JobOut]:
    """The current user's jobs, newest first (at most 50)."""
    async with acting_for(request, user) as session:
        query = select(api_jobs).order_by(api_jobs.c.id.desc()).limit(50)
        rows = (await session.execute(query)).mappings().all()
    return [JobOut.model_validate(dict(row)) for row in rows]


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: int, request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-sent events: the job's status and progress now, then at each change, until
    it ends. 404 for a job the user may not see (another's, another tenant's)."""
    async with acting_for(request, user) as session:  # closed before the stream starts
        visible = (
            await session.execute(select(api_jobs.c.id).where(api_jobs.c.id == job_id))
        ).first()
    if visible is None:
        raise HTTPException(404, f"job {job_id} not found")
    return StreamingResponse(
        progress_events(job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def progress_events(job_id: int) -> AsyncIterator[str]:
    job = await queue.aio.get_job(job_id)
    sent = _event(job)
    yield sent
    while job.status not in TERMINAL_STATUSES:
        job = await queue.aio.wait_for_change(job, timeout=KEEPALIVE_SECONDS)
        event = _event(job)
        yield event if event != sent else ": keep-alive\n\n"
        sent = event


def _event(job: Job) -> str:
    data = {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "detail": job.progress_detail,
    }
    return f"event: progress\ndata: {json.dumps(data)}\n\n"


async def queueing_error(request: Request, exc: Exception) -> JSONResponse:
    """Every error the queue raises on purpose carries the HTTP status to answer with."""
    status = exc.http_status if isinstance(exc, QueueingError) else 500
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status)


def create_app(*, reader_url: str | None = None) -> FastAPI:
    """The app, on the queue's database (``QUEUEING_DATABASE_URL``: the export rows and
    the jobs must share a transaction, so they share a database) and reading jobs as
    ``reader_url`` (default ``READER_DATABASE_URL``), a role in ``queueing_app``."""
    writer = create_async_engine(engine_url(queue.database_url, asynchronous=True))
    reader_url = reader_url or os.environ.get("READER_DATABASE_URL")
    if not reader_url:
        raise ConfigurationError("set READER_DATABASE_URL: a role in queueing_app, to read jobs")
    reader = create_async_engine(engine_url(reader_url, asynchronous=True))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with writer.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)  # in production: migrations (Alembic)
        yield
        await queue.aio.close()
        await writer.dispose()
        await reader.dispose()

    app = FastAPI(title="exports", lifespan=lifespan)
    app.state.writer, app.state.reader = writer, reader
    app.include_router(router)
    app.add_exception_handler(QueueingError, queueing_error)
    return app
