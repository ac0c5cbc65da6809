"""Counting the SQL statements a request sends: the tests that hold pages, lists and
the API to a fixed number of queries whatever the data's size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def counted(engine: Any) -> Iterator[list[str]]:
    """The SQL statements sent through ``engine`` inside the block."""
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)
