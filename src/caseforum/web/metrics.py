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
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caseforum.db import open_session
from caseforum.models import ConsumerCursor, Delivery, Event
from caseforum.web.proxy import parse_networks

#: a request's seconds: page renders are tens of milliseconds, uploads may take minutes
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: the route label of requests no route matched (unknown paths) or a mount served
NO_ROUTE = "<none>"


class AppMetrics:
    """This app's request counts (plain numbers, bumped on the event loop) and, made at
    the first scrape, its registry with the scrape-time collector."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.allow = parse_networks(state.settings.metrics_allow)
        self._registry: Any = None
        #: answers by (method, route, status)
        self.counts: dict[tuple[str, str, str], int] = {}
        #: by (method, route): answers per bucket (the last for slower ones), and seconds
        self.times: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry(auto_describe=True)
            registry.register(RequestCollector(self))
            registry.register(StateCollector(self.state))
            self._registry = registry
        return self._registry

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (method, route, str(status))
        self.counts[key] = self.counts.get(key, 0) + 1
        timing = self.times.get((method, route))
        if timing is None:
            timing = self.times[(method, route)] = ([0] * (len(BUCKETS) + 1), [0.0])
        timing[0][bisect_left(BUCKETS, seconds)] += 1
        timing[1][0] += seconds


class RequestCollector:
    """The request counts in Prometheus' counter and histogram families."""

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily("caseforum_http_requests", "HTTP requests answered",
                                       labels=["method", "route", "status"])
        for labels, count in list(self.metrics.counts.items()):  # a copy in one step
            requests.add_metric(list(labels), count)
        latency = HistogramMetricFamily(
            "caseforum_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            labels=["method", "route"])
        for (method, route), (buckets, total) in list(self.metrics.times.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([method, route], cumulative, sum_value=total[0])
        yield requests
        yield latency


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
    """The figures read at scrape time from the app's state and its database."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # the families depend on the data; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        yield from self._live()
        yield from self._sources()
        yield from self._storage()
        yield from self._database()

    def _live(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        hub = self.state.hub
        subscribers = tuple(hub.subscribers)  # one copy: the hub changes it meanwhile
        yield GaugeMetricFamily("caseforum_websocket_connections",
                                "Live sockets open on this host", value=len(subscribers))
        yield GaugeMetricFamily("caseforum_fanout_queue_depth",
                                "Fragments queued for sockets' writers on this host",
                                value=sum(sub.queue.qsize() for sub in subscribers))

    def _sources(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("caseforum_source_up",
                               "1 when a dossier source is usable, 0 when failing or cut off",
                               labels=["source", "plugin", "state"])
        failures = GaugeMetricFamily("caseforum_source_failures",
                                     "A dossier source's failed calls in a row",
                                     labels=["source", "plugin"])
        for health in self.state.plugins.source_health():
            up.add_metric([health.name, health.plugin, health.state], 1 if health.healthy else 0)
            failures.add_metric([health.name, health.plugin], health.failures)
        yield up
        yield failures

    def _storage(self) -> Iterator[Any]:
        """Requests to an object store (the local store makes none), counted as they go."""
        from prometheus_client.core import CounterMetricFamily

        store = getattr(self.state, "store", None)
        counts = getattr(store, "request_counts", None)
        if counts is None:
            return
        family = CounterMetricFamily("caseforum_storage_requests",
                                     "Requests to the object store by operation and outcome",
                                     labels=["backend", "operation", "outcome"])
        for (operation, outcome), count in list(counts.items()):
            family.add_metric([store.name, operation, outcome], count)
        yield family

    def _database(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        lag = GaugeMetricFamily("caseforum_consumer_lag_events",
                                "Events an event consumer has still to handle",
                                labels=["consumer"])
        failed = GaugeMetricFamily("caseforum_delivery_failures",
                                   "Notifications a channel gave up delivering",
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
                                    "ICE parcels queued for delivery", value=ice_queue)
