"""The app factory: probes, per-request sessions, limits and the public base URL."""

from __future__ import annotations

import importlib
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gunicorn.config import Config as GunicornConfig
from sqlalchemy.pool import NullPool

from connector.db.engine import make_engine
from connector.settings import load_settings
from connector.tenancy.ratelimit import RateLimiter
from connector.web.app import EXTENSION, create_app, hub_scim, request_session
from connector.web.server import HubScimServer, gunicorn_options
from tests.fixtures_app import ScimClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
REPO_ROOT = Path(__file__).resolve().parents[1]


def test_healthz_answers_without_a_credential(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_503_and_no_detail_when_the_database_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/none", poolclass=NullPool)
    app = create_app(database_url="postgresql://postgres@127.0.0.1:1/none", engine=unreachable)

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}
    assert "database does not answer" in caplog.text


def test_the_factory_keeps_its_state_in_app_extensions(app: Flask) -> None:
    state = hub_scim(app)

    assert app.extensions[EXTENSION] is state
    assert app.config["MAX_CONTENT_LENGTH"] == state.settings.scim.max_payload_bytes
    assert not state.owns_engine


def test_each_request_gets_one_session_closed_at_teardown(app: Flask) -> None:
    with app.test_request_context("/"):
        session = request_session()
        assert request_session() is session
        session.connection()
        assert session.in_transaction()
    assert not session.in_transaction()


def test_overrides_reach_the_scim_layer(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(max_page_size=50, default_page_size=10, bulk_max_operations=7)

    limits = hub_scim(app).settings.scim

    assert (limits.max_page_size, limits.default_page_size) == (50, 10)
    assert limits.bulk_max_operations == 7
    assert limits.www_authenticate == 'Bearer realm="hub-scim"'


def test_an_app_built_from_settings_and_overrides(tmp_path: Any) -> None:
    settings = load_settings({}, database_url=f"sqlite:///{tmp_path}/nested/dir/hub.db")

    app = create_app(settings, max_payload_bytes=4096, bulk_max_payload_bytes=2048)

    try:
        assert app.config["MAX_CONTENT_LENGTH"] == 4096
        assert (tmp_path / "nested" / "dir").is_dir()
        assert hub_scim(app).owns_engine
    finally:
        hub_scim(app).close()


def test_the_advertised_limits_come_from_the_settings(
    app_factory: Callable[..., Flask], scim_token: str
) -> None:
    app = app_factory(max_page_size=50, default_page_size=10, bulk_max_operations=7)
    scim = ScimClient(app.test_client(), scim_token)

    config = scim.get("/ServiceProviderConfig").get_json(force=True)

    assert config["bulk"]["maxOperations"] == 7
    assert config["filter"]["maxResults"] == 50


def test_an_oversized_body_is_a_scim_413(
    app_factory: Callable[..., Flask], scim_token: str
) -> None:
    app = app_factory(max_payload_bytes=2048, bulk_max_payload_bytes=2048)
    scim = ScimClient(app.test_client(), scim_token)

    response = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "x" * 4096})

    assert response.status_code == 413
    assert response.mimetype == "application/scim+json"


def test_locations_use_the_public_base_url_behind_a_proxy(
    app_factory: Callable[..., Flask], scim_token: str
) -> None:
    app = app_factory(public_base_url="https://scim.example.com")
    scim = ScimClient(app.test_client(), scim_token)

    response = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "proxy@example.com"})

    assert response.status_code == 201
    assert response.headers["Location"].startswith("https://scim.example.com/scim/v2/Users/")
    assert response.get_json(force=True)["meta"]["location"] == response.headers["Location"]


def test_a_credential_past_its_rate_gets_a_scim_429_with_retry_after(
    app_factory: Callable[..., Flask], scim_token: str, other_org_scim: ScimClient
) -> None:
    app = app_factory(rate_limit_per_minute=60, rate_limit_burst=2)
    scim = ScimClient(app.test_client(), scim_token)
    other = ScimClient(app.test_client(), other_org_scim.token)

    statuses = [scim.get("/Users").status_code for _ in range(3)]
    limited = scim.get("/Users")

    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert limited.mimetype == "application/scim+json"
    assert limited.get_json(force=True)["status"] == "429"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert other.get("/Users").status_code == 200


def test_the_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])

    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is None
    wait = limiter.acquire("a")
    assert wait == pytest.approx(1.0)
    assert limiter.acquire("b") is None
    now[0] += 1.0
    assert limiter.acquire("a") is None


def test_a_zero_rate_turns_the_limiter_off() -> None:
    limiter = RateLimiter(per_minute=0, burst=1)

    assert not limiter.enabled
    assert all(limiter.acquire("a") is None for _ in range(10))


def test_the_wsgi_module_builds_the_one_app_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'wsgi.db'}")
    monkeypatch.setenv("HUB_SCIM_MAX_PAYLOAD_BYTES", "4096")
    monkeypatch.setenv("HUB_SCIM_BULK_MAX_PAYLOAD_BYTES", "4096")
    monkeypatch.delitem(sys.modules, "connector.web.wsgi", raising=False)

    wsgi = importlib.import_module("connector.web.wsgi")

    try:
        assert isinstance(wsgi.app, Flask)
        assert wsgi.app.config["MAX_CONTENT_LENGTH"] == 4096
        assert wsgi.app.test_client().get("/healthz").status_code == 200
    finally:
        hub_scim(wsgi.app).close()
        sys.modules.pop("connector.web.wsgi", None)


def test_serve_and_deploy_gunicorn_conf_run_the_same_server_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'conf.db'}")
    monkeypatch.setenv("HUB_SCIM_WORKERS", "3")
    settings = load_settings()

    conf = runpy.run_path(str(REPO_ROOT / "deploy" / "gunicorn.conf.py"))
    from_file = GunicornConfig()
    for name, value in conf.items():
        if name in from_file.settings:
            from_file.set(name, value)
    options = gunicorn_options(settings)
    server = HubScimServer(settings)

    assert conf["wsgi_app"] == "connector.web.wsgi:app"
    for name, value in options.items():
        assert conf[name] == value, name
        assert server.cfg.settings[name].get() == from_file.settings[name].get(), name
    assert server.cfg.workers == 3
    assert options["timeout"] > settings.request_timeout_seconds
    served = server.load()
    try:
        assert served.test_client().get("/healthz").status_code == 200
    finally:
        hub_scim(served).close()


def test_gunicorn_writes_no_access_log_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_SCIM_ACCESS_LOG", raising=False)
    assert gunicorn_options(load_settings())["accesslog"] is None
    assert HubScimServer(load_settings()).cfg.accesslog is None

    monkeypatch.setenv("HUB_SCIM_ACCESS_LOG", "on")
    assert gunicorn_options(load_settings())["accesslog"] == "-"
    assert HubScimServer(load_settings()).cfg.accesslog == "-"


def test_a_public_base_url_with_a_path_is_the_prefix_a_proxy_strips(
    app_factory: Callable[..., Flask], scim_token: str
) -> None:
    app = app_factory(public_base_url="https://hub.example.com/directory")
    scim = ScimClient(app.test_client(), scim_token)

    response = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "path@example.com"})

    assert response.status_code == 201
    assert response.headers["Location"].startswith(
        "https://hub.example.com/directory/scim/v2/Users/"
    )
