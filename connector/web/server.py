"""The production WSGI server: gunicorn, with the settings ``deploy/gunicorn.conf.py`` also uses.

``hub-scim serve`` runs :class:`HubScimServer` in process; ``gunicorn -c
deploy/gunicorn.conf.py`` reads the same :func:`gunicorn_options`. Each worker
builds its own application (and so its own connection pool) after the fork.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from prometheus_client import multiprocess, start_http_server

from connector.metrics import enable_multiprocess
from connector.settings import REQUEST_LINE_LIMIT, Settings
from connector.web.app import create_app
from connector.web.logs import configure_json_logging
from connector.web.observability import metrics_registry


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """Gunicorn's settings for the service.

    Threads serve concurrent IdP requests that wait on the database; the
    request-line and header limits bound what a client may make a worker read
    before the application sees the request (the SCIM layer has finer limits).
    """
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "threads": settings.threads,
        # gthread, answering its own refusals (414, 431, 400) as SCIM Errors.
        "worker_class": "connector.web.gunicorn_parts.ScimThreadWorker",
        # Requests are bounded by their own deadline (connector.web.deadline);
        # gunicorn's timeout only restarts a worker whose main loop stopped
        # answering, which in a threaded worker says nothing of its requests.
        "timeout": settings.request_timeout_seconds + 30,
        "graceful_timeout": 30,
        "keepalive": 5,
        # 8190 is gunicorn's maximum; a SCIM filter sits in the query string,
        # whose own limit (HUB_SCIM_MAX_QUERY_STRING_BYTES) leaves room for
        # the method and path, so the app refuses a long query as a SCIM 400.
        "limit_request_line": REQUEST_LINE_LIMIT,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        # Recycle workers now and then, staggered, to bound slow memory growth.
        "max_requests": 10_000,
        "max_requests_jitter": 1_000,
        # X-Forwarded-Proto is believed from the trusted proxies only.
        "forwarded_allow_ips": settings.trusted_proxies,
        # None: no access log; every request has its JSON line anyway.
        "accesslog": "-" if settings.access_log else None,
        # Secrets in query strings never reach the access log, when it is on.
        "logger_class": "connector.web.gunicorn_parts.RedactingLogger",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "hub-scim",
        # Several servers may run on one host (and the test suite starts some):
        # gunicorn's per-user control socket would be shared between them.
        "control_socket_disable": True,
        **metrics_hooks(settings),
    }


def metrics_hooks(settings: Settings) -> dict[str, Any]:
    """Gunicorn hooks serving Prometheus metrics from the master (docs/observability.md).

    With ``HUB_SCIM_METRICS_PORT`` set: before the workers start, metrics
    switch to prometheus-client's multiprocess mode (files in
    ``$PROMETHEUS_MULTIPROC_DIR``, else a temporary directory, emptied at
    start); once ready, the master serves every worker's metrics and the
    database's gauges on ``HUB_SCIM_METRICS_HOST:PORT`` (loopback by default:
    the scrape is protected by where it listens, not by a credential); a dead
    worker's live gauges are dropped.
    """
    if not settings.metrics_port:
        return {}

    def on_starting(_server: Any) -> None:
        enable_multiprocess()

    def when_ready(_server: Any) -> None:
        start_http_server(
            settings.metrics_port,
            addr=settings.metrics_host,
            registry=metrics_registry(settings.database_url),
        )

    def child_exit(_server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

    return {"on_starting": on_starting, "when_ready": when_ready, "child_exit": child_exit}


class HubScimServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn run from Python, serving :func:`connector.web.app.create_app` with ``settings``."""

    def __init__(self, settings: Settings, options: dict[str, Any] | None = None) -> None:
        self._settings = settings
        self._options = gunicorn_options(settings) | (options or {})
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        # Gunicorn configures only its own loggers; the service's go to the
        # same stream, in each worker, one JSON object per line.
        configure_json_logging(self._settings.log_level)
        return create_app(self._settings)
