"""Hypothesis strategies for the reliability battery: SCIM and access API requests, hostile ones.

Each strategy draws a :class:`FuzzRequest`, a method, a path, a query and a
body as bytes. Paths may hold ``{user}`` and ``{group}``: the driver puts the
id of a resource that exists there (so PATCH and PUT reach the write path and
do not stop at 404), ``{missing}`` an id that does not. Bodies are what Okta
and Microsoft Entra ID send (docs/okta.md, docs/entra.md) mixed with what an
attacker or a broken client sends: values nested hundreds of levels deep,
numbers far beyond 64 bits, NaN, NUL and lone surrogates, wrong types,
unknown attributes and paths, filters with value paths, bytes that are not
UTF-8 and JSON cut short.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@dataclass(frozen=True)
class FuzzRequest:
    """One request to send; ``path`` is relative to the server's root."""

    kind: str
    method: str
    path: str
    query: str = ""
    body: bytes | None = None


# --- Scalars, friendly and hostile ------------------------------------------------------------

# Every code point, lone surrogates and NUL included (json.dumps escapes them).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
plain_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    min_size=1, max_size=20,
)  # fmt: skip
hostile_text = st.one_of(
    any_text,
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff\ud800", "\u202e", "\ufeff", "é" * 3]),
    st.integers(1_000, 300_000).map(lambda size: "x" * size),
)
huge_number = st.one_of(
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**400, -(10**400), 1e308, -0.0]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)


@dataclass(frozen=True)
class Deep:
    """A value nested ``depth`` times in lists or objects (RecursionError bait).

    Kept as JSON text: deeper than Python's own encoder would go.
    """

    depth: int
    as_list: bool

    def json(self) -> str:
        if self.as_list:
            return "[" * self.depth + '"x"' + "]" * self.depth
        return '{"a": ' * self.depth + '"x"' + "}" * self.depth


deep_value = st.builds(Deep, st.integers(50, 3_000), st.booleans())
json_leaf = st.one_of(st.none(), st.booleans(), huge_number, hostile_text)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(plain_text, any_text), children, max_size=4),
    ),
    max_leaves=12,
)
any_value = st.one_of(json_value, deep_value)

# Attribute paths: real ones, case variants, extension URNs, value paths, unknown and broken.
known_attribute = st.sampled_from(
    [
        "userName", "username", "USERNAME", "active", "displayName", "name.givenName",
        "name.familyName", "name", "emails", "emails.value", "phoneNumbers", "title",
        "externalId", "roles", "addresses", "members", "locale", "timezone", "nickName",
        f"{ENTERPRISE}:employeeNumber", f"{ENTERPRISE}:manager", f"{ENTERPRISE}:department",
        f"{USER_SCHEMA}:userName", "meta.lastModified", "meta.created", "id", "groups",
    ]
)  # fmt: skip
comparison = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Eq"])


