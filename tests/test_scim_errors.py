"""Every error on a SCIM route is a SCIM Error document (RFC 7644 section 3.12)."""

import io

import pytest
from flask import Blueprint, Flask
from scim2_models import Error, SCIMException, UnauthorizedException
from werkzeug.test import EnvironBuilder, run_wsgi_app

from scim.blueprint import create_blueprint
from scim.errors import register_scim_error_handlers
from scim.settings import ScimSettings
from tests.fake_backend import FakeBackendProvider, ScimClient, make_scim_app, user

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def api():
    app, _ = make_scim_app(ScimSettings(max_payload_bytes=2048))
    return ScimClient(app)


def assert_error(response, status, scim_type=None):
    assert response.status_code == status
    assert response.content_type == "application/scim+json"
    assert response.json["schemas"] == [ERROR]
    assert response.json["status"] == str(status)
    assert response.json.get("scimType") == scim_type
    assert response.json["detail"]


def test_unknown_route_is_a_scim_404(api):
    assert_error(api.get("/Widgets"), 404)


def test_wrong_method_is_a_scim_405_with_allow(api):
    response = api.delete("/ServiceProviderConfig")
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_error(api.put("/Users"), 405)


@pytest.mark.parametrize("endpoint", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_discovery_endpoints_are_read_only(api, endpoint, method):
    assert_error(api.open(method, endpoint), 405)


def test_malformed_json_is_400_invalid_syntax(api):
    response = api.post(
        "/Users", data='{"userName": ', headers={"Content-Type": "application/scim+json"}
    )
    assert_error(response, 400, "invalidSyntax")


@pytest.mark.parametrize("body", ["", "   ", "[1, 2]", '"text"', "NaN"])
def test_bodies_that_are_not_objects_are_400_invalid_syntax(api, body):
    response = api.post("/Users", data=body, headers={"Content-Type": "application/scim+json"})
    assert_error(response, 400, "invalidSyntax")


def test_wrong_content_type_is_415(api):
    response = api.post(
        "/Users", data='{"userName": "ada"}', headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415)


@pytest.mark.parametrize(
    "content_type",
    ["application/scim+json", "application/json", "application/scim+json; charset=utf-8", None],
)
def test_scim_and_plain_json_are_accepted(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/Users", data='{"userName": "ada"}', headers=headers)
    assert response.status_code == 201


def test_oversized_body_is_413_before_reading(api):
    body = '{"userName": "' + "x" * 3000 + '"}'
    response = api.post("/Users", data=body, headers={"Content-Type": "application/scim+json"})
    assert_error(response, 413)


def test_oversized_chunked_body_is_413(api):
    body = b'{"userName": "' + b"x" * 10_000 + b'"}'
    environ = EnvironBuilder(
        path="/scim/v2/Users",
        method="POST",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/scim+json", "Transfer-Encoding": "chunked"},
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    body, status, headers = run_wsgi_app(api.client.application, environ)
    assert status.startswith("413")
    assert headers["Content-Type"] == "application/scim+json"
    assert b'"status": "413"' in b"".join(body)


def test_unexpected_exception_is_a_generic_500(caplog):
    class ExplodingProvider:
        def __call__(self):
            raise RuntimeError("database password is hunter2")

    app = Flask("exploding")
    app.register_blueprint(
        create_blueprint(ExplodingProvider(), ScimSettings()), url_prefix="/scim/v2"
    )
    register_scim_error_handlers(app)
    response = ScimClient(app).get("/Users")
    assert_error(response, 500)
    assert "hunter2" not in response.get_data(as_text=True)
    assert "hunter2" in caplog.text


def test_unauthorized_from_the_apps_before_request_carries_www_authenticate():
    provider = FakeBackendProvider()
    blueprint = create_blueprint(provider, ScimSettings(www_authenticate='Bearer realm="hub"'))

    @blueprint.before_request
    def authenticate():
        raise UnauthorizedException(detail="A bearer token is required")

    app = Flask("auth")
    app.register_blueprint(blueprint, url_prefix="/scim/v2")
    register_scim_error_handlers(app)
    response = ScimClient(app).get("/Users")
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hub"'
    assert provider.store.calls == []


def test_errors_outside_the_scim_prefix_are_left_to_the_app():
    app, _ = make_scim_app()
    other = Blueprint("other", __name__)

    @other.route("/boom")
    def boom():
        raise ValueError("not a SCIM route")

    app.register_blueprint(other)
    client = app.test_client()
    response = client.get("/elsewhere")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    app.testing = True
    with pytest.raises(ValueError, match="not a SCIM route"):
        client.get("/boom")


def test_rate_limit_errors_keep_their_status_and_headers():
    blueprint = create_blueprint(FakeBackendProvider(), ScimSettings())

    @blueprint.before_request
    def throttle():
        exc = SCIMException.from_error(Error(status=429, detail="Slow down"))
        exc.context["headers"] = {"Retry-After": "30"}
        raise exc

    app = Flask("throttled")
    app.register_blueprint(blueprint, url_prefix="/scim/v2")
    response = ScimClient(app).post("/Users", user("ada@example.com"))
    assert_error(response, 429)
    assert response.headers["Retry-After"] == "30"
