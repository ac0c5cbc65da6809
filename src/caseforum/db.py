"""Database engine and the per-request session dependency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from caseforum.config import Settings


def make_engine(settings: Settings) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and foreign keys."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @sa_event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def open_session(engine: Engine, broker: Any = None) -> Session:
    """A session whose commits wake the event consumers through ``broker``."""
    return Session(engine, expire_on_commit=False, info={"broker": broker})


def get_session(request: Request) -> Iterator[Session]:
    state = request.app.state
    with open_session(state.engine, state.broker) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
