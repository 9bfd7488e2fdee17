"""IT at the command line: mapping groups to roles, products, grants, and seeing the result.

The commands run with click's runner against the test database (SQLite and
PostgreSQL) while the IdP pushes users and groups through the real SCIM app,
so each scenario reads as IT would live it: Okta pushed, IT maps, IT looks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import access as cli_access
from connector.errors import ANSWERS, InvalidInput, NotFound, Refused
from connector.trail.events import SIGNATURE_HEADER, verify
from tests.scenarios import (
    HUB_OWNERS,
    PSA_TECHNICIANS,
    AccessApi,
    Idp,
    Rule,
    add_roles,
    mapping,
    replace_roles,
)
from tests.webhook_receiver import Receiver, running

MAPPING = mapping(HUB_OWNERS, PSA_TECHNICIANS)

# Line 3: an unknown role; line 8: an unknown permission.
BAD_MAPPING = """\
[[rules]]
group = "Hub Owners"
role = "emperor"

[[rules]]
group = "PSA Technicians"
product = "psa"
permissions = ["psa.tickets.teleport"]
"""


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


@pytest.fixture
def bad_mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD_MAPPING, encoding="utf-8")
    return path


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


NOT_FOUND = ANSWERS[NotFound].exit_code
INVALID = ANSWERS[InvalidInput].exit_code


def fails_cleanly(result: Result, message: str, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def access_json(hub_scim: Callable[..., Result], org: str, user: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(hub_scim("access", "--org", org, user, "--json")).output)
    return data


# -- mapping ---------------------------------------------------------------------


def test_a_dry_run_previews_the_change_and_changes_nothing(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])
    before = access_json(hub_scim, org_name, ada)

    preview = ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file), "--dry-run"))

    assert "nothing was changed" in preview.output
    assert "owner" in preview.output
    assert access_json(hub_scim, org_name, ada) == before
    assert "no mapping" in ok(hub_scim("mapping", "show", "--org", org_name)).output


def test_applying_the_mapping_changes_access_and_show_prints_the_file(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])

    applied = ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    assert "Mapping applied." in applied.output
    assert access_json(hub_scim, org_name, "ada@msp.example")["role"] == "owner"
    assert ok(hub_scim("mapping", "show", "--org", org_name)).output == MAPPING


def test_the_dry_run_preview_as_json(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])

    result = ok(
        hub_scim("mapping", "apply", "--org", org_name, str(mapping_file), "--dry-run", "--json")
    )

    preview = json.loads(result.output)
    assert ada in json.dumps(preview)


def test_a_bad_file_names_every_line_and_changes_nothing(
    idp: Idp,
    hub_scim: Callable[..., Result],
    org_name: str,
    mapping_file: Path,
    bad_mapping_file: Path,
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    result = hub_scim("mapping", "apply", "--org", org_name, str(bad_mapping_file))

    fails_cleanly(result, f"{bad_mapping_file}:3:")
    assert f"{bad_mapping_file}:8:" in result.output
    assert "emperor" in result.output
    assert ok(hub_scim("mapping", "show", "--org", org_name)).output == MAPPING
    assert access_json(hub_scim, org_name, ada)["role"] == "owner"


def test_a_file_that_is_not_toml_is_refused_with_its_line(
    hub_scim: Callable[..., Result], org_name: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('default_role = "member"\n[[rules]\ngroup = "x"\n', encoding="utf-8")

    fails_cleanly(hub_scim("mapping", "apply", "--org", org_name, str(broken)), f"{broken}:2:")


def test_mapping_for_an_unknown_organization_is_one_error_line(
    hub_scim: Callable[..., Result], mapping_file: Path
) -> None:
    fails_cleanly(
        hub_scim("mapping", "apply", "--org", "nobody", str(mapping_file)),
        "no organization named 'nobody'",
        exit_code=NOT_FOUND,
    )


# -- products and grants ---------------------------------------------------------


def test_a_product_not_subscribed_keeps_its_grants_dormant_until_enabled(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    ok(hub_scim("product", "set", "--org", org_name, "psa", "not_subscribed"))
    dormant = access_json(hub_scim, org_name, ada)
    ok(hub_scim("product", "set", "--org", org_name, "psa", "trial"))
    counting = access_json(hub_scim, org_name, ada)

    assert "psa" in dormant["dormant"]
    assert "psa" not in dormant["products"]
    assert counting["products"]["psa"]["permissions"] == ["psa.tickets.create", "psa.tickets.read"]


def test_product_list_shows_every_product_and_its_state(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    ok(hub_scim("product", "set", "--org", org_name, "crm", "trial"))

    listed = json.loads(ok(hub_scim("product", "list", "--org", org_name, "--json")).output)
    table = ok(hub_scim("product", "list", "--org", org_name)).output

    assert listed == {
        "psa": "not_subscribed",
        "crm": "trial",
        "defend": "not_subscribed",
        "rmm": "not_subscribed",
    }
    assert "crm       trial" in table


def test_an_unknown_product_or_state_is_refused(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    fails_cleanly(
        hub_scim("product", "set", "--org", org_name, "spreadsheets", "active"),
        "Error:",
        exit_code=INVALID,
    )
    fails_cleanly(
        hub_scim("product", "set", "--org", org_name, "psa", "forever"), "forever", exit_code=2
    )


def test_a_manual_grant_counts_until_revoked(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str
) -> None:
    ada = idp.user("ada@msp.example")
    ok(hub_scim("product", "set", "--org", org_name, "rmm", "active"))

    ok(
        hub_scim(
            "grant", "--org", org_name, "ada@msp.example", "rmm",
            "--role", "technician", "--permission", "rmm.devices.read",
        )
    )  # fmt: skip
    granted = access_json(hub_scim, org_name, ada)
    ok(hub_scim("revoke", "--org", org_name, ada, "rmm"))
    revoked = access_json(hub_scim, org_name, ada)

    rmm = granted["products"]["rmm"]
    assert rmm["permissions"] == ["rmm.devices.read"]
    assert any(source["type"] == "manual" for source in rmm["sources"])
    assert "rmm" not in revoked["products"]


def test_a_grant_with_a_client_role_is_refused(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str
) -> None:
    idp.user("ada@msp.example")

    result = hub_scim(
        "grant", "--org", org_name, "ada@msp.example", "psa", "--role", "portal_contact"
    )

    fails_cleanly(result, "portal_contact", exit_code=INVALID)


def test_a_grant_to_an_unknown_user_is_one_error_line(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    fails_cleanly(
        hub_scim("grant", "--org", org_name, "nobody@msp.example", "psa"),
        "no user 'nobody@msp.example'",
        exit_code=NOT_FOUND,
    )


# -- seeing the result -----------------------------------------------------------


def test_access_json_is_exactly_what_products_read_from_the_api(
    idp: Idp,
    product: AccessApi,
    hub_scim: Callable[..., Result],
    org_name: str,
    mapping_file: Path,
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))
    ok(hub_scim("product", "set", "--org", org_name, "psa", "active"))

    printed = access_json(hub_scim, org_name, "ada@msp.example")
    served = product.effective_access(ada)

    assert printed == served
    assert {"active", "role", "held", "products", "dormant"} <= set(printed)
    assert set(printed["products"]["psa"]) >= {"roles", "permissions", "onboarding", "sources"}


def test_access_for_people_names_the_role_grants_and_rules(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))
    ok(hub_scim("product", "set", "--org", org_name, "psa", "active"))

    text = ok(hub_scim("access", "--org", org_name, "ada@msp.example")).output

    assert "Role:   member" in text
    assert "psa (onboarding pending): roles technician" in text
    assert "psa.tickets.create, psa.tickets.read" in text
    assert "PSA Technicians" in text


def test_access_of_an_unknown_user_is_one_error_line(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    fails_cleanly(
        hub_scim("access", "--org", org_name, "nobody@msp.example"),
        "no user 'nobody@msp.example'",
        exit_code=NOT_FOUND,
    )


def test_audit_json_is_one_object_per_line_with_actor_and_cause(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    lines = ok(hub_scim("audit", "--org", org_name, "--json")).output.splitlines()

    entries = [json.loads(line) for line in lines]
    assert entries
    for entry in entries:
        assert {"at", "actor", "action", "target", "before", "after", "reason"} <= set(entry)
    assert any(entry["actor"].startswith("cli") for entry in entries)
    ids = [entry["id"] for entry in entries]
    assert ids == sorted(ids)
    since = ok(hub_scim("audit", "--org", org_name, "--json", "--since", str(ids[0])))
    assert [json.loads(line)["id"] for line in since.output.splitlines()] == ids[1:]


def test_audit_for_people_is_one_line_per_entry(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str
) -> None:
    idp.user("ada@msp.example")
    ok(hub_scim("product", "set", "--org", org_name, "psa", "active"))

    text = ok(hub_scim("audit", "--org", org_name)).output
    as_json = ok(hub_scim("audit", "--org", org_name, "--json")).output

    assert len(text.splitlines()) == len(as_json.splitlines()) > 0


def test_health_fails_monitoring_for_an_org_without_an_owner(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    idp.user("ada@msp.example")
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    result = hub_scim("health", "--org", org_name)
    as_json = hub_scim("health", "--org", org_name, "--json")

    assert result.exit_code == cli_access.HEALTH_ATTENTION_EXIT_CODE, result.output
    assert "owner" in result.output.lower()
    assert as_json.exit_code == cli_access.HEALTH_ATTENTION_EXIT_CODE
    json.loads(as_json.output)


def test_health_passes_once_an_owner_is_seated_and_every_rule_has_its_group(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, mapping_file: Path
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("Hub Owners", [ada])
    idp.group("PSA Technicians", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    ok(hub_scim("health", "--org", org_name))


def test_health_warns_while_mapped_scim_roles_have_only_ever_been_added(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, tmp_path: Path
) -> None:
    app_roles = tmp_path / "app-roles.toml"
    app_roles.write_text(
        mapping(HUB_OWNERS, Rule(scim_role="Hub.Admin", role="admin"), map_scim_roles=True),
        encoding="utf-8",
    )
    ok(hub_scim("mapping", "apply", "--org", org_name, str(app_roles)))
    idp.group("Hub Owners", [idp.user("ada@msp.example")])
    bob = idp.user("bob@msp.example")
    ok(hub_scim("health", "--org", org_name))

    idp.patch(f"/Users/{bob}", add_roles("Hub.Admin"), status=200)

    result = hub_scim("health", "--org", org_name)
    as_json = json.loads(hub_scim("health", "--org", org_name, "--json").output)
    assert result.exit_code == cli_access.HEALTH_ATTENTION_EXIT_CODE, result.output
    assert "only ever added roles" in result.output
    assert "AssertiveAppRoleAssignmentsComplex" in result.output
    assert "SCIM roles only ever added, since " in result.output
    assert f"(first to bob@msp.example ({bob}))" in result.output
    assert as_json["roles_only_added"]["user_id"] == bob
    assert as_json["roles_only_added"]["userName"] == "bob@msp.example"

    idp.patch(f"/Users/{bob}", replace_roles(), status=200)

    ok(hub_scim("health", "--org", org_name))
    as_json = json.loads(ok(hub_scim("health", "--org", org_name, "--json")).output)
    assert as_json["roles_only_added"] is None


# -- webhooks --------------------------------------------------------------------


@pytest.fixture
def psa(monkeypatch: pytest.MonkeyPatch, runner: CliRunner) -> Iterator[Receiver]:
    """A product's webhook on loopback, which the operator's allow-list admits."""
    monkeypatch.setenv("HUB_SCIM_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    with running(Receiver()) as receiver:
        yield receiver


def test_a_webhook_receives_signed_events_once(
    idp: Idp,
    hub_scim: Callable[..., Result],
    org_name: str,
    mapping_file: Path,
    psa: Receiver,
) -> None:
    added = ok(hub_scim("webhook", "add", "--org", org_name, psa.url))
    secret = added.output.splitlines()[-1]
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    ok(hub_scim("mapping", "apply", "--org", org_name, str(mapping_file)))

    ok(hub_scim("events", "deliver", "--once", "--org", org_name))
    first_round = list(psa.received)
    ok(hub_scim("events", "deliver", "--once", "--org", org_name))

    assert first_round
    assert psa.received == first_round, "never twice"
    for received in first_round:
        signature = received.headers[SIGNATURE_HEADER]
        signed_at = int(signature.split(",")[0].removeprefix("t="))
        assert verify(secret, signature, received.body, now=signed_at)


def test_a_webhook_must_be_an_http_url(hub_scim: Callable[..., Result], org_name: str) -> None:
    fails_cleanly(
        hub_scim("webhook", "add", "--org", org_name, "ftp://psa.example"),
        "http",
        exit_code=INVALID,
    )


def test_a_webhook_to_the_metadata_service_is_refused(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    fails_cleanly(
        hub_scim("webhook", "add", "--org", org_name, "http://169.254.169.254/latest"),
        "link-local",
        exit_code=ANSWERS[Refused].exit_code,
    )


def test_it_lists_rotates_and_removes_a_webhook(
    hub_scim: Callable[..., Result], org_name: str, psa: Receiver
) -> None:
    added = ok(hub_scim("webhook", "add", "--org", org_name, psa.url))
    webhook_id = added.output.split()[2]
    old_secret = added.output.splitlines()[-1]

    rotated = ok(hub_scim("webhook", "rotate", "--org", org_name, webhook_id))
    listed = json.loads(ok(hub_scim("webhook", "list", "--org", org_name, "--json")).output)
    ok(hub_scim("webhook", "remove", "--org", org_name, webhook_id))
    after = ok(hub_scim("webhook", "list", "--org", org_name))

    assert rotated.output.splitlines()[-1] != old_secret
    assert [(hook["id"], hook["url"]) for hook in listed] == [(webhook_id, psa.url)]
    assert listed[0]["rotation_ends_at"] is not None
    assert old_secret not in json.dumps(listed)
    assert "no webhook" in after.output
    fails_cleanly(
        hub_scim("webhook", "remove", "--org", org_name, webhook_id),
        "no webhook",
        exit_code=NOT_FOUND,
    )
    trail = ok(hub_scim("audit", "--org", org_name)).output
    for action in ("webhook.added", "webhook.secret_rotated", "webhook.removed"):
        assert action in trail


def test_events_are_replayed_by_sequence(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str, psa: Receiver
) -> None:
    ok(
        hub_scim(
            "grant",
            "--org",
            org_name,
            idp.user("ada@msp.example"),
            "psa",
            "--permission",
            "psa.tickets.read",
        )
    )
    ok(hub_scim("webhook", "add", "--org", org_name, psa.url))

    replayed = ok(hub_scim("events", "replay", "--org", org_name, "--from", "1", "--to", "100"))
    ok(hub_scim("events", "deliver", "--once", "--org", org_name))

    assert "Queued" in replayed.output
    assert psa.received, "events from before the webhook existed were delivered"
    assert sorted(json.loads(r.body)["sequence"] for r in psa.received)[0] == 1
    fails_cleanly(
        hub_scim("events", "replay", "--org", org_name, "--from", "5", "--to", "1"),
        "must not be after",
        exit_code=INVALID,
    )


def test_a_grant_of_a_product_not_subscribed_says_it_is_dormant(
    idp: Idp, hub_scim: Callable[..., Result], org_name: str
) -> None:
    ada = idp.user("ada@msp.example")

    result = ok(
        hub_scim("grant", "--org", org_name, ada, "crm", "--permission", "crm.contacts.read")
    )

    assert "dormant until crm is enabled" in result.output
    assert "crm" in access_json(hub_scim, org_name, ada)["dormant"]


def test_the_deliverer_stops_after_its_rounds(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    ok(hub_scim("events", "deliver", "--rounds", "2", "--interval", "0.1", "--org", org_name))


def test_mapping_app_roles_prints_the_entra_manifest_entries(
    hub_scim: Callable[..., Result], org_name: str, tmp_path: Path
) -> None:
    app_roles = tmp_path / "app-roles.toml"
    app_roles.write_text(
        mapping(Rule(scim_role="Hub.Admin", role="admin"), map_scim_roles=True), encoding="utf-8"
    )
    ok(hub_scim("mapping", "apply", "--org", org_name, str(app_roles)))

    result = hub_scim("mapping", "app-roles", "--org", org_name)
    ok(result)
    listed = json.loads(result.output)
    assert [role["value"] for role in listed] == ["Owner", "Admin", "Member", "Viewer", "Hub.Admin"]
    assert {role["allowedMemberTypes"][0] for role in listed} == {"User"}
    assert all(role["isEnabled"] for role in listed)
    # The same values get the same ids every time: Entra keeps the assignments.
    again = json.loads(hub_scim("mapping", "app-roles", "--org", org_name).output)
    assert [role["id"] for role in again] == [role["id"] for role in listed]
    assert len({role["id"] for role in listed}) == 5


def test_mapping_app_roles_warns_when_roles_are_not_read(
    hub_scim: Callable[..., Result], org_name: str
) -> None:
    result = hub_scim("mapping", "app-roles", "--org", org_name)
    assert result.exit_code == 0
    assert "does not read SCIM roles" in result.stderr
