"""Prometheus figures for ``/metrics``: requests as they happen, the rest at scrape time.

Two kinds of figure, two costs.  Requests are counted and timed by a small ASGI
middleware that only bumps in-memory counters (no database, no formatting); its
label is the matched route's path pattern (``/threads/{thread_id}``), never the raw
path, so a crawler walking a million URLs adds no series.  Everything else (open
websockets, consumer lag, failed deliveries, dossier sources, the ICE outbox) is read
when Prometheus asks, the database figures in one short session, so serving pages
pays nothing for them.

One registry per app (not prometheus_client's global one): tests build many apps in
one process, and each host's figures are its own anyway.  The registry, and
``prometheus_client`` itself, are made at the first scrape: the middleware keeps plain
counts, so that importing the library (a tenth of a second) is not part of every
start-up of ``caseforum serve``.

Under ``caseforum serve --workers N`` each worker also writes its figures to a file of
its own and the worker that answers the scrape adds up the host's (``worker_metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseforum.db import open_session
from caseforum.i18n import N_
from caseforum.models import ConsumerCursor, Delivery, Event
from caseforum.web.proxy import parse_networks
from caseforum.web.worker_metrics import (
    SNAPSHOT_SECONDS,
    SOURCE_STATES,
    Figures,
    WorkerFile,
    folder_from_environment,
    host_figures,
    source_state_index,
)

log = logging.getLogger(__name__)

#: a request's seconds: page renders are tens of milliseconds, uploads may take minutes
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: the route label of requests no route matched (unknown paths) or a mount served
NO_ROUTE = "<none>"


class AppMetrics:
    """This app's request counts (plain numbers, bumped on the event loop) and, made at
    the first scrape, its registry with the scrape-time collectors.  With several
    workers (``worker_metrics.py``) also this worker's file, and what it reports is
    the host's."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.allow = parse_networks(state.settings.metrics_allow)
        self._registry: Any = None
        #: answers by (method, route, status)
        self.counts: dict[tuple[str, str, str], int] = {}
        #: by (method, route): answers per bucket (the last for slower ones), and seconds
        self.times: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        folder = folder_from_environment()
        self.shared = WorkerFile(folder, len(BUCKETS) + 1) if folder is not None else None
        self._snapshots: asyncio.Task[None] | None = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry(auto_describe=True)
            registry.register(HostCollector(self))
            registry.register(StateCollector(self.state))
            self._registry = registry
        return self._registry

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (method, route, str(status))
        count = self.counts[key] = self.counts.get(key, 0) + 1
        timing = self.times.get((method, route))
        if timing is None:
            timing = self.times[(method, route)] = ([0] * (len(BUCKETS) + 1), [0.0])
        slot = bisect_left(BUCKETS, seconds)
        timing[0][slot] += 1
        timing[1][0] += seconds
        if self.shared is not None:
            self.shared.request(method, route, key[2], count, slot, timing[0][slot],
                                timing[1][0])

    def start(self) -> None:
        """With several workers: count the object store's requests into the file as
        they go, and write this worker's gauges every SNAPSHOT_SECONDS (on the loop)."""
        if self.shared is None:
            return
        store: Any = getattr(self.state, "store", None)
        if hasattr(store, "report_counts"):
            shared, backend = self.shared, store.name

            def counted(operation: str, outcome: str, count: int) -> None:
                shared.storage(backend, operation, outcome, count)

            store.report_counts(counted)
        self._snapshots = asyncio.get_running_loop().create_task(self._snapshot_loop())

    async def stop(self) -> None:
        if self._snapshots is not None:
            self._snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshots

    async def _snapshot_loop(self) -> None:
        assert self.shared is not None
        while True:
            try:
                self.shared.snapshot(self.own_state())
            except Exception:  # e.g. a plugin's source health: the next round tries again
                log.exception("could not write this worker's figures down")
            await asyncio.sleep(SNAPSHOT_SECONDS)

    def own_state(self) -> Figures:
        """What describes this process now: its open sockets, their queues, its view
        of the dossier sources."""
        subscribers = tuple(self.state.hub.subscribers)  # one copy: the hub changes it
        return Figures(
            websockets=len(subscribers),
            fanout=sum(sub.queue.qsize() for sub in subscribers),
            sources={(health.name, health.plugin): (source_state_index(health.state),
                                                    health.failures)
                     for health in self.state.plugins.source_health()})

    def figures(self) -> Figures:
        """This process's figures, or with several workers the host's."""
        own = self.own_state()
        own.counts = dict(self.counts)  # copies in one step each: requests go on meanwhile
        own.times = {key: (list(buckets), list(total))
                     for key, (buckets, total) in list(self.times.items())}
        store: Any = getattr(self.state, "store", None)
        counts = getattr(store, "request_counts", None)
        if counts is not None:
            own.storage = {(store.name, operation, outcome): count
                           for (operation, outcome), count in list(counts.items())}
        return own if self.shared is None else host_figures(own, self.shared)