@st.composite
def literal(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return json.dumps(draw(any_text))
    if choice == 1:
        return json.dumps(draw(huge_number))
    if choice == 2:
        return draw(st.sampled_from(["true", "false", "null", '"2024-01-01T00:00:00Z"']))
    if choice == 3:
        return draw(plain_text)  # unquoted: a syntax error
    return json.dumps(draw(plain_text))


@st.composite
def value_path(draw: st.DrawFn) -> str:
    attribute = draw(st.sampled_from(["emails", "members", "addresses", "roles", "phoneNumbers"]))
    inner = draw(filter_expression(depth=1))
    suffix = draw(st.sampled_from(["", ".value", ".display", ".type", ".primary", ".nope"]))
    return f"{attribute}[{inner}]{suffix}"


@st.composite
def filter_expression(draw: st.DrawFn, depth: int = 3) -> str:
    """RFC 7644 section 3.4.2.2 filters, mostly well formed, some broken on purpose."""
    choice = draw(st.integers(0, 9 if depth > 0 else 3))
    if choice <= 2:
        return f"{draw(known_attribute)} {draw(comparison)} {draw(literal())}"
    if choice == 3:
        return f"{draw(known_attribute)} pr"
    if choice == 4:
        return draw(value_path())
    if choice == 5:
        return f"not ({draw(filter_expression(depth - 1))})"
    if choice == 6:
        joiner = draw(st.sampled_from([" and ", " or ", " AND ", " oR "]))
        terms = draw(st.lists(filter_expression(depth - 1), min_size=2, max_size=6))
        return joiner.join(terms)
    if choice == 7:
        return "(" * draw(st.integers(1, 2_000)) + 'userName eq "a"'
    if choice == 8:
        return draw(any_text)
    return " or ".join(['emails[value co "9" and not (type eq "w")]'] * draw(st.integers(1, 60)))


# --- Documents ---------------------------------------------------------------------------------


@st.composite
def user_document(draw: st.DrawFn) -> Any:
    """A User as Okta or Entra sends it, with any attribute possibly replaced by junk."""
    name = draw(plain_text)
    document: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ENTERPRISE] if draw(st.booleans()) else [USER_SCHEMA],
        "userName": f"fz-{name}@example.com",
        "active": draw(st.sampled_from([True, False, "True", "False"])),
        "name": {"givenName": draw(plain_text), "familyName": draw(plain_text)},
        "emails": [{"value": f"fz-{name}@example.com", "type": "work", "primary": True}],
        "externalId": draw(plain_text),
    }
    if draw(st.booleans()):
        document[ENTERPRISE] = {"employeeNumber": draw(plain_text), "department": draw(any_text)}
    if draw(st.booleans()):
        document["roles"] = [{"value": draw(any_text), "primary": draw(st.booleans())}]
    # Mostly documents an IdP could send; one in three carries junk somewhere.
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2, 3]))):
        document[draw(st.one_of(known_attribute, any_text))] = draw(any_value)
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    if draw(st.integers(0, 6)) == 0:
        document.pop(draw(st.sampled_from(sorted(document))), None)
    return document


@st.composite
def group_document(draw: st.DrawFn) -> Any:
    document: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "displayName": f"fz-{draw(plain_text)}",
        "members": draw(st.lists(member_value(), max_size=5)),
    }
    for _ in range(draw(st.integers(0, 2))):
        document[draw(st.one_of(known_attribute, any_text))] = draw(any_value)
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    return document


@st.composite
def member_value(draw: st.DrawFn) -> Any:
    choice = draw(st.integers(0, 6))
    if choice <= 3:
        return {"value": "{user}", "display": draw(plain_text)}
    if choice == 4:
        return {"value": "{missing}"}
    if choice == 5:
        return {"value": draw(any_value)}
    return draw(any_value)


# --- PATCH operations (RFC 7644 section 3.5.2, Okta and Entra dialects) ------------------------


