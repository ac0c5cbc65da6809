"""Counting the SQL statements a request sends: the tests that hold pages, lists and
the API to a fixed number of queries whatever the data's size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


def _hub_poll(statement: str) -> bool:
    """The live hub reading the event log: it wakes on its own every two seconds, so
    now and then one of its reads lands inside a measured request."""
    flat = " ".join(statement.split())
    return "FROM event WHERE event.id >" in flat


@contextmanager
def counted(engine: Any) -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` inside the block."""
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not _hub_poll(statement):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)
