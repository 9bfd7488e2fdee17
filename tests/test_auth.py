"""Bearer credentials: an IdP with a good token gets in, everyone else gets a SCIM 401.

RFC 6750 section 3 (WWW-Authenticate), RFC 7644 section 3.12 (Error documents),
docs/rules.md#words: a credential belongs to exactly one organization.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connector.db.engine import make_session_factory
from connector.tenancy.credentials import (
    TOKEN_PREFIX,
    CredentialNotFoundError,
    Scope,
    authenticate,
    create_credential,
    hash_token,
    list_credentials,
    revoke_credential,
)
from connector.tenancy.tables import Credential
from tests.fixtures_app import ScimClient, issue_token

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session of the test's own, committed explicitly (the app uses other connections)."""
    with make_session_factory(engine)() as session:
        yield session


def assert_scim_error(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == "application/scim+json"  # type: ignore[attr-defined]
    document: dict[str, object] = response.get_json(force=True)  # type: ignore[attr-defined]
    assert document["schemas"] == [ERROR_SCHEMA]
    assert document["status"] == str(status)
    # Authlib's OAuth JSON ({"error": ..., "error_description": ...}) never leaks out.
    assert "error" not in document
    assert "error_description" not in document
    return document


# -- the service functions ---------------------------------------------------


def test_a_new_token_is_random_prefixed_and_stored_only_as_its_hash(
    db: Session, org_id: int
) -> None:
    credential_id, token = create_credential(db, org_id, Scope.SCIM)
    _other_id, other_token = create_credential(db, org_id, Scope.SCIM)

    assert token.startswith(TOKEN_PREFIX)
    assert len(token) >= len(TOKEN_PREFIX) + 43  # 256 bits, base64url
    assert token != other_token
    stored = db.get(Credential, credential_id)
    assert stored is not None
    assert stored.token_hash == hash_token(token)
    assert token not in (stored.token_hash, stored.label, stored.id)


def test_authenticate_names_the_organization_of_a_usable_token_of_that_scope(
    db: Session, org_id: int
) -> None:
    _credential_id, token = create_credential(db, org_id, Scope.SCIM)

    assert authenticate(db, token, Scope.SCIM) == org_id
    assert authenticate(db, token, Scope.ACCESS) is None
    assert authenticate(db, token + "x", Scope.SCIM) is None
    assert authenticate(db, "", Scope.SCIM) is None


def test_a_revoked_or_expired_token_authenticates_no_one(db: Session, org_id: int) -> None:
    _revoked_id, revoked = create_credential(db, org_id, Scope.SCIM)
    revoke_credential(db, org_id, revoked)
    _expired_id, expired = create_credential(db, org_id, Scope.SCIM, ttl=timedelta(seconds=-1))
    _later_id, expires_later = create_credential(db, org_id, Scope.SCIM, ttl=timedelta(days=1))

    assert authenticate(db, revoked, Scope.SCIM) is None
    assert authenticate(db, expired, Scope.SCIM) is None
    assert authenticate(db, expires_later, Scope.SCIM) == org_id


def test_revoking_by_id_or_by_token_is_idempotent(db: Session, org_id: int) -> None:
    by_id, _token = create_credential(db, org_id, Scope.SCIM)
    _by_token_id, by_token = create_credential(db, org_id, Scope.ACCESS)

    first = revoke_credential(db, org_id, by_id)
    revoked_at = first.revoked_at
    again = revoke_credential(db, org_id, by_id)
    revoke_credential(db, org_id, by_token)

    assert revoked_at is not None
    assert again.revoked_at == revoked_at
    assert all(credential.revoked_at for credential in list_credentials(db, org_id))


def test_an_organization_cannot_revoke_another_organizations_credential(
    db: Session, org_id: int, other_org_id: int
) -> None:
    credential_id, token = create_credential(db, other_org_id, Scope.SCIM)

    with pytest.raises(CredentialNotFoundError):
        revoke_credential(db, org_id, credential_id)
    with pytest.raises(CredentialNotFoundError):
        revoke_credential(db, org_id, token)
    assert authenticate(db, token, Scope.SCIM) == other_org_id


def test_listing_credentials_shows_one_organizations_only(
    db: Session, org_id: int, other_org_id: int
) -> None:
    mine, _ = create_credential(db, org_id, Scope.SCIM, label="okta")
    create_credential(db, other_org_id, Scope.SCIM)

    listed = list_credentials(db, org_id)

    assert [credential.id for credential in listed] == [mine]
    assert listed[0].label == "okta"


def test_an_unknown_scope_is_refused(db: Session, org_id: int) -> None:
    with pytest.raises(ValueError, match="admin"):
        create_credential(db, org_id, "admin")


# -- on SCIM routes ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/Users", "/Groups", "/ServiceProviderConfig"])
def test_a_request_without_a_token_gets_a_scim_401_with_a_bearer_challenge(
    client: FlaskClient, path: str
) -> None:
    response = ScimClient(client, None).get(path)

    document = assert_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hub-scim"'
    assert "Bearer" in str(document["detail"])


@pytest.mark.parametrize(
    "authorization",
    ["Bearer hubscim_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "hubscim_bare"],
)
def test_a_wrong_token_gets_a_scim_401(client: FlaskClient, authorization: str) -> None:
    response = ScimClient(client, None).get("/Users", headers={"Authorization": authorization})

    assert_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="hub-scim"')


def test_an_invalid_token_is_named_in_the_challenge(client: FlaskClient) -> None:
    response = ScimClient(client, "hubscim_guess").get("/Users")

    assert_scim_error(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_revoked_token_is_refused_on_the_next_request(
    scim: ScimClient, db: Session, org_id: int
) -> None:
    assert scim.get("/Users").status_code == 200

    assert scim.token is not None
    revoke_credential(db, org_id, scim.token)
    db.commit()

    response = scim.get("/Users")
    assert_scim_error(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_expired_token_is_refused(client: FlaskClient, db: Session, org_id: int) -> None:
    _credential_id, token = create_credential(db, org_id, Scope.SCIM, ttl=timedelta(seconds=-1))
    db.commit()

    assert_scim_error(ScimClient(client, token).get("/Users"), 401)


def test_a_products_access_credential_is_refused_on_scim_routes_with_403(
    client: FlaskClient, engine: Engine, org_id: int
) -> None:
    """RFC 6750 section 3.1: a credential of the wrong scope is ``insufficient_scope``, 403."""
    access_token = issue_token(engine, org_id, Scope.ACCESS)

    response = ScimClient(client, access_token).get("/Users")

    assert_scim_error(response, 403)
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="scim"' in challenge


def test_health_probes_need_no_token(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


# -- tenancy -------------------------------------------------------------------


def new_user(user_name: str) -> dict[str, object]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name}


def test_another_organizations_user_is_not_found_and_not_listed(
    scim: ScimClient, other_org_scim: ScimClient
) -> None:
    created = scim.post("/Users", json=new_user("ada@example.com"))
    assert created.status_code == 201
    user_id = created.get_json(force=True)["id"]

    assert other_org_scim.get(f"/Users/{user_id}").status_code == 404
    assert other_org_scim.put(f"/Users/{user_id}", json=new_user("eve")).status_code == 404
    assert other_org_scim.delete(f"/Users/{user_id}").status_code == 404
    listed = other_org_scim.get("/Users", query_string={"filter": 'userName eq "ada@example.com"'})
    assert listed.get_json(force=True)["totalResults"] == 0
    assert scim.get(f"/Users/{user_id}").status_code == 200


def test_the_same_user_name_may_exist_in_two_organizations(
    scim: ScimClient, other_org_scim: ScimClient
) -> None:
    assert scim.post("/Users", json=new_user("same@example.com")).status_code == 201
    assert other_org_scim.post("/Users", json=new_user("same@example.com")).status_code == 201


def test_stored_hashes_are_sha256_hex(db: Session, org_id: int) -> None:
    create_credential(db, org_id, Scope.SCIM)
    hashes = db.scalars(select(Credential.token_hash).where(Credential.org_id == org_id))
    assert all(len(value) == 64 and int(value, 16) >= 0 for value in hashes)
