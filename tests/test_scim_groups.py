"""Groups over the SCIM blueprint: membership as deltas, 204 after PATCH, members never loaded."""

import pytest

from scim.backend import MemberChanges, ResourceKind
from tests.fake_backend import group, patch_op, user

GROUP = ResourceKind.GROUP
MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


@pytest.fixture
def people(api):
    return [api.post("/Users", user(f"user{n}@example.com")).json["id"] for n in range(4)]


def member_values(body):
    return sorted(member["value"] for member in body.get("members", []))


def last_write(store):
    return next(
        call for call in reversed(store.calls) if call[0] in ("create", "replace", "update_members")
    )


def test_okta_group_push_creates_with_members_as_a_delta(api, store, people):
    response = api.post("/Groups", group("Hub Owners", people[0]))
    assert response.status_code == 201
    assert member_values(response.json) == [people[0]]
    assert response.json["members"][0]["$ref"] == f"http://localhost/scim/v2/Users/{people[0]}"
    assert last_write(store) == ("create", GROUP, MemberChanges(add=frozenset({people[0]})))


def test_okta_member_labels_travel_in_the_delta_and_come_back(api, store, people):
    body = group("Hub Owners")
    body["members"] = [{"value": people[0], "display": "Ada (Ops)"}, {"value": people[1]}]
    gid = api.post("/Groups", body).json["id"]
    assert last_write(store)[2].display == {people[0]: "Ada (Ops)"}

    response = api.patch(
        f"/Groups/{gid}",
        patch_op(
            {"op": "add", "path": "members", "value": [{"value": people[1], "display": "Bob"}]}
        ),
    )
    assert response.status_code == 204
    assert last_write(store)[3] == MemberChanges(
        add=frozenset({people[1]}), display={people[1]: "Bob"}
    )
    shown = {
        member["value"]: member["display"] for member in api.get(f"/Groups/{gid}").json["members"]
    }
    assert shown == {people[0]: "Ada (Ops)", people[1]: "Bob"}


