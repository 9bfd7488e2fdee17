"""Lists and searches: filters, paging, sorting, projection (RFC 7644 sections 3.4.2 and 3.4.3)."""

import pytest

from scim.settings import ScimSettings
from tests.fake_backend import ScimClient, group, make_scim_app, user

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def protocol_settings():
    return ScimSettings(default_page_size=3, max_page_size=4)


@pytest.fixture
def directory(api):
    names = ["carol", "alice", "eve", "bob", "dave"]
    return {
        name: api.post(
            "/Users",
            user(
                f"{name}@example.com",
                displayName=name.title(),
                active=name != "eve",
                emails=[{"value": f"{name}@example.com", "type": "work"}],
            ),
        ).json["id"]
        for name in names
    }


def user_names(response):
    return [resource["userName"] for resource in response.json["Resources"]]


def test_okta_lookup_miss_is_200_with_empty_resources(api):
    response = api.get(
        "/Users?filter=userName%20eq%20%22ada.lovelace%40example.com%22&startIndex=1&count=100"
    )
    assert response.status_code == 200
    assert response.content_type == "application/scim+json"
    assert response.json == {
        "schemas": [LIST_RESPONSE],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_username_lookup_is_case_insensitive(api, directory):
    response = api.get('/Users?filter=userName eq "ALICE@example.com"')
    assert response.json["totalResults"] == 1
    assert response.json["Resources"][0]["id"] == directory["alice"]


def test_unknown_attribute_matches_nothing(api, directory):
    response = api.get('/Users?filter=shoeSize eq "42"')
    assert response.status_code == 200
    assert response.json["totalResults"] == 0
    either = api.get('/Users?filter=shoeSize eq "42" or userName eq "bob@example.com"')
    assert either.json["totalResults"] == 1


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'userName zz "x"',
        "active gt true",
        '(userName eq "x"',
        'emails[type eq "work"',
    ],
)
def test_invalid_filters_are_400_invalid_filter(api, expression):
    response = api.get("/Users", query_string={"filter": expression})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidFilter"


def test_value_path_and_extension_filters(api, directory):
    hit = api.get('/Users?filter=emails[type eq "work" and value co "alice"]')
    assert user_names(hit) == ["alice@example.com"]
    entra = api.get('/Users?filter=emails[type eq "work"].value eq "bob@example.com"')
    assert entra.json["totalResults"] == 1


def test_filter_too_long_is_400(api):
    response = api.get("/Users", query_string={"filter": 'userName eq "' + "x" * 5000 + '"'})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidFilter"


def test_too_many_comparisons_is_400():
    app, _ = make_scim_app(ScimSettings(max_filter_comparisons=3))
    api = ScimClient(app)
    expression = " or ".join(f'userName eq "{n}"' for n in range(4))
    response = api.get("/Users", query_string={"filter": expression})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidFilter"
    assert "comparisons" in response.json["detail"]


def test_over_long_query_string_is_400_before_anything_else():
    app, provider = make_scim_app(ScimSettings(max_query_string_bytes=64))
    response = ScimClient(app).get("/Users", query_string={"filter": "x" * 100})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert provider.store.calls == []


def test_default_page_size_and_total(api, directory):
    response = api.get("/Users")
    assert response.json["totalResults"] == 5
    assert response.json["itemsPerPage"] == 3
    assert response.json["startIndex"] == 1


def test_count_is_capped_at_the_advertised_maximum(api, directory):
    response = api.get("/Users?count=50")
    assert response.json["itemsPerPage"] == 4
    assert response.json["totalResults"] == 5


def test_count_zero_gives_the_total_only(api, directory):
    response = api.get("/Users?count=0")
    assert response.json["totalResults"] == 5
    assert response.json["itemsPerPage"] == 0
    assert response.json["Resources"] == []


def test_negative_count_is_zero_and_start_index_below_one_is_one(api, directory):
    response = api.get("/Users?count=-3&startIndex=-7")
    assert response.json["startIndex"] == 1
    assert response.json["Resources"] == []
    assert response.json["totalResults"] == 5


def test_garbage_paging_is_400_invalid_value(api):
    response = api.get("/Users?count=many")
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"


def test_paging_through_sorted_results(api, directory):
    first = api.get("/Users?sortBy=userName&startIndex=1&count=2")
    second = api.get("/Users?sortBy=userName&startIndex=3&count=2")
    third = api.get("/Users?sortBy=userName&startIndex=5&count=2")
    assert user_names(first) == ["alice@example.com", "bob@example.com"]
    assert user_names(second) == ["carol@example.com", "dave@example.com"]
    assert user_names(third) == ["eve@example.com"]
    assert third.json["startIndex"] == 5


