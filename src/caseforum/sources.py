"""Dossier sources: the one contract every source answers, and the guard around it.

A source is where dossiers come from: the hosted repository (what offices upload
here), a One Portal Dossier link, another CaseForum instance serving an office's
dossiers live.  Plugins return sources from ``register_dossier_sources``; the host
checks each object when the plugins load (:func:`contract_problem`), and calls it
only through a :class:`GuardedSource`, so a source that raises, hangs, answers the
wrong shape or keeps failing is marked unhealthy and skipped while the others still
answer.  The host, not the source, stores what a source returns and applies
visibility (``caseforum.dossiers.remote``): a source only speaks plain data.

Nothing here knows HTTP or the database.
"""

from __future__ import annotations

import inspect
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from caseforum import errors
from caseforum.models.base import utcnow

T = TypeVar("T")

#: matched_as values of a :class:`NumberMatch`
MATCH_KINDS = ("application", "publication", "pct")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class NumberMatch:
    """A dossier a source knows under the number it was asked about.

    ``ref`` is the source's own handle for the dossier; the host passes it back to
    ``fetch_dossier`` unchanged (and keeps it to refresh the dossier later)."""

    office: str
    application_number: str
    display_number: str
    matched_as: str
    ref: str


@dataclass(frozen=True)
class SourcePublication:
    number: str  # as the office prints it, without office code or kind: 20190095759
    kind: str  # the kind code as given: A1, B2, T ...
    date: date | None = None


@dataclass(frozen=True)
class SourcePriority:
    office: str
    number: str
    kind: str = ""  # A (application), P (provisional), W (PCT) ...


@dataclass(frozen=True)
class SourceDocument:
    """One document as the source lists it; its bytes come from ``stream_document(ref)``."""

    ref: str
    code: str  # the office's own code, exactly as given: CTNF, LET., A131-JP
    label: str  # the office's own description
    date: date
    language: str = "en"
    is_translation: bool = False
    media_type: str = "application/pdf"
    pages: int | None = None
    shareable: bool | None = None
    visibility: str = "public"  # public | offices | restricted (applied by the host)
    offices: tuple[str, ...] = ()  # the named offices of a restricted document
    original_ref: str | None = None  # a translation: the ref of its original-language twin


@dataclass(frozen=True)
class SourceApplication:
    """One family member.  ``documents`` is ``None`` when the source could not list
    them (an empty tuple means it has none)."""

    office: str
    number: str
    display_number: str
    filing_date: date | None
    kind_code: str = ""
    title: str = ""
    applicants: tuple[str, ...] = ()
    publications: tuple[SourcePublication, ...] = ()
    priorities: tuple[SourcePriority, ...] = ()
    pct_number: str | None = None
    documents: tuple[SourceDocument, ...] | None = None


@dataclass(frozen=True)
class SourceDossier:
    """What ``fetch_dossier`` answers: the family, the dossier asked for among it."""

    ref: str
    office: str
    number: str
    members: tuple[SourceApplication, ...]

    @property
    def asked(self) -> SourceApplication | None:
        return next((m for m in self.members
                     if m.office == self.office and m.number == self.number), None)


@dataclass(frozen=True)
class Changes:
    """What ``changes_since`` answers: dossier refs changed since the cursor, and the
    cursor to pass next time."""

    refs: tuple[str, ...]
    cursor: str


@runtime_checkable
class DossierSource(Protocol):
    """The contract of a dossier source (see ``docs/plugin_hooks.md``).

    Optionally a source also has ``changes_since(cursor) -> Changes`` (the refs of
    dossiers changed since ``cursor``, ``None`` the first time), ``label`` (a name
    for people; default ``name``), ``ttl_seconds`` (how long its dossiers stay fresh
    here; default one hour) and ``timeout_seconds`` (the most one call may take;
    default 30)."""

    name: str

    def lookup(self, number: str, *, office: str | None = None) -> Sequence[NumberMatch]:
        """Dossiers known under ``number`` (any form a person types); ``office``
        narrows to one office.  An empty list when the number is unknown."""
        ...

    def fetch_dossier(self, ref: str) -> SourceDossier | None:
        """The dossier ``ref`` names (from a :class:`NumberMatch`), with its family and
        documents; ``None`` when the source no longer knows it."""
        ...

    def stream_document(self, ref: str) -> Iterable[bytes]:
        """The bytes of one document (``SourceDocument.ref``), in chunks."""
        ...


class SourceUnavailable(errors.Unavailable):
    """A source could not answer (down, too slow, broken answer, circuit open)."""


class SourceContractError(TypeError):
    """A source answered something the contract does not allow."""


def _accepts(func: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): trust it
        return True
    return True


CONTRACT: tuple[tuple[str, tuple[Any, ...], dict[str, Any], str], ...] = (
    ("lookup", ("16/123,456",), {"office": None}, "lookup(number, *, office=None)"),
    ("fetch_dossier", ("ref",), {}, "fetch_dossier(ref)"),
    ("stream_document", ("ref",), {}, "stream_document(ref)"),
)


def contract_problem(source: Any) -> str:
    """What is wrong with ``source`` as a :class:`DossierSource`, or ``""``."""
    name = getattr(source, "name", None)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        return (f"name {name!r}: give the source a name of lower-case letters, digits "
                "and '_' (at most 40)")
    for method, args, kwargs, expected in CONTRACT:
        func = getattr(source, method, None)
        if not callable(func):
            return f"{name}: has no {expected} method"
        if not _accepts(func, *args, **kwargs):
            return f"{name}: {method}{inspect.signature(func)} cannot be called as {expected}"
    changes = getattr(source, "changes_since", None)
    if changes is not None and (not callable(changes) or not _accepts(changes, None)):
        return f"{name}: changes_since must be callable as changes_since(cursor)"
    return ""