def test_entra_group_create_with_microsoft_schema_is_accepted_and_not_echoed(api):
    response = api.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", MICROSOFT_GROUP],
            "externalId": "8aa1a0c0",
            "displayName": "Hub-Admins",
            "meta": {"resourceType": "Group"},
        },
    )
    assert response.status_code == 201
    assert response.json["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    assert response.json["externalId"] == "8aa1a0c0"
    assert "members" not in response.json


def test_duplicate_display_name_is_409(api):
    api.post("/Groups", group("Hub Owners"))
    response = api.post("/Groups", group("hub owners"))
    assert response.status_code == 409
    assert response.json["scimType"] == "uniqueness"


def test_member_that_is_not_a_user_is_400_naming_it(api):
    response = api.post("/Groups", group("Hub Owners", "ghost"))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert "ghost" in response.json["detail"]


def test_patch_members_answers_204_and_never_reads_the_group(api, store, people):
    gid = api.post("/Groups", group("Hub Owners", people[0])).json["id"]
    store.calls.clear()
    response = api.patch(
        f"/Groups/{gid}",
        patch_op(
            {"op": "remove", "path": f'members[value eq "{people[0]}"]'},
            {"op": "add", "path": "members", "value": [{"value": people[1]}]},
        ),
    )
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["ETag"].startswith('W/"')
    assert [call for call in store.calls if call[0] == "get"] == []
    write = last_write(store)
    assert write[0] == "update_members"
    assert write[3] == MemberChanges(add=frozenset({people[1]}), remove=frozenset({people[0]}))
    assert member_values(api.get(f"/Groups/{gid}").json) == [people[1]]


def test_patch_with_attributes_answers_200_with_the_group(api, people):
    gid = api.post("/Groups", group("Hub Owners")).json["id"]
    response = api.patch(
        f"/Groups/{gid}?excludedAttributes=members",
        patch_op({"op": "add", "path": "members", "value": [{"value": people[0]}]}),
    )
    assert response.status_code == 200
    assert response.json["displayName"] == "Hub Owners"
    assert "members" not in response.json
    response = api.patch(
        f"/Groups/{gid}?attributes=members",
        patch_op({"op": "add", "path": "members", "value": [{"value": people[1]}]}),
    )
    assert response.status_code == 200
    assert member_values(response.json) == sorted(people[:2])


def test_okta_rename_carrying_the_group_id_is_accepted(api, people):
    gid = api.post("/Groups", group("Hub Owners", people[0])).json["id"]
    response = api.patch(
        f"/Groups/{gid}",
        patch_op({"op": "replace", "value": {"id": gid, "displayName": "Hub Owners EMEA"}}),
    )
    assert response.status_code == 204
    renamed = api.get(f"/Groups/{gid}").json
    assert renamed["displayName"] == "Hub Owners EMEA"
    assert member_values(renamed) == [people[0]]


def test_rename_to_the_same_name_writes_nothing(api, store):
    gid = api.post("/Groups", group("Hub Owners")).json["id"]
    store.calls.clear()
    response = api.patch(
        f"/Groups/{gid}", patch_op({"op": "replace", "value": {"displayName": "Hub Owners"}})
    )
    assert response.status_code == 204
    assert not [call for call in store.calls if call[0] == "replace"]


def test_entra_batch_add_then_remove_by_value_list(api, people):
    gid = api.post("/Groups", group("Hub-Admins")).json["id"]
    api.patch(
        f"/Groups/{gid}",
        patch_op(
            {
                "op": "Add",
                "path": "members",
                "value": [{"$ref": None, "value": person} for person in people],
            }
        ),
    )
    response = api.patch(
        f"/Groups/{gid}",
        patch_op({"op": "Remove", "path": "members", "value": [{"value": people[3]}]}),
    )
    assert response.status_code == 204
    assert member_values(api.get(f"/Groups/{gid}").json) == sorted(people[:3])


def test_adding_an_existing_member_is_a_noop(api, people):
    gid = api.post("/Groups", group("Hub Owners", people[0])).json["id"]
    response = api.patch(
        f"/Groups/{gid}",
        patch_op({"op": "add", "path": "members", "value": [{"value": people[0]}]}),
    )
    assert response.status_code == 204
    assert member_values(api.get(f"/Groups/{gid}").json) == [people[0]]


def test_bare_members_remove_empties_the_group(api, people):
    gid = api.post("/Groups", group("Hub Owners", *people)).json["id"]
    api.patch(f"/Groups/{gid}", patch_op({"op": "remove", "path": "members"}))
    assert "members" not in api.get(f"/Groups/{gid}").json


def test_rename_and_membership_in_one_patch_apply_together(api, store, people):
    gid = api.post("/Groups", group("Hub Owners")).json["id"]
    api.patch(
        f"/Groups/{gid}",
        patch_op(
            {"op": "replace", "path": "displayName", "value": "Hub Admins"},
            {"op": "add", "path": "members", "value": [{"value": people[0]}]},
        ),
    )
    body = api.get(f"/Groups/{gid}").json
    assert body["displayName"] == "Hub Admins"
    assert member_values(body) == [people[0]]
    assert len([call for call in store.calls if call[0] == "replace"]) == 1


def test_a_failing_operation_applies_nothing(api, people):
    gid = api.post("/Groups", group("Hub Owners")).json["id"]
    response = api.patch(
        f"/Groups/{gid}",
        patch_op(
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": "ghost"}]},
        ),
    )
    assert response.status_code == 400
    body = api.get(f"/Groups/{gid}").json
    assert body["displayName"] == "Hub Owners"
    assert "members" not in body


def test_okta_put_replaces_the_member_set(api, store, people):
    gid = api.post("/Groups", group("Hub Owners", people[0], people[1])).json["id"]
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": gid,
        "displayName": "Hub Owners EMEA",
        "members": [{"value": people[1], "display": "x"}, {"value": people[2]}],
        "meta": {"resourceType": "Group"},
    }
    for _ in range(2):
        response = api.put(f"/Groups/{gid}", body)
        assert response.status_code == 200
        assert member_values(response.json) == sorted(people[1:3])
        assert last_write(store)[3] == MemberChanges(
            replace=frozenset(people[1:3]), display={people[1]: "x"}
        )


def test_group_list_excluding_members_does_not_load_them(api, store, people):
    api.post("/Groups", group("Hub-Admins", people[0]))
    response = api.get('/Groups?excludedAttributes=members&filter=displayName eq "Hub-Admins"')
    assert response.json["totalResults"] == 1
    assert "members" not in response.json["Resources"][0]
    assert store.calls[-1][2].include_members is False


def test_membership_check_filter(api, people):
    gid = api.post("/Groups", group("Hub-Admins", people[0])).json["id"]
    hit = api.get(f'/Groups?filter=id eq "{gid}" and members[value eq "{people[0]}"]')
    miss = api.get(f'/Groups?filter=id eq "{gid}" and members[value eq "{people[1]}"]')
    assert hit.json["totalResults"] == 1
    assert miss.json["totalResults"] == 0
    assert miss.json["Resources"] == []


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": "nope", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "displayName[", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "remove", "path": "displayName"}, "mutability"),
        ({"op": "frobnicate", "path": "displayName", "value": "x"}, "invalidValue"),
        ({"op": "remove", "path": 'members[display eq "x"]'}, "invalidPath"),
    ],
)
def test_bad_patch_operations_answer_400_with_scim_type(api, operation, scim_type):
    gid = api.post("/Groups", group("Hub Owners")).json["id"]
    response = api.patch(f"/Groups/{gid}", patch_op(operation))
    assert response.status_code == 400
    assert response.json["scimType"] == scim_type


def test_patch_unknown_group_is_404(api):
    response = api.patch(
        "/Groups/nope", patch_op({"op": "add", "path": "members", "value": [{"value": "x"}]})
    )
    assert response.status_code == 404


def test_delete_group_keeps_its_users(api, people):
    gid = api.post("/Groups", group("Hub Owners", people[0])).json["id"]
    assert api.delete(f"/Groups/{gid}").status_code == 204
    assert api.get(f"/Users/{people[0]}").status_code == 200
