"""The ``hub-scim`` command line, as IT uses it: first start, organizations, tokens, migrations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.pool import NullPool

from connector.cli.main import cli, print_bootstrap, scim_base_url
from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import head_revision
from connector.settings import load_settings
from connector.tenancy.credentials import Scope, authenticate
from connector.tenancy.organizations import DEFAULT_ORGANIZATION, bootstrap_first_start

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def database_file_url(tmp_path: Path) -> str:
    """An empty SQLite database of this test's own."""
    return f"sqlite:///{tmp_path / 'hub-scim.db'}"


@pytest.fixture
def migrated_url(runner: CliRunner, database_file_url: str) -> str:
    result = runner.invoke(cli, ["db", "upgrade", "--database-url", database_file_url])
    assert result.exit_code == 0, result.output
    return database_file_url


def hub_scim(runner: CliRunner, url: str, *args: str) -> Result:
    return runner.invoke(cli, [*args, "--database-url", url])


def authenticates(url: str, token: str, scope: Scope = Scope.SCIM) -> int | None:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            return authenticate(session, token, scope)
    finally:
        engine.dispose()


def assert_clean_failure(result: Result, message: str) -> None:
    assert result.exit_code != 0
    assert "Error:" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


# -- db ----------------------------------------------------------------------


def test_db_upgrade_migrates_once_then_reports_up_to_date(
    runner: CliRunner, database_file_url: str
) -> None:
    first = hub_scim(runner, database_file_url, "db", "upgrade")
    second = hub_scim(runner, database_file_url, "db", "upgrade")

    assert first.exit_code == 0
    assert f"from empty to {head_revision()}" in first.output
    assert second.exit_code == 0
    assert "is up to date" in second.output


def test_the_database_url_may_come_from_the_environment(
    runner: CliRunner, database_file_url: str
) -> None:
    result = runner.invoke(cli, ["db", "upgrade"], env={"HUB_SCIM_DATABASE_URL": database_file_url})

    assert result.exit_code == 0
    assert database_file_url in result.output


def test_commands_on_an_unmigrated_database_say_what_to_run(
    runner: CliRunner, database_file_url: str
) -> None:
    result = hub_scim(runner, database_file_url, "org", "create", "acme")

    assert_clean_failure(result, "hub-scim db upgrade")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/hub", "configuration: HUB_SCIM_DATABASE_URL must be a sqlite"),
        ("postgresql://postgres@127.0.0.1:1/none", "database:"),
    ],
)
def test_a_bad_database_url_is_one_clear_line(runner: CliRunner, url: str, message: str) -> None:
    assert_clean_failure(hub_scim(runner, url, "db", "upgrade"), message)


def test_a_bad_environment_variable_is_one_clear_line(runner: CliRunner, migrated_url: str) -> None:
    result = runner.invoke(
        cli, ["org", "list", "--database-url", migrated_url], env={"HUB_SCIM_PORT": "x"}
    )

    assert_clean_failure(result, "HUB_SCIM_PORT must be an integer")


# -- org -----------------------------------------------------------------------


def test_it_creates_and_lists_organizations(runner: CliRunner, migrated_url: str) -> None:
    created = hub_scim(runner, migrated_url, "org", "create", "acme")
    hub_scim(runner, migrated_url, "org", "create", "globex")

    listed = hub_scim(runner, migrated_url, "org", "list")

    assert created.exit_code == 0
    assert "Created organization 'acme'" in created.output
    assert listed.output.split() == ["acme", "globex"]


def test_an_organization_name_is_taken_once(runner: CliRunner, migrated_url: str) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")

    assert_clean_failure(
        hub_scim(runner, migrated_url, "org", "create", "acme"), "'acme' already exists"
    )


# -- token ---------------------------------------------------------------------