@st.composite
def patch_operation(draw: st.DrawFn) -> Any:
    op = draw(st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove", "move"]))
    choice = draw(st.integers(0, 11))
    if choice == 0:  # Okta: replace without path, a partial document
        return {"op": op, "value": {"active": draw(st.sampled_from([True, False, "False"]))}}
    if choice == 1:  # Entra: the string forms
        return {"op": op, "path": "active", "value": draw(st.sampled_from(["True", "False", "x"]))}
    if choice == 2:  # group membership, Okta and Entra
        return {"op": op, "path": "members", "value": draw(st.lists(member_value(), max_size=4))}
    if choice == 3:  # Okta removal by value path
        return {"op": op, "path": 'members[value eq "{user}"]'}
    if choice == 4:  # Entra: filtered emails and enterprise attributes
        path = draw(
            st.sampled_from(
                [
                    'emails[type eq "work"].value', f"{ENTERPRISE}:manager",
                    f"{ENTERPRISE}:employeeNumber", 'addresses[type eq "work"].formatted',
                    "name.givenName", "displayName", 'roles[primary eq "True"].value',
                ]
            )
        )  # fmt: skip
        return {"op": op, "path": path, "value": draw(st.one_of(plain_text, any_value))}
    if choice == 5:
        return {"op": op, "path": draw(value_path()), "value": draw(any_value)}
    if choice == 6:
        return {
            "op": op,
            "path": draw(st.one_of(known_attribute, any_text)),
            "value": draw(any_value),
        }
    if choice == 7:  # Entra's roles with a JSON document in a string
        return {"op": op, "path": "roles", "value": [{"value": draw(deep_value).json()}]}
    if choice == 8:
        return {"op": op, "value": draw(any_value)}
    if choice == 9:
        return {"op": draw(any_value), "path": draw(any_value)}
    if choice == 10:
        return draw(any_value)
    return {"op": op, "path": draw(filter_expression(depth=1))}


@st.composite
def patch_body(draw: st.DrawFn) -> Any:
    operations = draw(st.lists(patch_operation(), min_size=0, max_size=8))
    if draw(st.integers(0, 19)) == 0:  # many small operations at once (the work cap's case)
        many = {"op": "replace", "path": 'emails[value eq "x@example.com"].display', "value": "y"}
        operations = [many] * draw(st.integers(100, 12_000))
    body: dict[str, Any] = {"schemas": [PATCH_SCHEMA], "Operations": operations}
    if draw(st.integers(0, 9)) == 0:
        body["schemas"] = draw(any_value)
    if draw(st.integers(0, 9)) == 0:
        body["Operations"] = draw(any_value)
    return body


# --- Bulk (RFC 7644 section 3.7) ---------------------------------------------------------------


@st.composite
def bulk_operation(draw: st.DrawFn) -> Any:
    method = draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "post"]))
    path = draw(
        st.sampled_from(
            ["/Users", "/Groups", "/Users/{user}", "/Groups/{group}", "/Users/bulkId:u1",
             "/Users/{missing}", "/Nope", ""]
        )
    )  # fmt: skip
    data: Any
    if path.startswith("/Groups"):
        data = draw(group_document()) if method.upper() != "PATCH" else draw(patch_body())
    else:
        data = draw(user_document()) if method.upper() != "PATCH" else draw(patch_body())
    operation: dict[str, Any] = {"method": method, "path": path, "bulkId": draw(plain_text)}
    if draw(st.integers(0, 3)):
        operation["data"] = data
    if draw(st.integers(0, 9)) == 0:
        operation[draw(st.sampled_from(["data", "method", "path", "bulkId", "version"]))] = draw(
            any_value
        )
    return operation


@st.composite
def bulk_body(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "schemas": [BULK_SCHEMA],
        "Operations": draw(st.lists(bulk_operation(), max_size=6)),
    }
    if draw(st.booleans()):
        body["failOnErrors"] = draw(st.one_of(st.integers(-2, 5), huge_number, any_value))
    if draw(st.integers(0, 9)) == 0:
        body["Operations"] = draw(any_value)
    return body


# --- Query parameters (RFC 7644 section 3.4.2) -------------------------------------------------


@st.composite
def list_query(draw: st.DrawFn) -> dict[str, str]:
    query: dict[str, str] = {}
    if draw(st.booleans()):
        query["filter"] = draw(filter_expression())
    if draw(st.booleans()):
        query["startIndex"] = str(draw(st.one_of(huge_number, st.integers(-5, 50), any_text)))
    if draw(st.booleans()):
        query["count"] = str(draw(st.one_of(huge_number, st.integers(-5, 2_000), any_text)))
    if draw(st.booleans()):
        query["sortBy"] = draw(st.one_of(known_attribute, any_text))
        query["sortOrder"] = draw(st.sampled_from(["ascending", "descending", "sideways"]))
    if draw(st.booleans()):
        key = draw(st.sampled_from(["attributes", "excludedAttributes"]))
        query[key] = ",".join(draw(st.lists(st.one_of(known_attribute, any_text), max_size=4)))
    return query


def encode_query(query: dict[str, str]) -> str:
    # Lone surrogates cannot be UTF-8 encoded: send them as the IdP's bug would, replaced.
    return urlencode({key: value.encode("utf-8", "surrogatepass") for key, value in query.items()})


