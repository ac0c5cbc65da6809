"""Prometheus figures for ``/metrics``: requests as they happen, the rest at scrape time.

Two kinds of figure, two costs.  Requests are counted and timed by a small ASGI
middleware that only bumps in-memory counters (no database, no formatting); its
label is the matched route's path pattern (``/threads/{thread_id}``), never the raw
path, so a crawler walking a million URLs adds no series.  Everything else (open
websockets, consumer lag, failed deliveries, dossier sources, the ICE outbox) is read
when Prometheus asks, the database figures in one short session, so serving pages
pays nothing for them.

One registry per app (not prometheus_client's global one): tests build many apps in
one process, and each host's figures are its own anyway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
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
    """This app's registry: the request counters and the scrape-time collector."""

    def __init__(self, state: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.allow = parse_networks(state.settings.metrics_allow)
        self.requests = Counter("caseforum_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("caseforum_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its answer",
                                 ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(StateCollector(state))
        # label children by key: .labels() validates and hashes on every call
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            if method not in METHODS:
                method = "OTHER"
            pair = (self.requests.labels(method, route, str(status)),
                    self.latency.labels(method, route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)


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


class StateCollector(Collector):
    """The figures read at scrape time from the app's state and its database."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # the families depend on the data; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._live()
        yield from self._sources()
        yield from self._database()

    def _live(self) -> Iterator[GaugeMetricFamily]:
        hub = self.state.hub
        subscribers = tuple(hub.subscribers)  # one copy: the hub changes it meanwhile
        yield GaugeMetricFamily("caseforum_websocket_connections",
                                "Live sockets open on this host", value=len(subscribers))
        yield GaugeMetricFamily("caseforum_fanout_queue_depth",
                                "Fragments queued for sockets' writers on this host",
                                value=sum(sub.queue.qsize() for sub in subscribers))

    def _sources(self) -> Iterator[GaugeMetricFamily]:
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

    def _database(self) -> Iterator[GaugeMetricFamily]:
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
