"""Group member operations become one O(k) delta (RFC 7644 section 3.5.2), whatever the dialect."""

import pytest
from scim2_models import InvalidPathException, InvalidValueException

from scim.backend import MemberChanges
from scim.membership import creation_changes, replacement_changes, split_member_operations


def members(*ids: str) -> list[dict[str, object]]:
    return [{"value": member_id} for member_id in ids]


def labelled(**labels: str) -> list[dict[str, object]]:
    return [{"value": member_id, "display": label} for member_id, label in labels.items()]


def test_okta_push_adds_members_by_value_list():
    others, delta = split_member_operations(
        [{"op": "add", "path": "members", "value": members("u1", "u2")}]
    )
    assert others == []
    assert delta == MemberChanges(add=frozenset({"u1", "u2"}))


def test_okta_removal_by_value_filter_and_add_in_one_request():
    others, delta = split_member_operations(
        [
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "add", "path": "members", "value": members("u2")},
        ]
    )
    assert others == []
    assert delta == MemberChanges(add=frozenset({"u2"}), remove=frozenset({"u1"}))


def test_several_value_eq_joined_by_or_remove_each():
    _, delta = split_member_operations(
        [{"op": "remove", "path": 'members[value eq "u1" or value eq "u2"]'}]
    )
    assert delta == MemberChanges(remove=frozenset({"u1", "u2"}))


def test_entra_removes_members_by_value_list_not_all_of_them():
    _, delta = split_member_operations(
        [{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]
    )
    assert delta == MemberChanges(remove=frozenset({"u1", "u2"}))
    assert not delta.remove_all


def test_entra_capitalized_add_with_null_refs():
    _, delta = split_member_operations(
        [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}]}]
    )
    assert delta == MemberChanges(add=frozenset({"u1"}))


def test_bare_members_remove_means_remove_all():
    _, delta = split_member_operations([{"op": "remove", "path": "members"}])
    assert delta == MemberChanges(remove_all=True)


def test_remove_with_empty_value_list_removes_nothing():
    _, delta = split_member_operations([{"op": "remove", "path": "members", "value": []}])
    assert delta.is_empty()


def test_replace_members_is_the_new_member_set():
    _, delta = split_member_operations(
        [{"op": "replace", "path": "members", "value": members("u1", "u2")}]
    )
    assert delta == MemberChanges(replace=frozenset({"u1", "u2"}))


def test_replace_with_empty_list_empties_the_group():
    _, delta = split_member_operations([{"op": "replace", "path": "members", "value": []}])
    assert delta == MemberChanges(replace=frozenset())


def test_operations_fold_in_request_order():
    _, delta = split_member_operations(
        [
            {"op": "add", "path": "members", "value": members("u1")},
            {"op": "remove", "path": 'members[value eq "u1"]'},
            {"op": "remove", "path": "members", "value": members("u2")},
            {"op": "add", "path": "members", "value": members("u2")},
        ]
    )
    assert delta == MemberChanges(add=frozenset({"u2"}), remove=frozenset({"u1"}))


def test_remove_all_then_add_keeps_only_the_added():
    _, delta = split_member_operations(
        [
            {"op": "add", "path": "members", "value": members("u9")},
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": members("u1", "u2")},
            {"op": "remove", "path": 'members[value eq "u2"]'},
        ]
    )
    assert delta == MemberChanges(add=frozenset({"u1"}), remove_all=True)


def test_changes_after_a_replace_edit_the_new_set():
    _, delta = split_member_operations(
        [
            {"op": "replace", "path": "members", "value": members("u1", "u2")},
            {"op": "add", "path": "members", "value": members("u3")},
            {"op": "remove", "path": 'members[value eq "u1"]'},
        ]
    )
    assert delta == MemberChanges(replace=frozenset({"u2", "u3"}))


def test_no_path_value_is_split_between_members_and_other_attributes():
    others, delta = split_member_operations(
        [{"op": "add", "value": {"displayName": "Hub Owners", "members": members("u1")}}]
    )
    assert delta == MemberChanges(add=frozenset({"u1"}))
    assert others == [{"op": "add", "value": {"displayName": "Hub Owners"}}]


def test_no_path_replace_of_members_replaces_the_set():
    others, delta = split_member_operations([{"op": "replace", "value": {"members": []}}])
    assert others == []
    assert delta == MemberChanges(replace=frozenset())


