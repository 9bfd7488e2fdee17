"""Discovery (RFC 7644 section 4): what is advertised is what is enforced."""

import pytest
from scim2_models import AuthenticationScheme
from werkzeug.urls import iri_to_uri

from scim.settings import ScimSettings
from tests.fake_backend import ScimClient, make_scim_app

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def api():
    settings = ScimSettings(
        bulk_max_operations=50,
        bulk_max_payload_bytes=4096,
        max_page_size=200,
        documentation_uri="https://hub.example/docs/scim",
        authentication_schemes=[
            {
                "type": "oauth2",
                "name": "OAuth 2.0 client credentials",
                "description": "Entra ID's client credentials grant",
            }
        ],
    )
    app, _ = make_scim_app(settings)
    return ScimClient(app)


def test_service_provider_config_advertises_the_enforced_limits(api):
    response = api.get("/ServiceProviderConfig")
    assert response.status_code == 200
    assert response.content_type == "application/scim+json"
    config = response.json
    assert config["patch"] == {"supported": True}
    assert config["bulk"] == {"supported": True, "maxOperations": 50, "maxPayloadSize": 4096}
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["changePassword"] == {"supported": False}
    assert config["sort"] == {"supported": True}
    assert config["etag"] == {"supported": True}
    assert config["pagination"]["maxPageSize"] == 200
    assert config["documentationUri"] == "https://hub.example/docs/scim"
    assert config["authenticationSchemes"][0]["type"] == "oauth2"
    assert config["meta"]["location"] == "http://localhost/scim/v2/ServiceProviderConfig"


def test_default_authentication_scheme_is_the_bearer_token():
    app, _ = make_scim_app()
    schemes = ScimClient(app).get("/ServiceProviderConfig").json["authenticationSchemes"]
    assert [scheme["type"] for scheme in schemes] == [AuthenticationScheme.Type.oauthbearertoken]


def test_resource_types(api):
    response = api.get("/ResourceTypes")
    assert response.json["totalResults"] == 2
    by_id = {resource["id"]: resource for resource in response.json["Resources"]}
    assert by_id["User"]["endpoint"] == "/Users"
    assert by_id["User"]["schema"] == USER
    assert by_id["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert by_id["Group"]["endpoint"] == "/Groups"
    assert by_id["Group"]["meta"]["location"] == "http://localhost/scim/v2/ResourceTypes/Group"
    assert api.get("/ResourceTypes/User").json["name"] == "User"
    assert api.get("/ResourceTypes/user").status_code == 200
    assert api.get("/ResourceTypes/Widget").status_code == 404


def test_schemas_describe_every_attribute_entra_maps(api):
    response = api.get("/Schemas")
    ids = [schema["id"] for schema in response.json["Resources"]]
    assert {USER, GROUP, ENTERPRISE} <= set(ids)
    user = api.get(f"/Schemas/{USER}").json
    assert user["description"] == "User Account"
    attributes = {attribute["name"]: attribute for attribute in user["attributes"]}
    assert attributes["userName"]["uniqueness"] == "server"
    assert attributes["userName"]["required"] is True
    assert attributes["password"]["returned"] == "never"
    assert attributes["groups"]["mutability"] == "readOnly"
    email = {sub["name"]: sub for sub in attributes["emails"]["subAttributes"]}
    assert email["value"]["type"] == "string"
    address = {sub["name"] for sub in attributes["addresses"]["subAttributes"]}
    assert {"streetAddress", "locality", "region", "postalCode", "country"} <= address
    enterprise = api.get(f"/Schemas/{ENTERPRISE}").json
    manager = next(a for a in enterprise["attributes"] if a["name"] == "manager")
    assert {sub["name"] for sub in manager["subAttributes"]} == {"value", "$ref", "displayName"}
    assert api.get("/Schemas/urn:nope").status_code == 404


def test_every_url_follows_the_host_scheme_and_mount_point_of_its_request(api):
    """The base URL is the request's (RFC 7644 section 3.1), however many requests came before."""
    for _ in range(2):
        for base, expected in [
            ("http://localhost", "http://localhost/scim/v2"),
            ("https://hub.example", "https://hub.example/scim/v2"),
            ("http://hub.example:8080", "http://hub.example:8080/scim/v2"),
            ("https://hub.example/tenant-a/", "https://hub.example/tenant-a/scim/v2"),
            ("https://xn--bcher-kva.example", "https://bücher.example/scim/v2"),
        ]:
            config = api.get("/ServiceProviderConfig", base_url=base).json
            assert config["meta"]["location"] == f"{expected}/ServiceProviderConfig"
            created = api.post(
                "/Users", json={"schemas": [USER], "userName": f"{base}-{_}"}, base_url=base
            )
            user_id = created.json["id"]
            assert created.json["meta"]["location"] == f"{expected}/Users/{user_id}"
            assert created.headers["Location"] == iri_to_uri(f"{expected}/Users/{user_id}")
            found = api.get(f"/Users/{user_id}", base_url=base).json
            assert found["meta"]["location"] == f"{expected}/Users/{user_id}"