class HostCollector:
    """The figures not read from the database: requests in Prometheus' counter and
    histogram families, the live sockets and the dossier sources as gauges, the
    object-store requests."""

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # the families depend on the data; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        figures = self.metrics.figures()
        yield from self._requests(figures)
        yield from self._live(figures)
        yield from self._sources(figures)
        yield from self._storage(figures)

    def _requests(self, figures: Figures) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily("caseforum_http_requests", "HTTP requests answered",
                                       labels=["method", "route", "status"])
        for labels, count in figures.counts.items():
            requests.add_metric(list(labels), count)
        latency = HistogramMetricFamily(
            "caseforum_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            labels=["method", "route"])
        for (method, route), (buckets, total) in figures.times.items():
            cumulative, running = [], 0.0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([method, route], cumulative, sum_value=total[0])
        yield requests
        yield latency

    def _live(self, figures: Figures) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("caseforum_websocket_connections",
                                N_("Live sockets open on this host"), value=figures.websockets)
        yield GaugeMetricFamily("caseforum_fanout_queue_depth",
                                N_("Fragments queued for sockets' writers on this host"),
                                value=figures.fanout)

    def _sources(self, figures: Figures) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("caseforum_source_up",
                               N_("1 when a dossier source is usable, 0 when failing or cut off"),
                               labels=["source", "plugin", "state"])
        failures = GaugeMetricFamily("caseforum_source_failures",
                                     N_("A dossier source's failed calls in a row"),
                                     labels=["source", "plugin"])
        for (name, plugin), (state, failed) in figures.sources.items():
            up.add_metric([name, plugin, SOURCE_STATES[state]], 1 if state == 0 else 0)
            failures.add_metric([name, plugin], failed)
        yield up
        yield failures

    def _storage(self, figures: Figures) -> Iterator[Any]:
        """Requests to an object store (the local store makes none), counted as they go."""
        from prometheus_client.core import CounterMetricFamily

        store = getattr(self.metrics.state, "store", None)
        if getattr(store, "request_counts", None) is None:
            return
        family = CounterMetricFamily("caseforum_storage_requests",
                                     "Requests to the object store by operation and outcome",
                                     labels=["backend", "operation", "outcome"])
        for labels, count in figures.storage.items():
            family.add_metric(list(labels), count)
        yield family


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route pattern and status.
    Websockets are not requests here: the open ones are a gauge at scrape time."""

    def __init__(self, app: ASGIApp, *, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before the answer started

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # set by the router on the scope it was given
            template = getattr(route, "path_format", None) or NO_ROUTE
            self.metrics.observe(scope["method"], template, status,
                                 time.perf_counter() - start)


class StateCollector:
    """The figures read at scrape time from the database: once, by the worker that
    answers, however many workers the host has."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # the families depend on the data; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        yield from self._database()

    def _database(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        lag = GaugeMetricFamily("caseforum_consumer_lag_events",
                                N_("Events an event consumer has still to handle"),
                                labels=["consumer"])
        failed = GaugeMetricFamily("caseforum_delivery_failures",
                                   N_("Notifications a channel gave up delivering"),
                                   labels=["channel"])
        ice_table = SQLModel.metadata.tables.get("ice_parcel")
        ice_queue = None
        with open_session(self.state.engine) as session:
            newest = session.exec(select(func.max(Event.id))).one() or 0
            for name, last in session.exec(
                    select(ConsumerCursor.name, ConsumerCursor.last_event_id)).all():
                lag.add_metric([name], max(newest - last, 0))
            for channel, count in session.exec(
                    select(Delivery.channel, func.count())
                    .where(Delivery.state == "failed").group_by(Delivery.channel)).all():
                failed.add_metric([channel], count)
            if ice_table is not None and self.state.plugins.is_enabled("ice_exchange"):
                ice_queue = session.exec(
                    select(func.count()).select_from(ice_table)
                    .where(ice_table.c.status == "queued")).one()
        yield lag
        yield failed
        if ice_queue is not None:
            yield GaugeMetricFamily("caseforum_ice_queue_depth",
                                    N_("ICE parcels queued for delivery"), value=ice_queue)