def encode_body(value: Any, mode: int) -> bytes:
    """JSON as a client would send it; modes 1 and 2 break it (cut short, not UTF-8)."""
    deep: dict[str, Deep] = {}

    def placeholder(unknown: Any) -> str:
        if not isinstance(unknown, Deep):
            raise TypeError(type(unknown).__name__)
        key = f"@@deep{len(deep)}@@"
        deep[key] = unknown
        return key

    text = json.dumps(value, allow_nan=True, default=placeholder)
    for key, nested_value in deep.items():
        text = text.replace(json.dumps(key), nested_value.json(), 1)
    if mode == 1:
        return text[: max(1, len(text) // 2)].encode("utf-8", "surrogatepass")
    if mode == 2:
        return b"\xff\xfe" + text.encode("utf-8", "surrogatepass")[:200] + b"\xc3\x28"
    return text.encode("utf-8", "surrogatepass")


body_mode = st.integers(0, 19).map(lambda roll: 1 if roll == 0 else 2 if roll == 1 else 0)


_DOCUMENT_WRITES: dict[str, tuple[str, str, Callable[[], st.SearchStrategy[Any]]]] = {
    "create user": ("POST", "Users", user_document),
    "replace user": ("PUT", "Users/{user}", user_document),
    "patch user": ("PATCH", "Users/{user}", patch_body),
    "patch group": ("PATCH", "Groups/{group}", patch_body),
    "create group": ("POST", "Groups", group_document),
    "replace group": ("PUT", "Groups/{group}", group_document),
}
"""Requests whose body is one drawn document: method, path under /scim/v2, the document."""


@st.composite
def scim_request(draw: st.DrawFn) -> FuzzRequest:
    """One request to the SCIM API or the access API."""
    kind = draw(
        st.sampled_from(
            ["create user", "replace user", "patch user", "patch group", "create group",
             "replace group", "list", "search", "bulk", "get", "delete missing", "access",
             "authorize", "events", "unknown route"]
        )
    )  # fmt: skip
    mode = draw(body_mode)
    scim = "/scim/v2"
    if kind in _DOCUMENT_WRITES:
        method, target, document = _DOCUMENT_WRITES[kind]
        body = encode_body(draw(document()), mode)
        return FuzzRequest(kind, method, f"{scim}/{target}", body=body)
    if kind == "list":
        resource = draw(st.sampled_from(["Users", "Groups", "Users", ""]))
        path = f"{scim}/{resource}" if resource else scim + "/"
        return FuzzRequest(kind, "GET", path, query=encode_query(draw(list_query())))
    if kind == "search":
        resource = draw(st.sampled_from(["/Users", "/Groups", ""]))
        search: dict[str, Any] = {"schemas": [SEARCH_SCHEMA], **draw(list_query())}
        for key in ("startIndex", "count"):
            if key in search and draw(st.booleans()):
                search[key] = draw(st.one_of(huge_number, any_value))
        return FuzzRequest(
            kind, "POST", f"{scim}{resource}/.search", body=encode_body(search, mode)
        )
    if kind == "bulk":
        return FuzzRequest(kind, "POST", f"{scim}/Bulk", body=encode_body(draw(bulk_body()), mode))
    if kind == "get":
        target = draw(st.sampled_from(["Users/{user}", "Groups/{group}", "Users/{missing}"]))
        query = encode_query(draw(list_query()))
        return FuzzRequest(kind, "GET", f"{scim}/{target}", query=query)
    if kind == "delete missing":
        return FuzzRequest(kind, "DELETE", f"{scim}/Users/{{missing}}")
    if kind == "access":
        user = draw(st.sampled_from(["{user}", "{missing}", "{username}"]))
        return FuzzRequest(kind, "GET", f"/api/v1/access/{user}")
    if kind == "authorize":
        permission = draw(
            st.one_of(st.sampled_from(["psa.tickets.read", "rmm.devices.read"]), any_value)
        )
        body = encode_body(
            draw(st.one_of(st.just({"permission": permission}), any_value, deep_value)), mode
        )
        user = draw(st.sampled_from(["{user}", "{missing}", "{username}"]))
        return FuzzRequest(kind, "POST", f"/api/v1/access/{user}/authorize", body=body)
    if kind == "events":
        query = {
            "after": str(draw(st.one_of(huge_number, st.integers(-5, 100), any_text))),
            "limit": str(draw(st.one_of(huge_number, st.integers(-5, 2_000), any_text))),
        }
        return FuzzRequest(kind, "GET", "/api/v1/events", query=encode_query(query))
    segment = draw(st.sampled_from(["Nope", "Users/{user}/emails", "Schemas/x", "ResourceTypes/Q"]))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    return FuzzRequest(kind, method, f"{scim}/{segment}", body=encode_body(draw(any_value), mode))
