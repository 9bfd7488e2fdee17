"""Entra's "OAuth2 Client Credentials Grant": a client id and secret buy short-lived SCIM tokens.

RFC 6749 section 4.4 (the grant), section 5.2 (its errors, as OAuth JSON on
the token endpoint).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from werkzeug.test import TestResponse

from connector.db.base import utcnow
from connector.db.engine import make_session_factory
from connector.tenancy.credentials import ISSUED_LABEL_PREFIX, Scope, revoke_credential
from connector.tenancy.oauth import TOKEN_PATH, create_client
from connector.tenancy.tables import Credential
from tests.fixtures_app import ScimClient


@pytest.fixture
def oauth_client(engine: Engine, org_id: int) -> tuple[str, str]:
    """An OAuth client of this test's organization: its id and secret."""
    with make_session_factory(engine)() as session:
        client_id, secret = create_client(session, org_id, label="entra")
        session.commit()
    return client_id, secret


def request_token(client: FlaskClient, client_id: str, secret: str, **kwargs: Any) -> TestResponse:
    """Entra's token request: the credentials in the form body (client_secret_post)."""
    return client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        **kwargs,
    )


def test_entra_trades_its_client_secret_for_a_short_lived_scim_token(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    response = request_token(client, *oauth_client)

    assert response.status_code == 200
    issued = response.get_json()
    assert issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 3600
    assert issued["scope"] == "scim"
    assert response.headers["Cache-Control"] == "no-store"
    scim = ScimClient(client, issued["access_token"])
    assert scim.get("/Users").status_code == 200


def test_the_secret_may_come_in_http_basic(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    basic = base64.b64encode(":".join(oauth_client).encode()).decode()

    response = client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )

    assert response.status_code == 200
    assert ScimClient(client, response.get_json()["access_token"]).get("/Users").status_code == 200


def test_the_token_lifetime_is_configured(
    app_factory: Callable[..., Flask], oauth_client: tuple[str, str]
) -> None:
    client = app_factory(oauth_token_ttl_seconds=600).test_client()

    assert request_token(client, *oauth_client).get_json()["expires_in"] == 600


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "hubscim_wrong"}, 401, "invalid_client"),
        ({"client_id": "not-a-client"}, 401, "invalid_client"),
        ({"client_id": "6f1c4a52-0c7e-4f4e-9d5e-3c1b2a0f9e11"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_a_bad_token_request_gets_an_oauth_error(
    client: FlaskClient,
    oauth_client: tuple[str, str],
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    client_id, secret = oauth_client
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}

    response = client.post(TOKEN_PATH, data={**data, **form})

    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert "access_token" not in response.get_json()


def test_a_token_request_over_plain_http_from_afar_is_refused(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    response = request_token(client, *oauth_client, environ_base={"REMOTE_ADDR": "203.0.113.7"})

    assert response.status_code == 400
    assert response.get_json()["error"] == "insecure_transport"


def test_behind_a_trusted_tls_proxy_its_forwarded_scheme_counts(
    app_factory: Callable[..., Flask], oauth_client: tuple[str, str]
) -> None:
    client = app_factory(
        public_base_url="https://scim.example.com",
        trusted_proxy_count=1,
        trusted_proxies="10.0.0.0/24",
    ).test_client()

    response = request_token(
        client,
        *oauth_client,
        base_url="http://scim.example.com",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "20.190.128.1"},
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )

    assert response.status_code == 200


def test_the_public_https_url_alone_does_not_make_plain_http_secure(
    app_factory: Callable[..., Flask], oauth_client: tuple[str, str]
) -> None:
    client = app_factory(public_base_url="https://scim.example.com").test_client()

    response = request_token(client, *oauth_client, environ_base={"REMOTE_ADDR": "203.0.113.7"})

    assert response.status_code == 400
    assert response.get_json()["error"] == "insecure_transport"


def test_a_host_header_naming_localhost_does_not_make_plain_http_secure(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    response = request_token(
        client,
        *oauth_client,
        base_url="http://localhost",
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "insecure_transport"


def test_forwarded_https_from_an_untrusted_peer_is_ignored(
    app_factory: Callable[..., Flask], oauth_client: tuple[str, str]
) -> None:
    client = app_factory(trusted_proxy_count=1, trusted_proxies="10.0.0.0/24").test_client()

    response = request_token(
        client,
        *oauth_client,
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "insecure_transport"


def test_an_unknown_client_and_a_wrong_secret_get_the_very_same_answer(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    client_id, _secret = oauth_client

    wrong_secret = request_token(client, client_id, "hubscim_wrong")
    unknown = request_token(client, "6f1c4a52-0c7e-4f4e-9d5e-3c1b2a0f9e11", "hubscim_wrong")

    assert wrong_secret.status_code == unknown.status_code == 401
    assert wrong_secret.get_json() == unknown.get_json()
    assert wrong_secret.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


def test_a_guessing_client_is_throttled_and_its_owner_is_let_in_again_later(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    client_id, secret = oauth_client
    failures = [request_token(client, client_id, f"hubscim_guess{n}") for n in range(10)]

    throttled = request_token(client, client_id, secret)

    assert {response.status_code for response in failures} == {401}
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "access_token" not in throttled.get_json()


def test_one_address_guessing_many_clients_is_throttled(client: FlaskClient) -> None:
    statuses = [
        request_token(client, f"6f1c4a52-0c7e-4f4e-9d5e-{n:012d}", "hubscim_guess").status_code
        for n in range(31)
    ]

    assert statuses[:30] == [401] * 30
    assert statuses[30] == 429


def test_the_client_secret_itself_is_no_scim_token(
    client: FlaskClient, oauth_client: tuple[str, str]
) -> None:
    _client_id, secret = oauth_client

    assert ScimClient(client, secret).get("/Users").status_code == 403


def test_revoking_the_client_revokes_its_tokens(
    client: FlaskClient, engine: Engine, org_id: int, oauth_client: tuple[str, str]
) -> None:
    client_id, secret = oauth_client
    token = request_token(client, client_id, secret).get_json()["access_token"]

    with make_session_factory(engine)() as session:
        revoke_credential(session, org_id, client_id)
        session.commit()

    assert ScimClient(client, token).get("/Users").status_code == 401
    assert request_token(client, client_id, secret).status_code in (400, 401)


def test_long_expired_tokens_are_forgotten_when_a_new_one_is_issued(
    client: FlaskClient, engine: Engine, oauth_client: tuple[str, str]
) -> None:
    client_id, secret = oauth_client
    label = ISSUED_LABEL_PREFIX + client_id
    request_token(client, client_id, secret)
    with make_session_factory(engine)() as session:
        session.execute(
            update(Credential)
            .where(Credential.label == label)
            .values(expires_at=utcnow() - timedelta(days=2))
        )
        session.commit()

    request_token(client, client_id, secret)

    with make_session_factory(engine)() as session:
        issued = session.scalars(select(Credential).where(Credential.label == label)).all()
    assert len(issued) == 1
    assert issued[0].scope == Scope.SCIM
    assert issued[0].expires_at is not None
    assert issued[0].expires_at > utcnow()