def test_token_create_prints_the_token_alone_on_its_last_line(
    runner: CliRunner, migrated_url: str
) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")

    result = hub_scim(runner, migrated_url, "token", "create", "--org", "acme")

    assert result.exit_code == 0
    token = result.output.rstrip("\n").splitlines()[-1]
    assert token.startswith("hubscim_")
    assert " " not in token
    assert authenticates(migrated_url, token) is not None


def test_an_access_token_is_for_hubs_products_only(runner: CliRunner, migrated_url: str) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")

    result = hub_scim(runner, migrated_url, "token", "create", "--org", "acme", "--scope", "access")
    token = result.output.splitlines()[-1]

    assert authenticates(migrated_url, token, Scope.ACCESS) is not None
    assert authenticates(migrated_url, token, Scope.SCIM) is None


def test_a_token_for_an_unknown_organization_is_refused(
    runner: CliRunner, migrated_url: str
) -> None:
    assert_clean_failure(
        hub_scim(runner, migrated_url, "token", "create", "--org", "nobody"),
        "no organization named 'nobody'",
    )


def test_token_list_shows_ids_and_states_never_tokens(runner: CliRunner, migrated_url: str) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")
    created = hub_scim(runner, migrated_url, "token", "create", "--org", "acme", "--label", "okta")
    token = created.output.splitlines()[-1]
    credential_id = created.output.split("credential ")[1].split()[0]

    listed = hub_scim(runner, migrated_url, "token", "list", "--org", "acme")

    assert listed.exit_code == 0
    assert credential_id in listed.output
    assert "okta" in listed.output
    assert "scim" in listed.output
    assert token not in listed.output
    assert token[len("hubscim_") :] not in listed.output


@pytest.mark.parametrize("name_it_by", ["token", "id"])
def test_token_revoke_by_token_or_by_id(
    runner: CliRunner, migrated_url: str, name_it_by: str
) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")
    created = hub_scim(runner, migrated_url, "token", "create", "--org", "acme")
    token = created.output.splitlines()[-1]
    credential_id = created.output.split("credential ")[1].split()[0]

    revoked = hub_scim(
        runner,
        migrated_url,
        "token",
        "revoke",
        "--org",
        "acme",
        token if name_it_by == "token" else credential_id,
    )
    listed = hub_scim(runner, migrated_url, "token", "list", "--org", "acme")

    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked credential {credential_id}" in revoked.output
    assert authenticates(migrated_url, token) is None
    row = next(line for line in listed.output.splitlines() if line.startswith(credential_id))
    assert row.split()[4].endswith("Z")  # the REVOKED column has a time


def test_an_organization_cannot_revoke_another_ones_token(
    runner: CliRunner, migrated_url: str
) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")
    hub_scim(runner, migrated_url, "org", "create", "globex")
    token = hub_scim(runner, migrated_url, "token", "create", "--org", "acme").output.split()[-1]

    result = hub_scim(runner, migrated_url, "token", "revoke", "--org", "globex", token)

    assert_clean_failure(result, "no credential of this organization")
    assert authenticates(migrated_url, token) is not None


# -- serve ---------------------------------------------------------------------


