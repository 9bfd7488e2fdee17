"""Signing in to the console with the organization's IdP, against a real OpenID provider."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.fixtures_console import ConsoleOrg, authorize_at_idp, csrf_of, sign_in


def test_an_unsigned_visitor_goes_to_login_then_to_the_issuer_with_pkce(
    console_app: Flask, console_org: ConsoleOrg, oidc_issuer: str
) -> None:
    client = console_app.test_client()
    first = client.get(console_org.path("/people"))
    assert first.status_code == 302
    assert urlsplit(first.headers["Location"]).path == console_org.path("/login")
    login = client.get(first.headers["Location"])
    assert login.status_code == 302
    location = urlsplit(login.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == oidc_issuer
    query = parse_qs(location.query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid email profile"]
    for parameter in ("state", "nonce", "code_challenge"):
        assert query[parameter][0]
    assert query["redirect_uri"] == [f"http://localhost{console_org.path('/callback')}"]


def test_the_owner_signs_in_and_lands_where_they_were_going(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    client.get(console_org.path("/owners"))  # remembered as next
    started = client.get(console_org.path("/login?next=") + console_org.path("/owners"))
    answer = client.get(authorize_at_idp(started.headers["Location"], "ADA@acme.example"))
    assert answer.status_code == 302
    assert answer.headers["Location"] == console_org.path("/owners")
    cookie = answer.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/admin/"):
        assert attribute in cookie
    page = client.get(console_org.path("/owners"))
    assert page.status_code == 200
    assert "ada@acme.example" in page.get_data(as_text=True)


def test_people_who_are_not_active_staff_are_refused_with_no_session(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    for login, why in (
        ("nobody@acme.example", "not a user provisioned"),
        ("erin@acme.example", "deactivated"),
        ("zoe@clients.example", "client domain"),
    ):
        client = console_app.test_client()
        answer = sign_in(client, console_org, login)
        assert answer.status_code == 403, login
        assert why in answer.get_data(as_text=True)
        assert client.get(console_org.path("/me")).status_code == 302


def test_another_organizations_user_is_refused(
    console_app: Flask, console_org: ConsoleOrg, engine: object, other_org_scim: object
) -> None:
    from tests.fixtures_console import add_user

    add_user(other_org_scim, "olga@other.example")  # type: ignore[arg-type]
    answer = sign_in(console_app.test_client(), console_org, "olga@other.example")
    assert answer.status_code == 403


def test_a_replayed_callback_or_code_is_refused(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    started = client.get(console_org.path("/login"))
    callback = authorize_at_idp(started.headers["Location"], "ada@acme.example")
    assert client.get(callback).status_code == 302
    # The same response again: its state was spent.
    again = console_app.test_client()
    assert again.get(callback).status_code == 403
    # The same code under a fresh state: the provider refuses a spent code.
    fresh = again.get(console_org.path("/login"))
    state = parse_qs(urlsplit(fresh.headers["Location"]).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    replay = again.get(console_org.path(f"/callback?code={code}&state={state}"))
    assert replay.status_code == 403
    assert again.get(console_org.path("/me")).status_code == 302


def _session_cookie(app: Flask, client: FlaskClient) -> dict[str, object]:
    cookie = client.get_cookie("hub_scim_console", path="/admin/")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    data: dict[str, object] = serializer.loads(cookie.value)
    return data


def test_signing_in_again_starts_a_new_session_id(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    first = _session_cookie(console_app, client)["console_session"]
    sign_in(client, console_org, "ada@acme.example")
    second = _session_cookie(console_app, client)["console_session"]
    assert first != second
    # The cookie carries nothing from before sign-in (the OIDC state is gone).
    assert not [key for key in _session_cookie(console_app, client) if key.startswith("_state")]


def test_sign_out_ends_the_session(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    token = csrf_of(client, console_org)
    answer = client.post(console_org.path("/logout"), data={"csrf_token": token})
    assert answer.status_code == 302
    assert "signed_out" in answer.headers["Location"]
    assert client.get(console_org.path("/me")).status_code == 302


def test_next_never_leaves_the_organizations_console(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    for target in (
        "https://evil.example/",
        "//evil.example/admin/",
        "/admin/other-org/people",
        console_org.path("/../../scim/v2/Users"),
        console_org.path("/%2e%2e/%2e%2e/scim/v2/Users"),
        console_org.path("/%2E%2E/other"),
        "/\\evil.example",
    ):
        client = console_app.test_client()
        started = client.get(console_org.path("/login"), query_string={"next": target})
        answer = client.get(authorize_at_idp(started.headers["Location"], "ada@acme.example"))
        assert answer.status_code == 302
        assert answer.headers["Location"] == console_org.path("/"), target


def test_the_break_glass_link_opens_once_as_the_bootstrap_owner(
    console_app: Flask, engine: object, org_id: int
) -> None:
    from sqlalchemy import Engine

    from connector.admin.sso import create_console_link
    from connector.db.engine import make_session_factory
    from connector.tenancy.tables import Organization

    assert isinstance(engine, Engine)
    with make_session_factory(engine)() as session:
        token, _expires = create_console_link(session, org_id, actor="cli:root")
        name = session.get_one(Organization, org_id).name
        session.commit()
    client = console_app.test_client()
    page = client.get(f"/admin/{name}/link", query_string={"token": token})
    assert page.status_code == 200  # a GET does not spend it
    html = page.get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    csrf = html[html.index(marker) + len(marker) :].split('"', 1)[0]
    used = client.post(f"/admin/{name}/link", data={"csrf_token": csrf, "token": token})
    assert used.status_code == 302
    assert client.get(f"/admin/{name}/connection").status_code == 200
    other = console_app.test_client()
    again = other.post(
        f"/admin/{name}/link", data={"csrf_token": _token_of(other, name, token), "token": token}
    )
    assert again.status_code == 403
    audit = client.get(f"/admin/{name}/audit", query_string={"action": "console.link_*"})
    assert "console.link_used" in audit.get_data(as_text=True)


def _token_of(client: object, name: str, token: str) -> str:
    from flask.testing import FlaskClient

    assert isinstance(client, FlaskClient)
    html = client.get(f"/admin/{name}/link", query_string={"token": token}).get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


def test_a_code_issued_to_another_application_is_refused(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    """Someone signs in to another app registered at the same issuer and brings its code here.

    The code is bound to that app's client id: exchanged under the console's
    own client id, the provider refuses it, and no session starts.
    """
    client = console_app.test_client()
    started = client.get(console_org.path("/login"))
    ours = urlsplit(started.headers["Location"])
    query = parse_qs(ours.query)
    query["client_id"] = ["another-application"]
    theirs = urlunsplit(ours._replace(query=urlencode(query, doseq=True)))
    callback = authorize_at_idp(theirs, "ada@acme.example")

    answer = client.get(callback)

    page = answer.get_data(as_text=True)
    assert answer.status_code == 403
    assert "identity provider&#39;s answer was refused" in page, page
    assert "does not match a sign-in started here" not in page
    assert client.get(console_org.path("/me")).status_code == 302


def test_an_unverified_email_claim_never_signs_in_as_the_staff_member_it_names(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    """Someone sets another staff member's address as their own profile email."""
    client = console_app.test_client()
    started = client.get(console_org.path("/login"))
    callback = authorize_at_idp(
        started.headers["Location"],
        "mallory",
        email="ada@acme.example",
        email_verified=False,
        preferred_username="mallory@acme.example",
    )

    answer = client.get(callback)

    assert answer.status_code == 403
    assert client.get(console_org.path("/me")).status_code == 302


def test_an_entra_user_principal_name_signs_in_without_an_email_claim(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    """Entra ID sends no email_verified: its preferred_username (the UPN) names the person."""
    client = console_app.test_client()
    started = client.get(console_org.path("/login"))
    callback = authorize_at_idp(
        started.headers["Location"],
        "0a1b2c3d-entra-object",
        email=None,
        email_verified=None,
        preferred_username="bob@acme.example",
    )

    assert client.get(callback).status_code == 302
    page = client.get(console_org.path("/me"))
    assert page.status_code == 200
    assert "bob@acme.example" in page.get_data(as_text=True)