def test_other_attributes_pass_through_untouched_and_in_order():
    rename = {"op": "replace", "value": {"id": "g1", "displayName": "Hub Owners EMEA"}}
    external = {"op": "Replace", "path": "externalId", "value": "x"}
    others, delta = split_member_operations([rename, external])
    assert others == [rename, external]
    assert delta.is_empty()


def test_urn_qualified_members_path():
    _, delta = split_member_operations(
        [
            {
                "op": "add",
                "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members",
                "value": members("u1"),
            }
        ]
    )
    assert delta == MemberChanges(add=frozenset({"u1"}))


@pytest.mark.parametrize(
    "path",
    [
        'members[display eq "Ada"]',
        'members[value ne "u1"]',
        'members[value eq "u1" and type eq "User"]',
    ],
)
def test_member_filters_other_than_value_eq_are_refused(path):
    with pytest.raises(InvalidPathException):
        split_member_operations([{"op": "remove", "path": path}])


def test_member_sub_attributes_cannot_be_patched():
    with pytest.raises(InvalidPathException):
        split_member_operations([{"op": "replace", "path": "members.display", "value": "x"}])


@pytest.mark.parametrize("value", [[{"display": "no value"}], [{"value": ""}], [{"value": 3}]])
def test_members_without_a_value_are_refused(value):
    with pytest.raises(InvalidValueException):
        split_member_operations([{"op": "add", "path": "members", "value": value}])


def test_add_without_value_is_refused():
    with pytest.raises(InvalidValueException):
        split_member_operations([{"op": "add", "path": "members"}])


def test_okta_push_carries_each_members_display():
    _, delta = split_member_operations(
        [
            {
                "op": "add",
                "path": "members",
                "value": [*labelled(u1="ada@example.com"), {"value": "u2", "display": ""}],
            }
        ]
    )
    assert delta == MemberChanges(add=frozenset({"u1", "u2"}), display={"u1": "ada@example.com"})


def test_a_replace_carries_the_labels_of_the_new_set():
    _, delta = split_member_operations(
        [{"op": "replace", "path": "members", "value": [*labelled(u1="Ada"), {"value": "u2"}]}]
    )
    assert delta == MemberChanges(replace=frozenset({"u1", "u2"}), display={"u1": "Ada"})


def test_labels_fold_in_request_order():
    _, delta = split_member_operations(
        [
            {"op": "add", "path": "members", "value": labelled(u1="old", u2="Bob", u3="Cy")},
            {"op": "add", "path": "members", "value": labelled(u1="new")},
            {"op": "add", "path": "members", "value": members("u1", "u2")},
            {"op": "remove", "path": 'members[value eq "u3"]'},
        ]
    )
    assert delta == MemberChanges(
        add=frozenset({"u1", "u2"}), remove=frozenset({"u3"}), display={"u1": "new", "u2": "Bob"}
    )


def test_remove_all_forgets_the_labels_sent_before_it():
    _, delta = split_member_operations(
        [
            {"op": "add", "path": "members", "value": labelled(u1="Ada")},
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": members("u1")},
        ]
    )
    assert delta == MemberChanges(add=frozenset({"u1"}), remove_all=True)


def test_no_path_add_of_members_carries_their_labels():
    _, delta = split_member_operations([{"op": "add", "value": {"members": labelled(u1="Ada")}}])
    assert delta == MemberChanges(add=frozenset({"u1"}), display={"u1": "Ada"})


def test_a_display_that_is_not_a_string_is_refused():
    with pytest.raises(InvalidValueException, match="u1"):
        split_member_operations(
            [{"op": "add", "path": "members", "value": [{"value": "u1", "display": 7}]}]
        )


def test_a_created_group_adds_its_members_with_their_labels():
    assert creation_changes(None) is None
    assert creation_changes([]) is None
    assert creation_changes([*labelled(u1="Ada"), {"value": "u2"}]) == MemberChanges(
        add=frozenset({"u1", "u2"}), display={"u1": "Ada"}
    )


def test_a_put_group_replaces_the_members_and_their_labels():
    assert replacement_changes(None) == MemberChanges(replace=frozenset())
    assert replacement_changes(labelled(u1="Ada", u2="Bob")) == MemberChanges(
        replace=frozenset({"u1", "u2"}), display={"u1": "Ada", "u2": "Bob"}
    )
