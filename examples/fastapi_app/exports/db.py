"""The service's own table, and the queue's row-level-security view as SQLAlchemy sees them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Export(Base):
    """One export a user asked for; ``job_id`` is the queue's job that builds it."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(256))
    user_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# The queue's read API for end users (migration 0005): a view that shows the current
# actor's jobs only. Its own MetaData: the queue's migrations create it, not create_all().
api_jobs = Table(
    "queueing_api_jobs",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("task_name", String),
    Column("status", String),
    Column("progress", Integer),
    Column("progress_detail", JSONB),
    Column("result", JSONB),
    Column("created_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)
