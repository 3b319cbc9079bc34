"""Prometheus metrics for a running session, read when they are scraped.

Nothing here runs per book update: the engine keeps its own plain
counters (one dict increment per book, per market), and a collector
(:mod:`arb.metrics_collector`) reads them and the pipeline's, gateway's and
clients' state when Prometheus asks, on the HTTP server's thread.  What only
an event can tell (each order's outcome and timings) is counted by an event
subscriber (:mod:`arb.metrics_orders`).  Each server has its own registry,
so several can run in one process.

Names follow Prometheus conventions: the ``arb_`` prefix, base units
(seconds, ratios; money in the reference currency, hence ``_usdt``),
``_total`` on counters, and labels whose values come from the config or
the code only (exchange, symbol, asset, rule, direction, status, bucket).

This module is the endpoint: start it with a session, close it after.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, start_http_server

from arb.config import LIVE_MODES, Config
from arb.metrics_collector import DIRECTIONS, SessionCollector, wall_clock
from arb.metrics_families import Histogram, counter, gauge
from arb.metrics_orders import ORDER_STATUSES, ROUND_TRIP_BUCKETS, TICK_TO_ORDER_BUCKETS, OrderEvents, order_status

if TYPE_CHECKING:
    from arb.session import Session

__all__ = [
    "DIRECTIONS", "ORDER_STATUSES", "ROUND_TRIP_BUCKETS", "TICK_TO_ORDER_BUCKETS", "Histogram", "MetricsServer",
    "OrderEvents", "SessionCollector", "attach_metrics", "counter", "detach_metrics", "gauge", "metrics_enabled",
    "order_status", "start_metrics_server", "wall_clock",
]

log = logging.getLogger("arb.metrics")


class MetricsServer:
    """The HTTP endpoint of one session's metrics; serves until closed."""

    def __init__(self, server: Any, thread: Any, collector: SessionCollector, registry: CollectorRegistry):
        self._server = server
        self._thread = thread
        self.collector = collector
        self.registry = registry

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(session: Session, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
    """Serve ``session``'s metrics (and the process's) at ``http://host:port/metrics``.

    Call it after ``build_session`` and before ``session.run``: orders are
    counted from events published after this.  ``port`` 0 picks a free port
    (``.port`` says which).  Raises OSError when the address cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = SessionCollector(session)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    metrics = MetricsServer(server, thread, collector, registry)
    log.info("metrics at %s", metrics.url)
    return metrics


def metrics_enabled(config: Config, mode: str) -> bool:
    """``monitoring.metrics.enabled``; null means on in the live modes, off in paper."""
    enabled = config.metrics.enabled
    return mode in LIVE_MODES if enabled is None else bool(enabled)


def attach_metrics(session: Session, config: Config | None = None) -> MetricsServer | None:
    """Start the metrics endpoint if the config asks for it (or by default, in
    the live modes); None when it stays off.  The caller closes the server
    when the process is done with the session (it keeps serving after
    ``run`` returns, so a last scrape sees how the session ended).

    Raises ``SessionError`` when the address cannot be bound.
    """
    from arb.session import SessionError

    config = config or session.config
    if not metrics_enabled(config, session.mode):
        return None
    settings = config.metrics
    try:
        server = start_metrics_server(session, settings.host, settings.port)
    except OSError as exc:
        raise SessionError(f"monitoring.metrics: cannot listen on {settings.host}:{settings.port}: "
                           f"{exc.strerror or exc}") from None
    session.extra["metrics_server"] = server
    return server


def detach_metrics(session: Session, *, wait: Callable[[float], Any] = time.sleep) -> None:
    """Close the endpoint :func:`attach_metrics` started, if any.

    A halted session (a guard stop) first keeps it up for
    ``monitoring.metrics.linger_s``, so Prometheus scrapes how the session
    ended before the process exits and the alert can fire.
    """
    server = session.extra.pop("metrics_server", None)
    if server is None:
        return
    linger = session.config.metrics.linger_s
    try:
        if session.engine.halted and linger > 0:
            log.info("keeping %s up for %g s so Prometheus sees how the session ended "
                     "(monitoring.metrics.linger_s)", server.url, linger)
            wait(linger)
    finally:
        server.close()

