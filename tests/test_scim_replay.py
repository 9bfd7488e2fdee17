"""Okta's and Entra ID's recorded lifecycles, replayed against the protocol layer.

Each IdP's steps of ``tests/replay/samples/idp_lifecycle.json`` run in order
against a fresh in-memory backend; the real store is replayed in
``tests/test_idp_replay.py``. The expectation keys are described in
``tests/replay/README.md``.
"""

import json
import re
import uuid
from typing import Any

import pytest

from tests.fake_backend import ScimClient, make_scim_app
from tests.idp_samples import lifecycle_steps

MISSING = object()


def substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    if isinstance(value, dict):
        return {substitute(k, variables): substitute(v, variables) for k, v in value.items()}
    return value


def resolve(document: Any, pointer: str) -> list[Any]:
    """Every value a JSON Pointer reaches, ``*`` spanning array items, names case-insensitive."""
    values = [document]
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        reached = []
        for value in values:
            if token == "*" and isinstance(value, list):
                reached.extend(value)
            elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
                reached.append(value[int(token)])
            elif isinstance(value, dict):
                key = next((k for k in value if k.lower() == token.lower()), None)
                if key is not None:
                    reached.append(value[key])
        values = reached
    return values


def check(step: dict[str, Any], response: Any, variables: dict[str, str]) -> None:
    expect = substitute(step["expect"], variables)
    label = f"{step['id']}: {response.status_code} {response.get_data(as_text=True)[:400]}"
    statuses = expect["status"] if isinstance(expect["status"], list) else [expect["status"]]
    assert response.status_code in statuses, label
    if "content_type" in expect:
        assert response.content_type.startswith(expect["content_type"]), label
    if expect.get("body_empty"):
        assert response.data == b"", label
    for name, pattern in expect.get("headers", {}).items():
        assert re.search(pattern, response.headers.get(name, "")), label
    body = response.json if response.data else None
    types = {"integer": int, "boolean": bool, "string": str, "array": list, "object": dict}
    for pointer, value in expect.get("json", {}).items():
        assert resolve(body, pointer) == [value], f"{label} at {pointer}"
    for pointer in expect.get("present", []):
        assert resolve(body, pointer), f"{label} lacks {pointer}"
    for pointer in expect.get("absent", []):
        assert not resolve(body, pointer), f"{label} has {pointer}"
    for pointer in expect.get("empty", []):
        assert all(value in (None, "", [], {}) for value in resolve(body, pointer)), label
    for pointer, wanted in expect.get("contains", {}).items():
        found = resolve(body, pointer)
        found = found[0] if len(found) == 1 and isinstance(found[0], list) else found
        for item in wanted if isinstance(wanted, list) else [wanted]:
            assert item in found, f"{label}: {item} not in {pointer}"
    for pointer, wanted in expect.get("set_equals", {}).items():
        assert set(resolve(body, pointer)) == set(wanted), f"{label} at {pointer}"
    for pointer, kind in expect.get("type", {}).items():
        values = resolve(body, pointer)
        assert values, f"{label} lacks {pointer}"
        assert all(isinstance(value, types[kind]) for value in values), f"{label} at {pointer}"
        if kind == "integer":
            assert not any(isinstance(value, bool) for value in values), label
    for pointer, length in expect.get("len", {}).items():
        assert [len(value) for value in resolve(body, pointer)] == [length], label


@pytest.mark.parametrize("idp", ["okta", "entra"])
def test_idp_lifecycle_replays(idp):
    app, _ = make_scim_app()
    client = ScimClient(app)
    variables = {"token": "test-token", "randomGuid": str(uuid.uuid4())}
    for step in lifecycle_steps(idp):
        headers = {
            name: value
            for name, value in substitute(step["headers"], variables).items()
            if name.lower() != "authorization"
        }
        kwargs: dict[str, Any] = {"headers": headers}
        if step.get("body") is not None:
            kwargs["data"] = json.dumps(substitute(step["body"], variables))
        elif "body_raw" in step:
            kwargs["data"] = step["body_raw"]
        response = client.client.open(
            "/scim/v2" + substitute(step["path"], variables), method=step["method"], **kwargs
        )
        check(step, response, variables)
        for name, pointer in (step.get("capture") or {}).items():
            variables[name] = resolve(response.json, pointer)[0]
