"""scim2-server's in-memory SCIM application, as its command builds it, for gunicorn.

The command serves through wsgiref (HTTP/1.0, one connection per request, a
listen backlog of 5): under concurrent clients, connections overflow the
backlog and wait a second for a SYN retry, which measures the test server, not
scim2-server. The concurrent benchmark serves the same application with
gunicorn instead, one worker (the storage is the process's memory) and as many
threads as clients, with keep-alive::

    SCIM2_BENCH_TOKEN=... gunicorn --chdir bench -w 1 -k gthread --threads 8 \\
        scim2_server_wsgi:app

The bearer token comes from ``SCIM2_BENCH_TOKEN``; the SCIM base URL is ``/v2``.
"""

from __future__ import annotations

import os
import secrets

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


def build_application(token: str) -> BearerTokenApplication:
    """The application of ``scim2-server --bearer-token TOKEN`` with its default schemas."""
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    return BearerTokenApplication(
        InMemoryStorage(), provider, service=service, bearer_tokens=[token]
    )


def __getattr__(name: str) -> BearerTokenApplication:
    # ``app`` is built when gunicorn asks for it, so that importing this module
    # for build_application (bench/floor.py) needs no environment.
    if name == "app":
        return build_application(os.environ["SCIM2_BENCH_TOKEN"])
    raise AttributeError(name)
