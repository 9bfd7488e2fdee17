"""The python-scim project's scim2-tester, run against the blueprint over the in-memory backend.

Issue 2 asks for every check to pass. Two checks cannot yet: they PATCH a
group member with a ``display`` and expect it back, and the storage contract
(:class:`scim.backend.MemberChanges`) carries member ids only.
"""

import pytest
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from tests.fake_backend import make_scim_app

MEMBER_DISPLAY_CHECKS = {"check_add_attribute", "check_replace_attribute"}


def is_member_display_check(result):
    data = result.data if isinstance(result.data, dict) else {}
    return result.title in MEMBER_DISPLAY_CHECKS and data.get("urn") == "members"


@pytest.fixture(scope="module")
def results():
    app, _ = make_scim_app()
    client = WSGISCIMClient(app, base_url="http://localhost/scim/v2")
    return check_server(client, raise_exceptions=False)


def test_scim2_tester_checks_pass(results):
    failures = [
        f"{result.title}: {result.reason}"
        for result in results
        if result.status not in (Status.SUCCESS, Status.SKIPPED)
        and not is_member_display_check(result)
    ]
    assert failures == []
    assert sum(result.status == Status.SUCCESS for result in results) > 100


@pytest.mark.xfail(strict=True, reason="MemberChanges carries no member display (contract gap)")
def test_member_display_round_trips(results):
    assert not [
        result
        for result in results
        if is_member_display_check(result) and result.status != Status.SUCCESS
    ]
