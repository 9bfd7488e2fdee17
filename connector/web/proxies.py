"""Which peers may speak for the client through ``X-Forwarded-*``, and whether a request used TLS.

A reverse proxy that terminates TLS tells the app the client's address and
scheme in ``X-Forwarded-For`` and ``X-Forwarded-Proto``. Those headers are
believed only from the addresses listed in ``HUB_SCIM_TRUSTED_PROXIES``
(addresses or networks), for ``HUB_SCIM_TRUSTED_PROXY_COUNT`` hops; from any
other peer they are ignored. The same list is gunicorn's ``forwarded_allow_ips``
(deploy/README.md, "Behind a load balancer").

:func:`arrived_over_tls` is the token endpoint's test (RFC 6749 section 3.2:
TLS is required): the scheme the socket or a trusted proxy reported, never
the ``Host`` header nor the configured public URL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from flask import Request
from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRANSPORT_SCHEME = "hub_scim.transport_scheme"
"""WSGI environ key: the scheme the request arrived with, before the public URL rewrites it."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` as networks; raises ValueError naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


class TrustedProxyFix:
    """Werkzeug's ProxyFix, applied only when the socket peer is a trusted proxy."""

    def __init__(
        self, wsgi_app: Callable[..., Any], count: int, networks: tuple[Network, ...]
    ) -> None:
        self._plain = wsgi_app
        self._fixed = ProxyFix(wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
        self._networks = networks

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if address_in(environ.get("REMOTE_ADDR"), self._networks):
            return self._fixed(environ, start_response)
        return self._plain(environ, start_response)


class RecordTransportScheme:
    """Keeps the scheme the request arrived with, before anything rewrites ``wsgi.url_scheme``."""

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ.setdefault(TRANSPORT_SCHEME, environ.get("wsgi.url_scheme", "http"))
        return self._wsgi_app(environ, start_response)


def arrived_over_tls(request: Request) -> bool:
    """Whether the client reached us over TLS, or from this host itself (RFC 6749 section 3.2).

    ``REMOTE_ADDR`` is the socket peer, or the client a trusted proxy named.
    """
    scheme = request.environ.get(TRANSPORT_SCHEME, request.environ.get("wsgi.url_scheme"))
    if scheme == "https":
        return True
    return address_in(request.remote_addr, _LOOPBACK)


_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
