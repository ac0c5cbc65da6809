"""PostgreSQL: events become visible in id order (a lock), without deadlocks."""

from __future__ import annotations

import threading
import time

from sqlalchemy import update
from sqlmodel import Session, SQLModel, col, create_engine, select

from caseforum import models  # noqa: F401  (every table)
from caseforum.events import emit
from caseforum.models import Event, Office


def test_a_row_update_and_the_event_lock_taken_in_either_order_never_deadlock(
        postgres_url: str) -> None:
    """A transaction that updated a row and emitted an event, and another that
    changes the same row through the ORM and emits too: the second waits for the
    row, never holds the event lock while it does, and both commit."""
    engine = create_engine(postgres_url)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as setup:
        setup.add(Office(code="JP", name="Japan Patent Office"))
        setup.commit()
    first = Session(engine)
    first.exec(update(Office).where(col(Office.code) == "JP").values(name="JPO (first)"))
    emit(first, kind="test.first")  # the post: counters updated, event not yet written
    failures: list[BaseException] = []

    def moderator() -> None:
        try:
            with Session(engine) as second:
                office = second.get(Office, "JP")
                assert office is not None
                office.name = "JPO (second)"
                second.add(office)
                emit(second, kind="test.second")
                second.commit()  # waits for the first's row lock
        except BaseException as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)

    other = threading.Thread(target=moderator)
    other.start()
    time.sleep(1.5)  # the second is waiting for the row (PostgreSQL checks deadlocks at 1 s)
    first.commit()
    first.close()
    other.join(30)
    assert not failures, failures
    with Session(engine) as check:
        kinds = list(check.exec(select(Event.kind).order_by(col(Event.id))))
        assert kinds == ["test.first", "test.second"]
        assert check.get(Office, "JP").name == "JPO (second)"  # type: ignore[union-attr]
    engine.dispose()
