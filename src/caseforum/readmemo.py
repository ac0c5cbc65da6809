"""Identical reads answered once per session, for sessions that only read.

A live post is rendered once per distinct fragment, and each render asks the same
questions (the post's references, authors and reactions, the dossiers it mentions,
their families, documents and citations) with the same parameters; only what each
viewer may see of the answers differs, and that is decided in Python.  In a session
inside :func:`memoized_reads`, a SELECT that was run before with the same statement
and parameters returns the rows it returned then, without asking the database again.

This follows SQLAlchemy's own caching recipe (examples/dogpile_caching: a
``do_orm_execute`` listener keyed by the statement's cache key and its parameters,
holding a ``FrozenResult``), kept in the session itself, so it lives exactly as long
as one unit of read-only work.  Never use it in a session that writes: it would hide
the session's own changes from it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import FrozenResult
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession

_KEY = "caseforum.read_memo"


class _Memo:
    def __init__(self) -> None:
        self.results: dict[tuple[Any, str], FrozenResult[Any]] = {}
        self.hits = 0


@contextmanager
def memoized_reads(session: OrmSession) -> Iterator[_Memo]:
    """Within the block, ``session`` answers a repeated SELECT from memory."""
    memo = _Memo()
    session.info[_KEY] = memo
    try:
        yield memo
    finally:
        session.info.pop(_KEY, None)


@sa_event.listens_for(OrmSession, "do_orm_execute")
def _answer_from_memo(state: ORMExecuteState) -> Any:
    memo: _Memo | None = state.session.info.get(_KEY)
    if memo is None or not state.is_select:
        return None
    cache_key = state.statement._generate_cache_key()
    if cache_key is None:  # a statement SQLAlchemy cannot key: always ask
        return None
    # the statement's structure (an entity and its two columns compile to the same
    # SQL but give differently shaped rows) and every parameter's value
    given = state.parameters or {}
    values = tuple(given.get(b.key, b.effective_value) for b in cache_key.bindparams)
    key = (cache_key.key, repr(values))
    frozen = memo.results.get(key)
    if frozen is None:
        frozen = memo.results[key] = state.invoke_statement().freeze()
    else:
        memo.hits += 1
    return frozen()