def test_sort_order_descending_in_any_case(api, directory):
    response = api.get("/Users?sortBy=userName&sortOrder=DESCENDING&count=2")
    assert user_names(response) == ["eve@example.com", "dave@example.com"]
    assert api.get("/Users?sortBy=userName&sortOrder=sideways").status_code == 400


def test_sort_key_reaches_the_backend_as_a_canonical_path(api, store, directory):
    api.get("/Users?sortBy=name.familyName")
    assert store.calls[-1][2].sort.attribute == "name.familyName"
    api.get("/Users?sortBy=emails")
    assert store.calls[-1][2].sort.attribute == "emails.value"
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    api.get(f"/Users?sortBy={enterprise}:department&sortOrder=descending")
    assert store.calls[-1][2].sort.attribute == f"{enterprise}:department"
    assert store.calls[-1][2].sort.descending


@pytest.mark.parametrize("sort_by", ["shoeSize", "name", "password"])
def test_unsortable_sort_by_is_400_invalid_path(api, sort_by):
    response = api.get(f"/Users?sortBy={sort_by}")
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidPath"


def test_attributes_projection_on_lists(api, directory):
    response = api.get('/Users?attributes=userName&filter=userName eq "bob@example.com"')
    assert response.json["totalResults"] == 1
    assert set(response.json["Resources"][0]) == {"schemas", "id", "userName"}


def test_users_search_by_post(api, directory):
    response = api.post(
        "/Users/.search",
        {
            "schemas": [SEARCH_REQUEST],
            "filter": "active eq false",
            "attributes": ["userName"],
            "startIndex": 1,
            "count": 10,
        },
    )
    assert response.status_code == 200
    assert user_names(response) == ["eve@example.com"]
    assert response.json["itemsPerPage"] == 1


def test_search_body_with_unknown_member_is_400(api):
    response = api.post("/Users/.search", {"schemas": [SEARCH_REQUEST], "colour": "blue"})
    assert response.status_code == 400


def test_root_search_spans_users_then_groups(api, directory):
    api.post("/Groups", group("alice team", directory["alice"]))
    response = api.post(
        "/.search",
        {"schemas": [SEARCH_REQUEST], "filter": 'userName sw "a" or displayName sw "a"'},
    )
    assert response.json["totalResults"] == 2
    kinds = [resource["meta"]["resourceType"] for resource in response.json["Resources"]]
    assert kinds == ["User", "Group"]
    paged = api.post(
        "/.search",
        {"filter": 'userName sw "a" or displayName sw "a"', "startIndex": 2, "count": 1},
    )
    assert paged.json["totalResults"] == 2
    assert paged.json["Resources"][0]["displayName"] == "alice team"


def test_groups_search_by_post(api, directory):
    api.post("/Groups", group("Hub Owners"))
    response = api.post("/Groups/.search", {"filter": 'displayName eq "hub owners"'})
    assert response.json["totalResults"] == 1


def test_list_documents_carry_meta_version_and_location(api, directory):
    resource = api.get(f'/Users?filter=id eq "{directory["bob"]}"').json["Resources"][0]
    assert resource["meta"]["version"].startswith('W/"')
    assert resource["meta"]["location"].endswith(f"/scim/v2/Users/{directory['bob']}")


def test_root_search_sorts_by_an_attribute_only_one_type_declares(api, directory):
    api.post("/Groups", group("alice team"))
    response = api.post("/.search", {"sortBy": "userName", "sortOrder": "descending"})
    assert response.status_code == 200
    names = [r.get("userName") or r.get("displayName") for r in response.json["Resources"]]
    assert names[:3] == ["eve@example.com", "dave@example.com", "carol@example.com"]
    assert api.post("/.search", {"sortBy": "shoeSize"}).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "count=2&startIndex=2",
        "count=-3&startIndex=-7",
        "sortBy=userName&sortOrder=DESCENDING&count=2",
        "attributes=userName,displayName&sortBy=userName",
        "excludedAttributes=emails&count=1",
        "count=many",
        "sortBy=shoeSize",
        "sortOrder=sideways",
    ],
)
def test_a_query_string_seen_before_gets_the_same_answer(api, directory, query):
    """Parameters validated once are remembered: a repeat answers as the first did."""
    answers = [api.get(f"/Users?{query}") for _ in range(3)]
    for answer in answers[1:]:
        assert answer.status_code == answers[0].status_code
        assert answer.json == answers[0].json


def test_parameters_valid_for_users_are_checked_again_for_groups(api, directory):
    assert api.get("/Users?sortBy=userName").status_code == 200
    response = api.get("/Groups?sortBy=userName")
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidPath"
