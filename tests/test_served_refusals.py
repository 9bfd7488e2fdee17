"""The real server on loopback: its refusals are SCIM Errors and a refused request breaks nothing.

Okta and Entra ID reuse connections: after any refusal the next request on
the same keep-alive connection must work, or the connection must be closed
by the server in the open. A query or header too long for gunicorn is a SCIM
Error too (long filters go in the body of ``POST /.search``), and the access
log never holds a secret sent in a query string.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served:
    def __init__(self, port: int, log: Path, token: str) -> None:
        self.port = port
        self.log = log
        self.token = token
        self.opened: list[http.client.HTTPConnection] = []

    def connection(self) -> http.client.HTTPConnection:
        """A keep-alive client connection, closed when the test ends."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.opened.append(connection)
        return connection

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/scim+json", **extra}


def hub_scim(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli.main", *args],
        env=env, cwd=cwd, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``hub-scim serve`` (gunicorn, one worker) on a fresh SQLite file, on a free loopback port."""
    tmp_path = tmp_path_factory.mktemp("served")
    port = free_port()
    log = tmp_path / "serve.log"
    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("HUB_SCIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["HUB_SCIM_DATABASE_URL"] = database_url
    # Off by default; on here, to check what it writes.
    env["HUB_SCIM_ACCESS_LOG"] = "on"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "connector.cli.main", "serve",
                "--port", str(port), "--workers", "1", "--threads", "2",
            ],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text()}")
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    probe.request("GET", "/healthz")
                    if probe.getresponse().status == 200:
                        break
                finally:
                    probe.close()
            except OSError:
                time.sleep(0.2)
        token = hub_scim(env, tmp_path, "token", "create", "--org", "default").split()[-1]
        server = Served(port, log, token)
        yield server
        for opened in server.opened:
            opened.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read(response: http.client.HTTPResponse) -> dict[str, object]:
    body: dict[str, object] = json.loads(response.read())
    return body


def test_after_a_413_the_same_connection_serves_the_next_request(served: Served) -> None:
    connection = served.connection()
    big = json.dumps({"userName": "x" * 3_000_000}).encode()

    connection.request(
        "POST",
        "/scim/v2/Users",
        body=big,
        headers=served.headers(**{"Content-Type": "application/scim+json"}),
    )
    refused = connection.getresponse()
    refused_body = read(refused)
    if refused.getheader("Connection", "").lower() == "close":
        connection.close()
        connection = served.connection()
    connection.request("GET", "/scim/v2/Users", headers=served.headers())
    following = connection.getresponse()

    assert refused.status == 413
    assert refused_body["schemas"] == [ERROR_SCHEMA]
    assert following.status == 200
    assert read(following)["totalResults"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/scim/v2/Users"),
        ("POST", "/scim/v2/NoSuchEndpoint"),
        ("DELETE", "/scim/v2/Users/x"),
    ],
)
def test_a_body_left_unread_never_breaks_the_keep_alive_connection(
    served: Served, method: str, path: str
) -> None:
    """An answer built without reading the body: the next request on the connection is whole."""
    connection = served.connection()
    for _ in range(10):
        connection.request(method, path, body=b"x" * 100_000, headers=served.headers())
        answered = connection.getresponse()
        answered.read()
        connection.request("GET", "/scim/v2/Users", headers=served.headers())
        following = connection.getresponse()

        assert answered.getheader("Connection", "").lower() != "close"
        assert following.status == 200
        assert read(following)["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]


def test_a_request_line_too_long_for_the_server_is_a_scim_414(served: Served) -> None:
    connection = served.connection()
    long_filter = 'userName eq "' + "a" * 9000 + '"'

    connection.request(
        "GET", "/scim/v2/Users?filter=" + long_filter.replace(" ", "%20"), headers=served.headers()
    )
    response = connection.getresponse()

    assert response.status == 414
    assert response.getheader("Content-Type") == "application/scim+json"
    body = read(response)
    assert body["schemas"] == [ERROR_SCHEMA]
    assert ".search" in str(body["detail"])


def test_a_query_string_over_the_apps_limit_is_a_scim_400(served: Served) -> None:
    connection = served.connection()

    connection.request("GET", "/scim/v2/Users?filter=" + "a" * 7500, headers=served.headers())
    response = connection.getresponse()

    assert response.status == 400
    assert read(response)["schemas"] == [ERROR_SCHEMA]


def test_a_header_too_long_for_the_server_is_a_scim_431(served: Served) -> None:
    connection = served.connection()

    connection.request("GET", "/scim/v2/Users", headers=served.headers(**{"X-Big": "b" * 9000}))
    response = connection.getresponse()

    assert response.status == 431
    assert read(response)["schemas"] == [ERROR_SCHEMA]


def test_the_access_log_holds_no_secret_sent_in_a_query_string(served: Served) -> None:
    connection = served.connection()

    connection.request(
        "GET", "/scim/v2/Users?access_token=hubscim_leak1&client_secret=leak2&count=1"
    )
    connection.getresponse().read()
    connection.close()
    time.sleep(0.5)

    log = served.log.read_text()
    assert "/scim/v2/Users?access_token=[redacted]&client_secret=[redacted]&count=1" in log
    assert "leak1" not in log
    assert "leak2" not in log