def test_the_first_start_creates_the_default_organization_and_one_token(
    migrated_url: str,
) -> None:
    engine = make_engine(migrated_url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            first = bootstrap_first_start(session)
        with make_session_factory(engine)() as session:
            again = bootstrap_first_start(session)
    finally:
        engine.dispose()

    assert first is not None
    assert first.organization == DEFAULT_ORGANIZATION
    assert again is None
    assert authenticates(migrated_url, first.token) is not None


def test_without_a_terminal_the_first_token_goes_to_a_private_file_not_the_log(
    migrated_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine = make_engine(migrated_url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            bootstrap = bootstrap_first_start(session)
    finally:
        engine.dispose()
    assert bootstrap is not None

    print_bootstrap(bootstrap, "http://127.0.0.1:8000/scim/v2", tmp_path / "data")

    printed = capsys.readouterr().out
    token_file = tmp_path / "data" / "first-start-token"
    assert "SCIM base URL: http://127.0.0.1:8000/scim/v2" in printed
    assert bootstrap.token not in printed
    assert f"written to {token_file}" in printed
    assert token_file.read_text() == bootstrap.token + "\n"
    assert token_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "http://127.0.0.1:8000/scim/v2"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000/scim/v2"),  # noqa: S104
        ({"host": "::1"}, "http://[::1]:8000/scim/v2"),
        ({"public_base_url": "https://scim.example.com"}, "https://scim.example.com/scim/v2"),
    ],
)
def test_the_printed_base_url(overrides: dict[str, object], expected: str) -> None:
    assert scim_base_url(load_settings({}, **overrides)) == expected


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``hub-scim serve`` in a subprocess on a free port and an empty SQLite file."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("HUB_SCIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "connector.cli.main", "serve",
                "--port", str(port),
                "--database-url", f"sqlite:///{tmp_path / 'served.db'}",
                "--workers", "1", "--threads", "2",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )  # fmt: skip
    try:
        yield port, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)  # noqa: S310 - a local http URL built by the test
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return response.status, json.loads(response.read())


def healthy(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


@pytest.mark.slow
def test_serve_starts_gunicorn_and_an_idp_can_use_the_printed_token(
    served: tuple[int, Path],
) -> None:
    port, log = served

    wait_for(lambda: healthy(port), 60, f"/healthz on port {port}:\n{log.read_text()}")

    printed = log.read_text()
    assert f"SCIM base URL: http://127.0.0.1:{port}/scim/v2" in printed
    assert "hubscim_" not in printed
    token_file = Path(printed.split("written to ")[1].split()[0])
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert token.startswith("hubscim_")
    assert "gunicorn" in printed.lower()
    status, listing = get(f"http://127.0.0.1:{port}/scim/v2/Users", token)
    assert status == 200
    assert listing["totalResults"] == 0


def test_scim_tokens_expire_after_the_configured_ttl_unless_told_otherwise(
    runner: CliRunner, migrated_url: str
) -> None:
    hub_scim(runner, migrated_url, "org", "create", "acme")
    ttl_env = {"HUB_SCIM_SCIM_TOKEN_TTL_SECONDS": "86400"}

    runner.invoke(cli, ["token", "create", "--org", "acme", "--database-url", migrated_url])
    runner.invoke(
        cli, ["token", "create", "--org", "acme", "--database-url", migrated_url], env=ttl_env
    )
    hub_scim(runner, migrated_url, "token", "create", "--org", "acme", "--expires-in-days", "30")
    listed = hub_scim(runner, migrated_url, "token", "list", "--org", "acme")

    expires = [line.split()[3] for line in listed.output.splitlines()[1:]]
    assert expires[0] == "-"
    assert expires[1].endswith("Z")
    assert expires[2] > expires[1]


def test_client_create_prints_what_entra_asks_for_and_the_secret_last(
    runner: CliRunner, migrated_url: str
) -> None:
    hub_scim(runner, migrated_url, "org", "create", "contoso")

    result = runner.invoke(
        cli,
        ["client", "create", "--org", "contoso", "--database-url", migrated_url],
        env={"HUB_SCIM_PUBLIC_BASE_URL": "https://scim.contoso.example"},
    )

    assert result.exit_code == 0, result.output
    assert "Tenant URL:     https://scim.contoso.example/scim/v2" in result.output
    assert "Token endpoint: https://scim.contoso.example/oauth/token" in result.output
    client_id = result.output.split("Client id:")[1].split()[0]
    secret = result.output.splitlines()[-1]
    assert secret.startswith("hubscim_")
    listed = hub_scim(runner, migrated_url, "token", "list", "--org", "contoso")
    assert client_id in listed.output
    assert "client" in listed.output
    assert secret not in listed.output

    revoked = hub_scim(runner, migrated_url, "client", "revoke", "--org", "contoso", client_id)

    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked OAuth client {client_id}" in revoked.output
