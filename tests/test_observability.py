"""Request ids, one JSON log line per request, and Prometheus metrics an operator scrapes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import Client

from connector.directory.store import DirectoryStore
from connector.trail.events import emit
from connector.web.logs import JsonFormatter
from connector.web.observability import metrics_wsgi_app
from tests.fixtures_app import ScimClient, issue_token, new_organization
from tests.test_cli import REPO_ROOT, free_port, wait_for
from tests.test_provisioning_transaction import add_endpoint


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_answer_carries_a_request_id_and_an_okta_push_is_logged_as_one_json_line(
    scim: ScimClient, org_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="connector.request"):
        response = scim.post(
            "/Users",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@msp.example",
            },
            headers={"X-Okta-Request-Id": "okta-req-42"},
        )

    assert response.status_code == 201
    request_id = response.headers["X-Request-Id"]
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    line = next(line for line in lines if line.get("request_id") == request_id)
    assert line["message"] == "request"
    assert (line["method"], line["route"], line["status"]) == ("POST", "/scim/v2/Users", 201)
    assert line["org_id"] == org_id
    assert line["credential_id"]
    assert line["idp_request_id"] == "okta-req-42"
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"


def test_a_proxys_request_id_is_kept_and_a_hostile_one_replaced(scim: ScimClient) -> None:
    kept = scim.get("/Users", headers={"X-Request-Id": "edge-1234"})
    replaced = scim.get("/Users", headers={"X-Request-Id": "bad id\u00e9" * 40})

    assert kept.headers["X-Request-Id"] == "edge-1234"
    assert replaced.headers["X-Request-Id"] != "bad id"
    assert len(replaced.headers["X-Request-Id"]) == 32


def test_a_5xx_scim_error_names_the_request_id(
    app_factory: Callable[..., Flask], scim_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(DirectoryStore, "create", busy)
    client = app_factory().test_client()
    response = client.post(
        "/scim/v2/Users",
        json={"userName": "ada@msp.example"},
        headers={"Authorization": f"Bearer {scim_token}"},
    )

    assert response.status_code == 503
    body = response.get_json(force=True)
    assert response.headers["X-Request-Id"] in body["detail"]
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_requests_and_scim_operations_are_counted_by_route_and_organization(
    app_factory: Callable[..., Flask], scim_token: str, org_id: int
) -> None:
    scim = ScimClient(app_factory(metrics_org_label=True).test_client(), scim_token)
    route = {"route": "/scim/v2/Users/<resource_id>", "method": "GET", "status": "404"}
    operation = {
        "org": str(org_id), "resource": "Users", "method": "GET", "outcome": "client_error"
    }  # fmt: skip
    before = sample("hub_scim_http_requests_total", **route)
    before_ops = sample("hub_scim_scim_operations_total", **operation)
    before_latency = sample(
        "hub_scim_http_request_duration_seconds_count", route=route["route"], method="GET"
    )

    scim.get("/Users/no-such-user")
    scim.get("/Users/no-such-user")

    assert sample("hub_scim_http_requests_total", **route) == before + 2
    assert sample("hub_scim_scim_operations_total", **operation) == before_ops + 2
    assert (
        sample("hub_scim_http_request_duration_seconds_count", route=route["route"], method="GET")
        == before_latency + 2
    )


def test_by_default_an_msps_organizations_share_one_series_per_operation(
    app_factory: Callable[..., Flask], engine: Engine, scim_token: str, org_id: int
) -> None:
    client = app_factory().test_client()
    other_token = issue_token(engine, new_organization(engine))
    everyone = {"org": "all", "resource": "Users", "method": "GET", "outcome": "client_error"}
    before = sample("hub_scim_scim_operations_total", **everyone)

    for token in (scim_token, other_token):
        ScimClient(client, token).get("/Users/no-such-user")

    assert sample("hub_scim_scim_operations_total", **everyone) == before + 2
    labelled = {
        metric_sample.labels["org"]
        for metric in REGISTRY.collect()
        if metric.name == "hub_scim_scim_operations"
        for metric_sample in metric.samples
    }
    assert str(org_id) not in labelled


def test_rate_limit_refusals_are_counted(
    app_factory: Callable[..., Flask], scim_token: str
) -> None:
    client = app_factory(rate_limit_per_minute=1, rate_limit_burst=1).test_client()
    headers = {"Authorization": f"Bearer {scim_token}"}
    before = sample("hub_scim_rate_limited_total", route="/scim/v2/Users")

    statuses = [client.get("/scim/v2/Users", headers=headers).status_code for _ in range(3)]

    assert 429 in statuses
    assert sample("hub_scim_rate_limited_total", route="/scim/v2/Users") == before + statuses.count(
        429
    )


def test_the_scrape_shows_the_outbox_backlog_and_its_oldest_event(
    database_url: str, session: Session, org_id: int
) -> None:
    add_endpoint(session, org_id, "https://psa.example/hooks")
    emit(session, org_id, "user.deactivated", "user-1", {})
    session.commit()

    response = Client(metrics_wsgi_app(database_url)).get("/metrics")
    text = response.get_data(as_text=True)

    assert response.status_code == 200
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["hub_scim_metrics_database_up"] == 1
    assert values["hub_scim_outbox_backlog"] >= 1
    assert values["hub_scim_outbox_oldest_undelivered_age_seconds"] >= 0
    assert "hub_scim_webhook_dead_lettered" in values
    assert "hub_scim_db_pool_connections_in_use" in text


# -- under gunicorn, several workers, the master serving the scrape -------------------


@pytest.fixture
def served_with_metrics(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("HUB_SCIM_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        HUB_SCIM_METRICS_PORT=str(metrics_port),
    )
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "connector.cli.main", "serve",
                "--port", str(port),
                "--database-url", f"sqlite:///{tmp_path / 'served.db'}",
                "--workers", "2", "--threads", "2",
            ],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        yield port, metrics_port, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch(url: str) -> tuple[int, str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return response.status, response.read().decode(), response.headers


def answers(url: str) -> bool:
    try:
        return fetch(url)[0] == 200
    except OSError:
        return False


@pytest.mark.slow
def test_the_master_serves_every_workers_metrics_on_its_own_port(
    served_with_metrics: tuple[int, int, Path],
) -> None:
    port, metrics_port, log = served_with_metrics
    wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, log.read_text())
    wait_for(lambda: answers(f"http://127.0.0.1:{metrics_port}/metrics"), 30, log.read_text())

    for _ in range(20):
        _status, _body, headers = fetch(f"http://127.0.0.1:{port}/healthz")
        assert headers["X-Request-Id"]
    _status, text, _headers = fetch(f"http://127.0.0.1:{metrics_port}/metrics")

    counted = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("hub_scim_http_requests_total{") and 'route="/healthz"' in line
    )
    assert counted >= 20, text
    assert "hub_scim_outbox_backlog" in text
    assert "hub_scim_db_pool_size" in text
    json_lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(json.loads(line).get("route") == "/healthz" for line in json_lines)
    with pytest.raises(urllib.error.HTTPError, match="404"):  # not on the public port
        fetch(f"http://127.0.0.1:{port}/metrics")
