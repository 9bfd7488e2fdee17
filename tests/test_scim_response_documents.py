"""Responses without ``attributes``/``excludedAttributes`` are the stored document, unchanged.

The protocol layer stores what scim2-models dumped in the request context
(:func:`scim.representation.to_backend_document`), so a response that selects
no attributes is that document plus ``id``, ``meta`` and ``$ref``
(:func:`scim.representation.response_document`), with no second validation and
dump. These tests hold that shortcut to what scim2-models itself would answer:
every response of every recorded Okta and Entra lifecycle, and of scim2-tester's
checks, on the real store and both databases, is compared with the model's dump
in the response's context (RFC 7644 section 3.9, ``returned`` characteristics).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_models import Context, ResponseParameters
from scim2_tester import Status, check_server

import scim.blueprint
from scim import representation
from scim.backend import Document, ResourceKind, Stored
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from tests.fixtures_app import ScimClient
from tests.test_idp_replay import SCENARIOS, load_steps, run_scenario

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


class ComparedResponses:
    """Counts the responses compared; collects any that differ from the model's dump."""

    def __init__(self) -> None:
        self.compared = 0
        self.differences: list[str] = []

    def compare(self, what: str, fast: Document, dumped: Document) -> None:
        self.compared += 1
        if fast != dumped:
            self.differences.append(f"{what}:\n  stored: {fast}\n  dumped: {dumped}")


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComparedResponses]:
    """Every resource and list response of the app, checked against scim2-models' dump."""
    found = ComparedResponses()

    def resource_response(
        kind: ResourceKind,
        stored: Stored,
        base_url: str,
        context: Context,
        parameters: ResponseParameters[Any] | None,
        served: ServedSchemas = DEFAULT_SCHEMAS,
    ) -> Document:
        answer = representation.resource_response(
            kind, stored, base_url, context, parameters, served
        )
        if not representation.selects_attributes(parameters):
            dumped = representation.dumped_resource_response(
                kind, stored, base_url, context, parameters, served
            )
            found.compare(f"{kind.value} {stored.id}", answer, dumped)
        return answer

    def list_response(
        kinds: Sequence[ResourceKind],
        total: int,
        start_index: int,
        resources: Sequence[tuple[ResourceKind, Stored]],
        base_url: str,
        context: Context,
        parameters: ResponseParameters[Any] | None,
        served: ServedSchemas = DEFAULT_SCHEMAS,
    ) -> Document:
        arguments = (kinds, total, start_index, resources, base_url, context)
        answer = representation.list_response(*arguments, parameters, served)
        if not representation.selects_attributes(parameters):
            dumped = representation.dumped_list_response(*arguments, parameters, served)
            found.compare(f"ListResponse of {len(resources)}", answer, dumped)
        return answer

    monkeypatch.setattr(scim.blueprint, "resource_response", resource_response)
    monkeypatch.setattr(scim.blueprint, "list_response", list_response)
    yield found
    assert found.differences == []


LIFECYCLES = [
    scenario
    for scenario in SCENARIOS
    if "app_settings" not in json.loads(Path(scenario.values[0]).read_text(encoding="utf-8"))
]
"""The recorded lifecycles run with the default settings (not the rate-limit one)."""


@pytest.mark.parametrize("scenario", LIFECYCLES)
def test_idp_lifecycle_responses_match_the_models_dump(
    compared: ComparedResponses,
    app_factory: Callable[..., Flask],
    scim_token: str,
    scenario: Path,
) -> None:
    scim_client = ScimClient(app_factory().test_client(), scim_token)
    run_scenario(scim_client, list(load_steps(scenario)))
    assert compared.compared > 0


def test_scim2_tester_responses_match_the_models_dump(
    compared: ComparedResponses, app: Flask, scim_token: str
) -> None:
    client = WSGISCIMClient(
        app,
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {scim_token}"},
    )
    results = check_server(client, raise_exceptions=False)
    assert sum(result.status == Status.SUCCESS for result in results) > 100
    assert compared.compared > 100


def test_an_enterprise_user_with_groups_is_answered_as_the_model_dumps_it(
    compared: ComparedResponses, scim: ScimClient
) -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    manager = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "boss"}).json["id"]
    created = scim.post(
        "/Users",
        json={
            "schemas": [USER_SCHEMA, enterprise],
            "userName": "Ada@Example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
            "addresses": [{"streetAddress": "1 Main St", "locality": "Springfield"}],
            "active": True,
            "password": "never-stored",
            enterprise: {"employeeNumber": "42", "manager": {"value": manager}},
        },
    )
    assert created.status_code == 201
    group = scim.post(
        "/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": created.json["id"]}],
        },
    )
    assert group.status_code == 201
    assert scim.get(f"/Users/{created.json['id']}").status_code == 200
    assert scim.get(f"/Groups/{group.json['id']}").status_code == 200
    assert scim.get('/Users?filter=userName eq "ada@example.com"').json["totalResults"] == 1
    assert scim.get("/Groups").status_code == 200
    assert compared.compared >= 6
