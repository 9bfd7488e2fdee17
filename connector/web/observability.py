"""Request ids, one JSON log line per request, and Prometheus metrics (docs/observability.md).

- Every request gets an id: the caller's ``X-Request-Id`` when it is a sane
  token (a proxy's), else a new one. It is returned in ``X-Request-Id``,
  named in the request's log line, and added to the ``detail`` of a 5xx SCIM
  Error so that a support ticket quoting the answer finds the log line.
- One log line per request on the ``connector.request`` logger, its fields
  in ``record.request`` (:class:`JsonFormatter` writes them as JSON): id,
  method, route, path, status, duration, organization, credential, the
  client's address, and the IdP's own request id when it sends one (Entra:
  ``client-request-id``). It is the service's access log: gunicorn's own is
  off unless ``HUB_SCIM_ACCESS_LOG`` turns it on.
- Metrics: requests by route template, method and status; latency; SCIM
  operations by organization and outcome; rate-limit refusals; database pool
  use. The scrape endpoint (:func:`metrics_wsgi_app`) is served on its own
  address by the gunicorn master (:mod:`connector.web.server`), never on the
  public port, and adds what the database knows: the outbox backlog, the age
  of the oldest undelivered event, dead letters, held Owners.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select
from sqlalchemy.pool import NullPool, QueuePool

from connector.db.engine import make_engine
from connector.derived.tables import OwnerHold
from connector.metrics import MULTIPROC_ENV, instruments
from connector.trail.events import Event, EventDelivery

REQUEST_ID_HEADER = "X-Request-Id"
# Request ids the IdPs send: Entra's client-request-id; Okta's X-Okta-Request-Id.
IDP_REQUEST_ID_HEADERS = ("client-request-id", "X-Okta-Request-Id")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SCIM_ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"

request_logger = logging.getLogger("connector.request")


def _sane(value: str | None) -> str | None:
    return value if value is not None and _SANE_ID.fullmatch(value) else None


def request_id() -> str:
    """This request's id (also outside the request hooks, e.g. in an error handler)."""
    rid: str | None = g.get("hub_scim_request_id")
    if rid is None:
        rid = _sane(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        g.hub_scim_request_id = rid
    return rid


ALL_ORGANIZATIONS = "all"
"""The ``org`` label of SCIM operation counts unless organizations are labelled one by one."""


def install(app: Flask, engine: Engine, *, label_organizations: bool = False) -> None:
    """Request ids, the per-request log line and request metrics for ``app``; pool metrics.

    ``label_organizations`` counts SCIM operations per organization id: a
    series set per organization, so an MSP's thousands of organizations make
    thousands of them; off, they are counted under ``org="all"``.
    """

    def finish(response: Response) -> Response:
        return _finish(response, label_organizations=label_organizations)

    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(finish)
    watch_pool(engine)


def _start() -> None:
    g.hub_scim_started = time.perf_counter()
    request_id()


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _credential() -> Any:
    return g.get("hub_scim_credential") or g.get("hub_access_credential")


def _finish(response: Response, *, label_organizations: bool) -> Response:
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    if response.status_code >= 500:
        _name_request_in_scim_error(response, rid)
    started = g.get("hub_scim_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    route, method, status = _route(), request.method, response.status_code
    credential = _credential()
    metrics = instruments()
    metrics.requests.labels(route, method, str(status)).inc()
    metrics.latency.labels(route, method).observe(duration)
    if status == 429:
        metrics.rate_limited.labels(route).inc()
    if credential is not None and route.startswith("/scim/"):
        outcome = "success" if status < 400 else "client_error" if status < 500 else "server_error"
        org = str(credential.org_id) if label_organizations else ALL_ORGANIZATIONS
        metrics.scim_operations.labels(org, _scim_resource(route), method, outcome).inc()
    fields: dict[str, Any] = {
        "request_id": rid,
        "method": method,
        "route": route,
        "path": request.path,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "org_id": getattr(credential, "org_id", None),
        "credential_id": getattr(credential, "credential_id", None),
        # The peer, or the client a trusted proxy names (connector.web.proxies).
        "client": request.remote_addr,
    }
    for header in IDP_REQUEST_ID_HEADERS:
        idp_id = _sane(request.headers.get(header))
        if idp_id is not None:
            fields["idp_request_id"] = idp_id
    request_logger.info("request", extra={"request": fields})
    return response


def _scim_resource(route: str) -> str:
    """``Users``, ``Groups``, ``Bulk``, ``.search`` ... from a route template."""
    parts = [part for part in route.removeprefix("/scim/v2").split("/") if part]
    if not parts:
        return "root"
    return parts[-1] if parts[-1] == ".search" else parts[0]


def _name_request_in_scim_error(response: Response, rid: str) -> None:
    if response.mimetype not in ("application/scim+json", "application/json"):
        return
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return
    if not isinstance(body, dict) or SCIM_ERROR_URN not in body.get("schemas", []):
        return
    detail = str(body.get("detail") or "").rstrip()
    body["detail"] = f"{detail} (request id {rid})".lstrip()
    response.set_data(json.dumps(body))


def watch_pool(engine: Engine) -> None:
    """Keep the pool gauges: connections in use, and the pool's configured size."""
    metrics = instruments()
    pool = engine.pool
    if isinstance(pool, QueuePool):
        metrics.pool_size.inc(pool.size())

    def checked_out(*_args: Any) -> None:
        metrics.pool_in_use.inc()

    def checked_in(*_args: Any) -> None:
        metrics.pool_in_use.dec()

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)


# -- the scrape endpoint -------------------------------------------------------


class OutboxCollector(Collector):
    """Gauges read from the database at scrape time, the same whichever worker wrote."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._engine: Engine | None = None

    def _connect(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self._database_url, poolclass=NullPool)
        return self._engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "hub_scim_metrics_database_up", "Whether the scrape could read the database."
        )
        try:
            found = self._read()
        except Exception:  # a scrape never fails: it says the database did not answer
            logging.getLogger(__name__).warning("metrics: database unreadable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found

    def _read(self) -> list[GaugeMetricFamily]:
        pending = (EventDelivery.delivered_at.is_(None), EventDelivery.dead_at.is_(None))
        with self._connect().connect() as connection:
            backlog, oldest = connection.execute(
                select(func.count(), func.min(Event.created_at))
                .select_from(EventDelivery)
                .join(Event, Event.id == EventDelivery.event_id)
                .where(*pending)
            ).one()
            dead = connection.scalar(
                select(func.count())
                .select_from(EventDelivery)
                .where(EventDelivery.dead_at.is_not(None))
            )
            held = connection.scalar(select(func.count()).select_from(OwnerHold))
        if isinstance(oldest, str):  # SQLite without the ORM's type processing
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return [
            _gauge("hub_scim_outbox_backlog", "Webhook deliveries not yet delivered.", backlog),
            _gauge(
                "hub_scim_outbox_oldest_undelivered_age_seconds",
                "Age of the oldest event with an undelivered webhook delivery (0: none).",
                max(age, 0.0),
            ),
            _gauge(
                "hub_scim_webhook_dead_lettered",
                "Webhook deliveries given up (hub-scim events replay sends them again).",
                dead or 0,
            ),
            _gauge("hub_scim_owners_held", "Would-be third Owners currently held.", held or 0),
        ]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], float(value))
    return family


def metrics_registry(database_url: str) -> CollectorRegistry:
    """The workers' metrics (multiprocess files when enabled, else this process's) and the DB's."""
    registry: CollectorRegistry
    if MULTIPROC_ENV in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(OutboxCollector(database_url))
        return registry
    registry = CollectorRegistry()
    registry.register(_Forward(REGISTRY))
    registry.register(OutboxCollector(database_url))
    return registry


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()


def metrics_wsgi_app(database_url: str) -> Callable[..., Any]:
    """The scrape endpoint as a WSGI application (Prometheus text format)."""
    return make_wsgi_app(metrics_registry(database_url))