# Health and the guard ---------------------------------------------------------------


@dataclass
class SourceHealth:
    """What the admin page shows about one source (kept for the process's life)."""

    name: str
    plugin: str
    label: str
    problem: str = ""  # the contract check failed: the source is never called
    last_success: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    failures: int = 0  # in a row; reset by a success
    open_until: float = 0.0  # monotonic time until which the circuit stays open
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    calls: int = 0

    @property
    def median_ms(self) -> float | None:
        return round(statistics.median(self.latencies) * 1000, 1) if self.latencies else None

    @property
    def circuit_open(self) -> bool:
        return self.open_until > time.monotonic()

    @property
    def state(self) -> str:
        if self.problem:
            return "wrong contract"
        if self.circuit_open:
            return "circuit open"
        if self.failures:
            return "failing"
        return "ok"

    @property
    def healthy(self) -> bool:
        return self.state == "ok"


# one pool for every guarded call: a call that times out keeps its worker until the
# source's own time-outs end it, so the pool is larger than the few calls at a time
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dossier-source")


class GuardedSource:
    """A source and its health: every call has a deadline, exceptions and wrong
    answers are caught and recorded, and after ``threshold`` failures in a row the
    circuit opens for ``cooldown`` seconds (calls fail at once), then lets one call
    through to try again."""

    def __init__(self, source: Any, health: SourceHealth, *, threshold: int = 3,
                 cooldown: float = 30.0) -> None:
        self.source = source
        self.health = health
        self.threshold = threshold
        self.cooldown = cooldown
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.health.name

    @property
    def label(self) -> str:
        return self.health.label

    @property
    def timeout(self) -> float:
        value = getattr(self.source, "timeout_seconds", None)
        return float(value) if isinstance(value, int | float) and value > 0 else 30.0

    @property
    def ttl_seconds(self) -> float:
        value = getattr(self.source, "ttl_seconds", None)
        return float(value) if isinstance(value, int | float) and value >= 0 else 3600.0

    def run(self, what: str, call: Callable[[], T], check: Callable[[T], bool]) -> T:
        """``call()`` under the guard; ``check`` says whether its answer has the shape
        the contract promises.  Raises :class:`SourceUnavailable` on any failure."""
        health = self.health
        if health.problem:
            raise SourceUnavailable(f"{health.label} is not usable: {health.problem}")
        if health.circuit_open:
            wait = int(health.open_until - time.monotonic()) + 1
            raise SourceUnavailable(f"{health.label} is unavailable after {health.failures} "
                                    f"failed calls; it is tried again in {wait} s")
        start = time.monotonic()
        future = _POOL.submit(call)
        try:
            value = future.result(timeout=self.timeout)
            if not check(value):
                raise SourceContractError(f"{what} answered {type(value).__name__}, "
                                          "which the source contract does not allow")
        except FutureTimeout:
            future.cancel()
            self._failed(f"{what}: no answer within {self.timeout:g} s")
            raise SourceUnavailable(f"{health.label} did not answer in time") from None
        except errors.CaseForumError as exc:
            if exc.status >= 500:
                self._failed(f"{what}: {exc.message}"[:500])
                raise SourceUnavailable(f"{health.label}: {exc.message}"[:300]) from None
            self._succeeded(time.monotonic() - start)  # an answer: not a number it knows
            raise
        except Exception as exc:  # any failure of a plugin's code is the source's
            self._failed(f"{what}: {type(exc).__name__}: {exc}"[:500])
            raise SourceUnavailable(f"{health.label} failed: {exc}"[:300]) from None
        self._succeeded(time.monotonic() - start)
        return value

    def _succeeded(self, seconds: float) -> None:
        with self._lock:
            health = self.health
            health.calls += 1
            health.latencies.append(seconds)
            health.last_success = utcnow()
            health.failures = 0
            health.open_until = 0.0

    def _failed(self, message: str) -> None:
        with self._lock:
            health = self.health
            health.calls += 1
            health.failures += 1
            health.last_error = message
            health.last_error_at = utcnow()
            if health.failures >= self.threshold:
                health.open_until = time.monotonic() + self.cooldown

    # The contract's calls, each with the check of its answer ------------------------

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        return list(self.run(
            "lookup", lambda: self.source.lookup(number, office=office),
            lambda v: isinstance(v, list | tuple)
            and all(isinstance(m, NumberMatch) for m in v)))

    def fetch_dossier(self, ref: str) -> SourceDossier | None:
        return self.run("fetch_dossier", lambda: self.source.fetch_dossier(ref),
                        lambda v: v is None or isinstance(v, SourceDossier))

    def read_document(self, ref: str, sink: Callable[[Iterable[bytes]], T]) -> T:
        """Hand the document's chunks to ``sink`` (say, a writer into the file store)
        inside the guard, so a source that stalls half-way is cut off as well."""

        def chunks() -> Iterable[bytes]:
            for chunk in self.source.stream_document(ref):
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise SourceContractError(
                        f"stream_document yielded {type(chunk).__name__}, not bytes")
                yield bytes(chunk)

        return self.run("stream_document", lambda: sink(chunks()), lambda v: True)

    def changes_since(self, cursor: str | None) -> Changes | None:
        if not callable(getattr(self.source, "changes_since", None)):
            return None
        return self.run("changes_since", lambda: self.source.changes_since(cursor),
                        lambda v: isinstance(v, Changes))
