"""A slow client holds no lock: one organization's body trickles in, another writes at once.

The write path reads and validates a request before it begins writing
(docs/architecture.md#the-write-path): on SQLite the database's write lock is
taken only for the SQL of the change, on PostgreSQL no lock at all is held
while a body is read. These run a real threaded HTTP server on loopback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import BaseWSGIServer, make_server

from tests.fixtures_app import SCIM_CONTENT_TYPE, issue_token, new_organization

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
TRICKLE_SECONDS = 4.0


@pytest.fixture
def server(app: Flask) -> Iterator[BaseWSGIServer]:
    served = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    thread.join(timeout=10)


def trickle_a_user(port: int, token: str, user_name: str, done: threading.Event) -> int:
    """POST /Users with a body sent a few bytes at a time over ``TRICKLE_SECONDS``."""
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": user_name}).encode()
    head = (
        f"POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: {SCIM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head)
        pause = TRICKLE_SECONDS / len(body)
        for index in range(len(body)):
            connection.sendall(body[index : index + 1])
            time.sleep(pause)
        done.set()
        status_line = connection.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_another_organizations_write_is_not_held_behind_a_slow_upload(
    server: BaseWSGIServer, engine: Engine, scim_token: str
) -> None:
    other_token = issue_token(engine, new_organization(engine))
    uploaded = threading.Event()
    statuses: list[int] = []
    slow = threading.Thread(
        target=lambda: statuses.append(
            trickle_a_user(server.port, scim_token, "slow@msp.example", uploaded)
        )
    )
    slow.start()
    time.sleep(0.5)  # the slow request is authenticated and reading its body

    started = time.monotonic()
    response = requests.post(
        f"http://127.0.0.1:{server.port}/scim/v2/Users",
        data=json.dumps({"schemas": [USER_SCHEMA], "userName": "fast@msp.example"}),
        headers={"Authorization": f"Bearer {other_token}", "Content-Type": SCIM_CONTENT_TYPE},
        timeout=30,
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert not uploaded.is_set(), "the slow body must still be arriving"
    assert elapsed < 1.0, f"the other organization waited {elapsed:.2f} s"
    slow.join(timeout=60)
    assert statuses == [201]


def test_the_same_organizations_other_writes_are_not_held_either(
    server: BaseWSGIServer, scim_token: str
) -> None:
    uploaded = threading.Event()
    statuses: list[int] = []
    slow = threading.Thread(
        target=lambda: statuses.append(
            trickle_a_user(server.port, scim_token, "slow@msp.example", uploaded)
        )
    )
    slow.start()
    time.sleep(0.5)

    started = time.monotonic()
    response = requests.post(
        f"http://127.0.0.1:{server.port}/scim/v2/Users",
        data=json.dumps({"schemas": [USER_SCHEMA], "userName": "fast@msp.example"}),
        headers={"Authorization": f"Bearer {scim_token}", "Content-Type": SCIM_CONTENT_TYPE},
        timeout=30,
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert not uploaded.is_set()
    assert elapsed < 1.0, f"the same organization's next write waited {elapsed:.2f} s"
    slow.join(timeout=60)
    assert statuses == [201]
