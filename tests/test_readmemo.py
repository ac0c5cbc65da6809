"""Read-only sessions answer a repeated question once (caseforum.readmemo): the live
hub's renders of one post for several viewers share what they read."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from caseforum.db import open_session
from caseforum.models import DocumentOffice, Office
from caseforum.readmemo import memoized_reads
from tests.sql_helpers import counted


def test_a_repeated_read_is_asked_once_and_gives_the_same_rows(engine: Any) -> None:
    with open_session(engine) as session, memoized_reads(session) as memo:
        with counted(engine) as statements:
            first = list(session.exec(select(Office).where(Office.code.in_(["JP", "KR"]))))
            again = list(session.exec(select(Office).where(Office.code.in_(["JP", "KR"]))))
            other = list(session.exec(select(Office).where(Office.code.in_(["CN"]))))
        assert len(statements) == 2 and memo.hits == 1
        assert [o.code for o in again] == [o.code for o in first] == ["JP", "KR"]
        assert [o.code for o in other] == ["CN"]


def test_an_entity_and_its_columns_are_not_confused(engine: Any) -> None:
    """Both compile to the same SQL; the rows have different shapes."""
    with open_session(engine) as session, memoized_reads(session):
        entities = list(session.exec(select(DocumentOffice)))
        columns = list(session.exec(select(DocumentOffice.document_id,
                                           DocumentOffice.office_code)))
    assert entities and all(isinstance(e, DocumentOffice) for e in entities)
    assert [tuple(c) for c in columns] == [(e.document_id, e.office_code) for e in entities]


def test_outside_the_block_every_read_goes_to_the_database(engine: Any) -> None:
    with open_session(engine) as session:
        with memoized_reads(session):
            session.exec(select(Office)).all()
        with counted(engine) as statements:
            session.exec(select(Office)).all()
            session.exec(select(Office)).all()
        assert len(statements) == 2
