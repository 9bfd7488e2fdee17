"""A group member's ``display``: the label the IdP sent comes back, else the user's name.

RFC 7643 section 4.2: ``members.display`` is a human-readable label a client
may write. Okta sends one with each member it pushes and may PUT the whole
group; Entra ID sends members by ``value`` alone. Through the application
and the SQL store, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from tests.fixtures_app import ScimClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def new_user(scim: ScimClient, user_name: str, display_name: str | None = None) -> str:
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user_name}
    if display_name is not None:
        body["displayName"] = display_name
    response = scim.post("/Users", json=body)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def new_group(scim: ScimClient, name: str, members: list[dict[str, str]] | None = None) -> str:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name}
    if members is not None:
        body["members"] = members
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def patch_members(scim: ScimClient, group_id: str, *operations: dict[str, Any]) -> Any:
    return scim.patch(
        f"/Groups/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )


def put_group(scim: ScimClient, group_id: str, name: str, members: list[dict[str, str]]) -> Any:
    body = {"schemas": [GROUP_SCHEMA], "id": group_id, "displayName": name, "members": members}
    return scim.put(f"/Groups/{group_id}", json=body)


def shown(scim: ScimClient, group_id: str) -> dict[str, str]:
    """Each member's id and the ``display`` a GET answers for it."""
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.json
    return {member["value"]: member["display"] for member in response.json.get("members", [])}


def test_okta_push_adds_members_with_their_labels(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com")
    group = new_group(scim, "Hub Owners")

    response = patch_members(
        scim,
        group,
        {
            "op": "add",
            "path": "members",
            "value": [
                {"value": ada, "display": "ada@example.com"},
                {"value": bob, "display": "Bob (Ops)"},
            ],
        },
    )

    assert response.status_code == 204
    assert shown(scim, group) == {ada: "ada@example.com", bob: "Bob (Ops)"}


def test_entra_adds_members_without_labels_and_they_show_the_users_names(
    scim: ScimClient,
) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com")
    group = new_group(scim, "Hub-Admins")

    patch_members(
        scim, group, {"op": "Add", "path": "members", "value": [{"value": ada}, {"value": bob}]}
    )

    assert shown(scim, group) == {ada: "Ada Lovelace", bob: "bob@example.com"}


def test_a_group_created_with_labels_keeps_them(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com")

    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Hub Owners",
            "members": [{"value": ada, "display": "Countess"}, {"value": bob}],
        },
    )

    assert response.status_code == 201
    created = {member["value"]: member["display"] for member in response.json["members"]}
    assert created == {ada: "Countess", bob: "bob@example.com"}
    assert shown(scim, response.json["id"]) == created


def test_a_user_rename_shows_in_members_without_a_stored_label(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com", "Bob Smith")
    group = new_group(scim, "Hub Owners", [{"value": ada}, {"value": bob, "display": "Bob (Ops)"}])

    for user, name in ((ada, "Ada King"), (bob, "Robert Smith")):
        renamed = scim.patch(
            f"/Users/{user}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "displayName", "value": name}],
            },
        )
        assert renamed.status_code == 200

    assert shown(scim, group) == {ada: "Ada King", bob: "Bob (Ops)"}


def test_readding_a_member_with_a_label_relabels_it_and_without_one_keeps_it(
    scim: ScimClient,
) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    group = new_group(scim, "Hub Owners", [{"value": ada, "display": "Ada"}])

    patch_members(
        scim,
        group,
        {"op": "add", "path": "members", "value": [{"value": ada, "display": "Ada L."}]},
    )
    assert shown(scim, group) == {ada: "Ada L."}

    patch_members(scim, group, {"op": "add", "path": "members", "value": [{"value": ada}]})
    assert shown(scim, group) == {ada: "Ada L."}


def test_replacing_members_sets_exactly_the_labels_sent(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com")
    carol = new_user(scim, "carol@example.com", "Carol Shaw")
    group = new_group(
        scim, "Hub Owners", [{"value": ada, "display": "A"}, {"value": carol, "display": "C"}]
    )

    response = patch_members(
        scim,
        group,
        {
            "op": "replace",
            "path": "members",
            "value": [{"value": ada, "display": "Ada (new)"}, {"value": bob}, {"value": carol}],
        },
    )

    assert response.status_code == 204
    # Carol is kept but sent without a label: hers goes, her name shows.
    assert shown(scim, group) == {ada: "Ada (new)", bob: "bob@example.com", carol: "Carol Shaw"}


def test_okta_put_changing_one_label_changes_only_that_label(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com", "Bob Smith")
    group = new_group(scim, "Hub Owners")
    members = [{"value": ada, "display": "Ada"}, {"value": bob, "display": "Bob"}]
    assert put_group(scim, group, "Hub Owners", members).status_code == 200

    members[1] = {"value": bob, "display": "Bob (Ops)"}
    response = put_group(scim, group, "Hub Owners", members)

    assert response.status_code == 200
    answered = {member["value"]: member["display"] for member in response.json["members"]}
    assert answered == {ada: "Ada", bob: "Bob (Ops)"}
    assert shown(scim, group) == {ada: "Ada", bob: "Bob (Ops)"}

    put_group(scim, group, "Hub Owners", [{"value": ada}, {"value": bob}])
    assert shown(scim, group) == {ada: "Ada Lovelace", bob: "Bob Smith"}


def test_groups_are_found_by_the_label_they_show(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    labelled = new_group(scim, "Labelled", [{"value": ada, "display": "Countess"}])
    plain = new_group(scim, "Plain", [{"value": ada}])

    def found(filter_text: str) -> list[str]:
        response = scim.get("/Groups", query_string={"filter": filter_text})
        assert response.status_code == 200, response.json
        return [resource["id"] for resource in response.json["Resources"]]

    assert found('members[display eq "countess"]') == [labelled]
    assert found('members.display eq "Ada Lovelace"') == [plain]


def test_an_over_long_label_is_a_scim_400_and_changes_nothing(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com", "Ada Lovelace")
    bob = new_user(scim, "bob@example.com")
    group = new_group(scim, "Hub Owners", [{"value": ada, "display": "Ada"}])

    response = patch_members(
        scim,
        group,
        {
            "op": "add",
            "path": "members",
            "value": [{"value": ada, "display": "A" * 512}, {"value": bob, "display": "B" * 513}],
        },
    )

    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert bob in response.json["detail"]
    assert shown(scim, group) == {ada: "Ada"}
    response = put_group(scim, group, "Hub Owners", [{"value": ada, "display": "\x00"}])
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"


def test_a_label_that_is_not_a_string_is_a_scim_400(scim: ScimClient) -> None:
    ada = new_user(scim, "ada@example.com")
    group = new_group(scim, "Hub Owners")

    response = patch_members(
        scim, group, {"op": "add", "path": "members", "value": [{"value": ada, "display": 7}]}
    )

    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
