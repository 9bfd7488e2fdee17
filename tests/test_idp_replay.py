"""Okta's and Microsoft Entra ID's real request sequences, replayed against the app.

Each ``*.json`` file in ``tests/replay/`` is one scenario: the requests an IdP
sends over a lifecycle, in order, each with what the IdP needs back. The step
format and the expectation keys are described in ``tests/replay/README.md``.

Every scenario runs against a fresh organization, on SQLite and on PostgreSQL;
a file may set ``app_settings`` (``rate_limited_idp.json`` lowers the rate limit).
All steps run even after one fails (a later step often shows what the failure
did); a step whose placeholder was never captured is reported, not sent. The
failure message lists every failing step with its id, note and response body.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse
from werkzeug.wrappers import Response

from tests.fixtures_app import ScimClient

REPLAY_DIR = Path(__file__).parent / "replay"
SCENARIO_FILES = sorted(REPLAY_DIR.glob("*.json"))
PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")
EXPECT_KINDS = frozenset(
    {
        "status",
        "content_type",
        "body_empty",
        "headers",
        "json",
        "present",
        "absent",
        "empty",
        "contains",
        "set_equals",
        "type",
        "len",
    }
)
_MISSING = object()


class UnresolvedPlaceholder(Exception):
    """A step names a value no earlier step captured."""


@dataclass
class Replay:
    """The state carried from step to step within one scenario."""

    token: str
    values: dict[str, str] = field(default_factory=dict)

    def substitute(self, data: Any, fresh_guid: str) -> Any:
        """``data`` with ``{token}``, ``{randomGuid}`` and captured ``{name}`` filled in."""
        if isinstance(data, str):
            return PLACEHOLDER.sub(lambda match: self._value(match.group(1), fresh_guid), data)
        if isinstance(data, list):
            return [self.substitute(item, fresh_guid) for item in data]
        if isinstance(data, dict):
            return {
                self.substitute(key, fresh_guid): self.substitute(value, fresh_guid)
                for key, value in data.items()
            }
        return data

    def _value(self, name: str, fresh_guid: str) -> str:
        if name == "token":
            return self.token
        if name == "randomGuid":
            return fresh_guid
        if name not in self.values:
            raise UnresolvedPlaceholder(name)
        return self.values[name]


# --- JSON pointers (RFC 6901), with "*" over array items and case-insensitive names ---


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        if token in node:
            return node[token]
        folded = token.casefold()
        for key, value in node.items():
            if key.casefold() == folded:
                return value
        return _MISSING
    if isinstance(node, list) and token.isdigit():
        index = int(token)
        return node[index] if index < len(node) else _MISSING
    return _MISSING


def resolve(document: Any, pointer: str) -> list[Any]:
    """Every value ``pointer`` reaches in ``document`` (several with ``*``, none if absent)."""
    if pointer == "":
        return [document]
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    nodes = [document]
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        reached: list[Any] = []
        for node in nodes:
            if token == "*" and isinstance(node, list):
                reached.extend(node)
            else:
                child = _child(node, token)
                if child is not _MISSING:
                    reached.append(child)
        nodes = reached
    return nodes


def _is_wildcard(pointer: str) -> bool:
    return "*" in pointer.split("/")


def _one(document: Any, pointer: str) -> Any:
    values = resolve(document, pointer)
    if _is_wildcard(pointer):
        return values
    return values[0] if values else _MISSING


def _show(value: Any) -> str:
    return "<absent>" if value is _MISSING else json.dumps(value)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True)


_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "boolean": (bool,),
    "integer": (int,),
}


def _has_type(value: Any, expected: str) -> bool:
    if expected == "integer" and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES[expected])


# --- Checking one response against one step's expect ---


def check(expect: Mapping[str, Any], response: Response) -> list[str]:
    """The ways ``response`` misses ``expect`` (empty when it meets every expectation)."""
    problems: list[str] = []
    unknown = set(expect) - EXPECT_KINDS
    if unknown:
        problems.append(f"unknown expect kinds {sorted(unknown)}")

    wanted_status = expect.get("status")
    if wanted_status is not None:
        accepted = wanted_status if isinstance(wanted_status, list) else [wanted_status]
        if response.status_code not in accepted:
            problems.append(f"status {response.status_code}, expected {accepted}")

    content_type = expect.get("content_type")
    if content_type is not None and not (response.content_type or "").startswith(content_type):
        problems.append(f"Content-Type {response.content_type!r}, expected {content_type!r}...")

    raw = response.get_data()
    if expect.get("body_empty") and raw.strip():
        problems.append("body should be empty")

    for name, pattern in expect.get("headers", {}).items():
        value = response.headers.get(name)
        if value is None or not re.search(pattern, value):
            problems.append(f"header {name}: {value!r} does not match /{pattern}/")

    document: Any = _MISSING
    if raw.strip():
        try:
            document = json.loads(raw)
        except ValueError:
            document = _MISSING
    needs_json = EXPECT_KINDS - {
        "status",
        "content_type",
        "body_empty",
        "headers",
        "absent",
        "empty",
    }
    if document is _MISSING and needs_json & set(expect):
        problems.append("body is not JSON")
        return problems
    problems.extend(_check_document(expect, document))
    return problems


def _check_document(expect: Mapping[str, Any], document: Any) -> list[str]:
    problems: list[str] = []
    for pointer, value in expect.get("json", {}).items():
        found = _one(document, pointer)
        if found != value or (isinstance(value, bool) != isinstance(found, bool)):
            problems.append(f"{pointer} is {_show(found)}, expected {json.dumps(value)}")
    for pointer in expect.get("present", []):
        if not resolve(document, pointer):
            problems.append(f"{pointer} should be present")
    for pointer in expect.get("absent", []):
        if document is not _MISSING and resolve(document, pointer):
            problems.append(f"{pointer} should be absent, is {_show(_one(document, pointer))}")
    for pointer in expect.get("empty", []):
        found = _one(document, pointer) if document is not _MISSING else _MISSING
        if found not in (_MISSING, None, "", [], {}):
            problems.append(f"{pointer} should be empty, is {_show(found)}")
    for pointer, wanted in expect.get("contains", {}).items():
        found = _one(document, pointer)
        haystack = found if isinstance(found, list) else []
        for item in wanted if isinstance(wanted, list) else [wanted]:
            if item not in haystack:
                problems.append(f"{pointer} ({_show(found)}) should contain {json.dumps(item)}")
    for pointer, wanted in expect.get("set_equals", {}).items():
        found = resolve(document, pointer)
        if {_hashable(v) for v in found} != {_hashable(v) for v in wanted}:
            problems.append(
                f"{pointer} is {json.dumps(found)}, expected the set {json.dumps(wanted)}"
            )
    for pointer, expected_type in expect.get("type", {}).items():
        found = _one(document, pointer)
        if found is _MISSING or not _has_type(found, expected_type):
            problems.append(f"{pointer} is {_show(found)}, expected a {expected_type}")
    for pointer, length in expect.get("len", {}).items():
        found = _one(document, pointer)
        if not isinstance(found, list) or len(found) != length:
            problems.append(f"{pointer} is {_show(found)}, expected an array of {length}")
    return problems


# --- Running a scenario ---


@dataclass
class StepFailure:
    step: Mapping[str, Any]
    problems: list[str]
    response: TestResponse | None = None

    def report(self) -> str:
        step = self.step
        lines = [
            f"step {step['id']} [{step.get('stage', '')}] {step['method']} {step['path']}",
            f"  note: {step.get('note') or '-'} ({step.get('confidence', '?')}; "
            f"{step.get('source', 'no source')})",
        ]
        lines.extend(f"  - {problem}" for problem in self.problems)
        if self.response is not None:
            body = self.response.get_data(as_text=True)
            if len(body) > 1500:
                body = body[:1500] + "..."
            lines.append(f"  response {self.response.status_code}: {body or '<empty>'}")
        return "\n".join(lines)


def _send(scim: ScimClient, step: Mapping[str, Any]) -> TestResponse:
    headers: dict[str, str | None] = dict(step.get("headers") or {})
    kwargs: dict[str, Any] = {}
    if step.get("body_raw") is not None:
        kwargs["data"] = step["body_raw"]
    elif step.get("body") is not None:
        kwargs["data"] = json.dumps(step["body"])
    if "data" in kwargs:
        headers.setdefault("Content-Type", "application/scim+json")
    # The step's Authorization header (with {token}) stands in for the fixture's.
    headers.setdefault("Authorization", None)
    return scim.request(step["method"], step["path"], headers=headers, **kwargs)


def run_scenario(scim: ScimClient, steps: list[Mapping[str, Any]]) -> list[StepFailure]:
    """Send every step in order; return the failing ones."""
    assert scim.token is not None
    replay = Replay(token=scim.token)
    failures: list[StepFailure] = []
    for raw_step in steps:
        try:
            step = replay.substitute(raw_step, fresh_guid=str(uuid.uuid4()))
        except UnresolvedPlaceholder as missing:
            failures.append(StepFailure(raw_step, [f"not sent: {{{missing}}} was never captured"]))
            continue
        response = _send(scim, step)
        problems = check(step["expect"], response)
        for name, pointer in (step.get("capture") or {}).items():
            document = response.get_json(silent=True)
            found = _one(document, pointer) if document is not None else _MISSING
            if isinstance(found, str):
                replay.values[name] = found
            else:
                problems.append(f"capture {name}: {pointer} is {_show(found)}")
        if problems:
            failures.append(StepFailure(step, problems, response))
    return failures


def load_steps(path: Path) -> list[Mapping[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    steps: list[Mapping[str, Any]] = document["steps"] if isinstance(document, dict) else document
    return steps


SCENARIOS = [pytest.param(path, id=path.stem) for path in SCENARIO_FILES]


def test_replay_files_are_well_formed() -> None:
    """Every step names its origin and uses only the documented expect kinds."""
    assert SCENARIO_FILES, f"no scenario files in {REPLAY_DIR}"
    for path in SCENARIO_FILES:
        steps = load_steps(path)
        ids = [step["id"] for step in steps]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate step ids"
        for step in steps:
            assert step["method"] in {"GET", "POST", "PUT", "PATCH", "DELETE"}, step["id"]
            assert step["path"].startswith("/"), step["id"]
            assert set(step["expect"]) <= EXPECT_KINDS, step["id"]
            assert step["confidence"] in {"documented", "vendor-test", "observed", "inferred"}
            assert "note" in step, step["id"]
            assert step.get("source"), step["id"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_idp_scenario(app_factory: Callable[..., Flask], scim_token: str, scenario: Path) -> None:
    """One IdP lifecycle, replayed step by step against a fresh organization.

    A scenario may set ``app_settings`` (for example a low rate limit); otherwise
    the app runs with the test defaults.
    """
    document = json.loads(scenario.read_text(encoding="utf-8"))
    settings = document.get("app_settings", {}) if isinstance(document, dict) else {}
    scim = ScimClient(app_factory(**settings).test_client(), scim_token)
    failures = run_scenario(scim, list(load_steps(scenario)))
    if failures:
        report = "\n\n".join(failure.report() for failure in failures)
        pytest.fail(f"{scenario.name}: {len(failures)} failing step(s)\n\n{report}", pytrace=False)


def _response(
    status: int, body: Any = None, content_type: str = "application/scim+json"
) -> Response:
    data = "" if body is None else json.dumps(body)
    return Response(data, status=status, content_type=content_type)


def test_checker_reports_each_kind_of_miss() -> None:
    """The runner's checks are not vacuous: each expect kind catches a wrong answer."""
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "Resources": [{"id": "u1", "Active": False, "members": [{"value": "a"}, {"value": "b"}]}],
    }
    response = _response(200, body)
    assert check({"status": 200, "json": {"/resources/0/active": False}}, response) == []
    assert check({"set_equals": {"/Resources/0/members/*/value": ["b", "a"]}}, response) == []
    misses: dict[str, dict[str, Any]] = {
        "status": {"status": [201, 204]},
        "content_type": {"content_type": "application/json"},
        "body_empty": {"body_empty": True},
        "headers": {"headers": {"Location": ".+"}},
        "json": {"json": {"/totalResults": True}},
        "present": {"present": ["/Resources/0/meta"]},
        "absent": {"absent": ["/Resources/0/members"]},
        "empty": {"empty": ["/Resources"]},
        "contains": {"contains": {"/Resources/*/id": ["u2"]}},
        "set_equals": {"set_equals": {"/Resources/0/members/*/value": ["a"]}},
        "type": {"type": {"/totalResults": "boolean"}},
        "len": {"len": {"/Resources": 2}},
    }
    assert set(misses) == EXPECT_KINDS
    for kind, expect in misses.items():
        assert check(expect, response), f"{kind} did not catch a wrong answer"
    assert check({"status": 204, "body_empty": True, "absent": ["/password"]}, _response(204)) == []
