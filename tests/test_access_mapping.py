"""IT's mapping file (docs/rules.md#mapping-rules): each refusal with its line, and binding."""

from __future__ import annotations

import textwrap

import pytest

from connector.access.catalog import HUB_CATALOG, Catalog, Permission, Product
from connector.access.mapping import (
    GroupRef,
    MappingConfig,
    MappingError,
    MappingRule,
    ProductGrant,
    bind_rules,
    client_addresses,
    parse_mapping,
    rule_groups,
)
from connector.access.roles import Role

DOCUMENTED_EXAMPLE = """\
default_role = "member"        # role of a user in no role-mapped group
owner_fallback_role = "admin"  # role a held third Owner acts with
client_domains = ["clients.example.com"]  # email domains of Portal clients

[[rules]]
group = "Hub Owners"           # IdP group: externalId, or displayName case-insensitively
role = "owner"

[[rules]]
group = "PSA Technicians"
product = "psa"
product_roles = ["technician"]
permissions = ["psa.tickets.read", "psa.tickets.create"]
"""


def problems_of(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(textwrap.dedent(text))
    return [(problem.line, problem.message) for problem in caught.value.problems]


# The format


def test_the_documented_example_parses() -> None:
    config = parse_mapping(DOCUMENTED_EXAMPLE)
    assert config == MappingConfig(
        default_role=Role.MEMBER,
        owner_fallback_role=Role.ADMIN,
        client_domains=frozenset({"clients.example.com"}),
        map_scim_roles=False,
        rules=(
            MappingRule(1, group="Hub Owners", role=Role.OWNER),
            MappingRule(
                2,
                group="PSA Technicians",
                grant=ProductGrant(
                    "psa",
                    frozenset({"technician"}),
                    frozenset({"psa.tickets.read", "psa.tickets.create"}),
                ),
            ),
        ),
    )
    assert [rule.line for rule in config.rules] == [5, 9]


def test_an_empty_file_is_an_org_without_rules() -> None:
    assert parse_mapping("") == MappingConfig()
    assert MappingConfig().default_role is Role.MEMBER
    assert MappingConfig().owner_fallback_role is Role.ADMIN


def test_it_sets_the_default_and_fallback_roles() -> None:
    config = parse_mapping('default_role = "Viewer"\nowner_fallback_role = "member"\n')
    assert (config.default_role, config.owner_fallback_role) == (Role.VIEWER, Role.MEMBER)


def test_a_rule_may_map_a_role_and_a_product_at_once() -> None:
    config = parse_mapping(
        textwrap.dedent(
            """\
            [[rules]]
            name = "Service desk leads"
            group = "PSA Managers"
            role = "admin"
            product = "psa"
            product_roles = ["manager"]
            access = "staff"
            """
        )
    )
    [rule] = config.rules
    assert rule.role is Role.ADMIN
    assert rule.grant == ProductGrant("psa", frozenset({"manager"}))
    assert rule.describe() == 'rule 1 "Service desk leads" (group "PSA Managers")'


def test_entra_app_roles_map_when_the_org_enables_them() -> None:
    config = parse_mapping(
        textwrap.dedent(
            """\
            map_scim_roles = true

            [[rules]]
            scim_role = "hub-admin"
            role = "admin"

            [[rules]]
            scim_role = "Hub-Owner"
            role = "owner"
            """
        )
    )
    assert config.map_scim_roles
    assert [(rule.scim_role, rule.role) for rule in config.rules] == [
        ("hub-admin", Role.ADMIN),
        ("Hub-Owner", Role.OWNER),
    ]
    assert config.owner_rules == (config.rules[1],)
    assert config.rules[0].describe() == 'rule 1 (SCIM role "hub-admin")'


def test_client_domains_are_kept_lower_case() -> None:
    config = parse_mapping('client_domains = ["Clients.Example.com", "portal.example.org"]')
    assert config.client_domains == {"clients.example.com", "portal.example.org"}


def test_the_config_prints_as_json() -> None:
    printed = parse_mapping(DOCUMENTED_EXAMPLE).to_json()
    assert printed["rules"][1] == {
        "rule": 2,
        "line": 9,
        "group": "PSA Technicians",
        "product": "psa",
        "product_roles": ["technician"],
        "permissions": ["psa.tickets.create", "psa.tickets.read"],
    }


# Refusals: the whole file, every problem, each with its line


def test_an_unknown_role_names_its_line() -> None:
    text = """\
        [[rules]]
        group = "Hub Bosses"
        role = "boss"
        """
    assert problems_of(text) == [
        (3, 'rule 1: unknown role "boss" (expected one of owner, admin, member, viewer)')
    ]


def test_an_unknown_product_names_its_line() -> None:
    text = """\
        [[rules]]
        group = "Backup team"
        product = "backup"
        """
    [(line, message)] = problems_of(text)
    assert line == 3
    assert message.startswith('rule 1: unknown product "backup"')


def test_a_permission_names_the_line_of_its_value_in_a_long_list() -> None:
    text = """\
        [[rules]]
        group = "PSA Technicians"
        product = "psa"
        permissions = [
            "psa.tickets.read",
            "crm.contacts.read",   # another product's
            "psa.tickets.teleport",
        ]
        """
    assert problems_of(text) == [
        (6, 'rule 1: permission "crm.contacts.read" belongs to product "crm", not "psa"'),
        (7, 'rule 1: unknown permission "psa.tickets.teleport" in product "psa"'),
    ]


def test_an_unknown_product_role() -> None:
    text = """\
        [[rules]]
        group = "CRM"
        product = "crm"
        product_roles = ["sales", "wizard"]
        """
    [(line, message)] = problems_of(text)
    assert line == 4
    assert message.startswith('rule 1: unknown crm role "wizard" (expected one of ')


def test_a_client_access_mode_is_refused() -> None:
    text = """\
        [[rules]]
        group = "Client contacts"
        product = "psa"
        product_roles = ["portal_contact"]
        access = "client"
        """
    problems = problems_of(text)
    assert [line for line, _ in problems] == [4, 5]
    assert "client access" in problems[0][1]
    assert "Portal's user system" in problems[1][1]


def test_an_unknown_access_mode() -> None:
    text = """\
        [[rules]]
        group = "Techs"
        product = "psa"
        access = "everyone"
        """
    assert problems_of(text) == [(4, 'rule 1: unknown access "everyone" (expected "staff")')]


def test_a_toml_syntax_error_names_its_line() -> None:
    text = """\
        default_role = "member"

        [[rules]]
        group = "Hub Owners
        role = "owner"
        """
    [(line, message)] = problems_of(text)
    assert line == 4
    assert message.startswith("TOML syntax: ")


def test_a_key_given_twice_names_its_line() -> None:
    text = """\
        [[rules]]
        group = "Hub Owners"
        role = "owner"
        role = "admin"
        """
    [(line, message)] = problems_of(text)
    assert line == 4
    assert "TOML syntax" in message


def test_a_top_level_key_given_twice_names_its_line() -> None:
    # tomllib reports this one "at end of document"; the line is found by re-parsing prefixes.
    [(line, message)] = problems_of('default_role = "member"\n\ndefault_role = "viewer"\n')
    assert (line, message) == (3, "TOML syntax: Cannot overwrite a value")


def test_a_rule_without_a_group() -> None:
    text = """\
        [[rules]]
        group = "Hub Owners"
        role = "owner"

        [[rules]]
        role = "admin"
        """
    assert problems_of(text) == [(5, "rule 2: missing group (or scim_role, or when)")]


def test_a_rule_that_maps_nothing() -> None:
    assert problems_of('[[rules]]\ngroup = "Idle"\n') == [
        (1, "rule 1: maps nothing; give role, product, or both")
    ]


def test_a_rule_with_group_and_scim_role() -> None:
    text = """\
        map_scim_roles = true
        [[rules]]
        group = "Admins"
        scim_role = "hub-admin"
        role = "admin"
        """
    assert problems_of(text) == [
        (4, "rule 1: give one of group, scim_role or when, not group and scim_role")
    ]


def test_a_scim_role_rule_needs_the_org_flag() -> None:
    text = """\
        [[rules]]
        scim_role = "hub-admin"
        role = "admin"
        """
    [(line, message)] = problems_of(text)
    assert line == 2
    assert "map_scim_roles = true" in message


def test_grant_keys_need_a_product() -> None:
    text = """\
        [[rules]]
        group = "Techs"
        role = "member"
        permissions = ["psa.tickets.read"]
        """
    assert problems_of(text) == [(4, "rule 1: permissions needs a product")]


def test_unknown_keys_at_top_and_in_rules() -> None:
    text = """\
        default_rol = "member"

        [[rules]]
        group = "Hub Owners"
        role = "owner"
        colour = "gold"
        """
    problems = problems_of(text)
    assert [line for line, _ in problems] == [1, 6]
    assert problems[0][1].startswith('unknown key "default_rol" (expected one of default_role,')
    assert problems[1][1].startswith('rule 1: unknown key "colour"')


def test_a_rule_sub_table_is_an_unknown_key() -> None:
    text = """\
        [[rules]]
        group = "Techs"
        role = "member"
        [rules.grant]
        product = "psa"
        """
    [(line, message)] = problems_of(text)
    assert message.startswith('rule 1: unknown key "grant"')
    assert line == 1


def test_duplicate_rules_name_both_lines() -> None:
    text = """\
        [[rules]]
        group = "Hub Owners"
        role = "owner"

        [[rules]]
        group = "hub owners"
        role = "admin"

        [[rules]]
        group = "PSA"
        product = "psa"

        [[rules]]
        group = "PSA"
        product = "psa"
        permissions = ["psa.tickets.read"]
        """
    assert problems_of(text) == [
        (5, 'rule 2 duplicates rule 1 (line 1): group "Hub Owners" already maps a role'),
        (13, 'rule 4 duplicates rule 3 (line 9): group "PSA" already maps product "psa"'),
    ]


def test_one_group_may_map_a_role_and_several_products_in_separate_rules() -> None:
    text = """\
        [[rules]]
        group = "Techs"
        role = "member"
        [[rules]]
        group = "Techs"
        product = "psa"
        [[rules]]
        group = "Techs"
        product = "rmm"
        """
    assert len(parse_mapping(textwrap.dedent(text)).rules) == 3


@pytest.mark.parametrize("key", ["default_role", "owner_fallback_role"])
def test_owner_is_never_a_default_or_fallback(key: str) -> None:
    [(line, message)] = problems_of(f'\n{key} = "owner"\n')
    assert line == 2
    assert message.startswith(f"{key} cannot be owner")


def test_malformed_top_level_values() -> None:
    text = """\
        client_domains = ["clients.example.com", "bob@clients.example.com", "not a domain", 7]
        map_scim_roles = "yes"
        """
    problems = problems_of(text)
    assert [line for line, _ in problems] == [1, 1, 1, 2]
    messages = " | ".join(message for _, message in problems)
    assert "must be a domain, not an address" in messages
    assert '"not a domain" is not a domain name' in messages
    assert "client domain 7 must be a string" in messages
    assert "map_scim_roles must be true or false" in messages


def test_rules_must_be_tables() -> None:
    assert problems_of("rules = [1, 2]\n") == [(1, "rules must be [[rules]] tables")]
    assert problems_of('\n[rules]\ngroup = "A"\n') == [(2, "rules must be [[rules]] tables")]


def test_rules_written_as_an_inline_array_point_at_the_array() -> None:
    text = """\
        default_role = "member"
        rules = [
            { group = "Hub Owners", role = "owner" },
            { group = "Bosses", role = "boss" },
        ]
        """
    assert problems_of(text) == [
        (2, 'rule 2: unknown role "boss" (expected one of owner, admin, member, viewer)')
    ]
    config = parse_mapping('rules = [{ group = "Hub Owners", role = "owner" }]')
    assert config.rules[0].role is Role.OWNER


def test_malformed_rule_values() -> None:
    text = """\
        [[rules]]
        group = ""
        role = 3
        product = "psa"
        permissions = "psa.tickets.read"
        """
    problems = problems_of(text)
    assert problems == [
        (2, "rule 1: group must be a non-empty string"),
        (3, "rule 1: role must be a string"),
        (5, "rule 1: permissions must be a list of strings"),
    ]


def test_every_problem_of_the_file_comes_at_once_in_line_order() -> None:
    text = """\
        default_role = "chief"
        surprise = true

        [[rules]]
        group = "Hub Owners"
        role = "owner"

        [[rules]]
        group = "Techs"
        product = "psa"
        permissions = ["psa.tickets.read", "rmm.scripts.run"]
        access = "client"

        [[rules]]
        group = "Nobody"
        """
    with pytest.raises(MappingError) as caught:
        parse_mapping(textwrap.dedent(text), source="acme.toml")
    error = caught.value
    assert [problem.line for problem in error.problems] == [1, 2, 11, 12, 14]
    report = str(error).splitlines()
    assert report[0] == "acme.toml: refused, 5 problems"
    assert report[1].startswith('acme.toml:1: unknown role "chief"')
    assert error.to_json()["problems"][0]["line"] == 1


def test_lines_stay_right_around_comments_strings_and_inline_arrays() -> None:
    text = '''\
        # [[rules]] in a comment is not a rule
        [[rules]]
        name = """a name
        [[rules]]
        across lines"""
        group = "A [[rules]] group"
        role = "viewer"

        [[rules]]   # the second rule
        "group" = "Techs"
        product = "psa"
        permissions = [ "psa.tickets.read", [
        ], "psa.nope" ]
        '''
    # A nested array is valid TOML but not a list of strings; without it, the bad value's line.
    assert problems_of(text) == [(12, "rule 2: permissions must be a list of strings")]
    fixed = text.replace(", [\n        ]", "")
    assert problems_of(fixed) == [(12, 'rule 2: unknown permission "psa.nope" in product "psa"')]


def test_a_multi_line_array_is_not_mistaken_for_tables() -> None:
    text = """\
        [[rules]]
        group = "Techs"
        product = "psa"
        permissions = [
            ["nested"],
        ]
        [[rules]]
        group = "Leads"
        role = "chief"
        """
    assert problems_of(text) == [
        (4, "rule 1: permissions must be a list of strings"),
        (9, 'rule 2: unknown role "chief" (expected one of owner, admin, member, viewer)'),
    ]


def test_a_custom_catalog_validates_its_own_products() -> None:
    backup = Product("backup", "Backup", (Permission("backup.jobs.read", True),), ())
    catalog = Catalog([*HUB_CATALOG, backup])
    text = '[[rules]]\ngroup = "Backup"\nproduct = "backup"\npermissions = ["backup.jobs.read"]\n'
    assert parse_mapping(text, catalog=catalog).rules[0].grant == ProductGrant(
        "backup", permissions=frozenset({"backup.jobs.read"})
    )
    with pytest.raises(MappingError):
        parse_mapping(text)


# Binding rules to groups


OWNERS_AND_TECHS = parse_mapping(DOCUMENTED_EXAMPLE)


def test_a_rule_binds_to_a_group_by_display_name_case_insensitively() -> None:
    bindings = bind_rules(
        OWNERS_AND_TECHS,
        [GroupRef("g-own", None, "HUB OWNERS"), GroupRef("g-psa", "okta-00g1", "psa technicians")],
    )
    assert bindings.by_key == {"hub owners": "g-own", "psa technicians": "g-psa"}
    assert bindings.newly_bound == bindings.by_key
    assert bindings.by_rule(OWNERS_AND_TECHS) == {1: "g-own", 2: "g-psa"}


def test_a_rule_binds_by_external_id_before_display_name() -> None:
    config = parse_mapping('[[rules]]\ngroup = "7f3c-OWNERS"\nrole = "owner"\n')
    bindings = bind_rules(
        config,
        [GroupRef("g-named", None, "7f3c-owners"), GroupRef("g-ext", "7F3C-owners", "Hub Owners")],
    )
    assert bindings.by_key == {"7f3c-owners": "g-ext"}


def test_a_bound_rule_stays_with_its_group_when_the_idp_renames_it() -> None:
    first = bind_rules(OWNERS_AND_TECHS, [GroupRef("g-own", None, "Hub Owners")])
    renamed = [GroupRef("g-own", None, "Leadership"), GroupRef("g-new", None, "Hub Owners")]
    again = bind_rules(OWNERS_AND_TECHS, renamed, existing=first.by_key)
    assert again.by_key["hub owners"] == "g-own"
    assert again.newly_bound == {}


def test_unmatched_references_wait_for_a_group_to_be_pushed() -> None:
    first = bind_rules(OWNERS_AND_TECHS, [GroupRef("g-own", None, "Hub Owners")])
    assert first.unmatched == ("psa technicians",)
    # A later Group Push creates the group: only it is offered, the rest is kept.
    later = bind_rules(
        OWNERS_AND_TECHS, [GroupRef("g-psa", None, "PSA Technicians")], existing=first.by_key
    )
    assert later.by_key == {"hub owners": "g-own", "psa technicians": "g-psa"}
    assert later.newly_bound == {"psa technicians": "g-psa"}
    assert later.unmatched == ()


def test_an_ambiguous_reference_binds_to_nothing() -> None:
    bindings = bind_rules(
        OWNERS_AND_TECHS, [GroupRef("g-b", None, "Hub Owners"), GroupRef("g-a", None, "hub owners")]
    )
    assert bindings.ambiguous == {"hub owners": ("g-a", "g-b")}
    assert "hub owners" not in bindings.by_key


def test_bindings_of_rules_no_longer_in_the_file_are_dropped() -> None:
    existing = {"hub owners": "g-own", "old group": "g-old"}
    bindings = bind_rules(OWNERS_AND_TECHS, [], existing=existing)
    assert bindings.by_key == {"hub owners": "g-own"}


def test_rules_naming_the_same_group_share_one_binding() -> None:
    config = parse_mapping(
        '[[rules]]\ngroup = "Techs"\nrole = "member"\n[[rules]]\ngroup = "TECHS"\nproduct = "rmm"\n'
    )
    assert config.group_keys == ("techs",)
    assert rule_groups(config, {"techs": "g1"}) == {1: "g1", 2: "g1"}


# Staff and client identities stay apart


def test_client_addresses_are_found_by_exact_domain() -> None:
    config = parse_mapping(DOCUMENTED_EXAMPLE)
    addresses = [
        "tech@msp.example.com",
        "Jane@Clients.Example.com",
        "bob@sub.clients.example.com",
        "not-an-address",
    ]
    assert client_addresses(config, addresses) == ("Jane@Clients.Example.com",)
