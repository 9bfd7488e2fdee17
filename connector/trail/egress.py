"""Where a webhook may point, and a POST that goes only there, within a deadline.

An organization's admin chooses a webhook URL, so the URL is untrusted: it
could name the cloud's metadata service (``169.254.169.254``), the database,
or anything else on the deployment's private network. So:

- :func:`resolve_destination` resolves the host and refuses the URL unless
  every address it resolves to is public (not loopback, private, link-local,
  multicast, unspecified or reserved), or lies in a network the operator
  allowed (``HUB_SCIM_WEBHOOK_ALLOWED_NETWORKS``). It runs at registration
  and again before each delivery round.
- :func:`post_pinned` connects to the address that was checked, never
  resolving the name again, so a DNS answer that changes between the check
  and the connection (DNS rebinding) cannot redirect the POST. The Host
  header, TLS SNI and certificate check still use the URL's host name.
- Redirects are never followed: a 3xx is an answer like any other non-2xx.
- The whole exchange, connection to last byte, has one deadline: a watchdog
  shuts the socket down when it passes, so an endpoint that trickles bytes
  cannot hold the deliverer (per-read timeouts alone would let it).

Built on urllib3 (which ``requests`` uses): its connection classes let the
socket be opened by us, to the checked address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
from urllib3.connection import HTTPConnection, HTTPSConnection

from connector.errors import InvalidInput, Refused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenDestination(Refused):
    """The URL is malformed, does not resolve, or resolves to a refused address."""


class DeadlineExceeded(TimeoutError):
    """The POST did not finish within its overall deadline."""


@dataclass(frozen=True)
class Destination:
    """A webhook URL and the checked addresses it resolved to."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]


def _refused(address: IPAddress) -> str | None:
    """Why ``address`` is no public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _refused(address.ipv4_mapped)
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if flag:
            return reason
    return None


def check_address(address: str, allowed: Iterable[IPNetwork]) -> None:
    """Raise :class:`ForbiddenDestination` unless ``address`` is public or allowed."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if any(parsed in network for network in allowed):
        return
    reason = _refused(parsed)
    if reason is not None:
        raise ForbiddenDestination(
            f"{address} is a {reason} address; a webhook may not point there unless "
            "HUB_SCIM_WEBHOOK_ALLOWED_NETWORKS names its network"
        )


def parse_webhook_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and request target of an http(s) URL (InvalidInput if not)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("an event endpoint must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ForbiddenDestination("an event endpoint URL must not carry credentials")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), target


def resolve_destination(url: str, allowed: Iterable[IPNetwork]) -> Destination:
    """Resolve ``url``'s host; every address must be public or allowed (module docstring)."""
    scheme, host, port, target = parse_webhook_url(url)
    networks = tuple(allowed)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ForbiddenDestination(f"cannot resolve {host}: {error}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ForbiddenDestination(f"{host} resolves to no address")
    for address in addresses:
        check_address(address, networks)
    return Destination(scheme, host, port, target, addresses)


class _Watchdog:
    """Shuts a socket down when the deadline passes, whatever the reader is waiting on."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        # A duplicate descriptor: TLS wrapping detaches the original object,
        # and shutdown() acts on the connection whichever descriptor names it.
        self._sock = sock.dup()
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        self._sock.close()


class _PinnedMixin:
    """Opens the socket to a checked address instead of resolving the host again."""

    port: int
    _pinned_addresses: tuple[str, ...]
    _deadline: float
    _connect_timeout: float
    watchdog: _Watchdog | None

    def _new_conn(self) -> socket.socket:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("deadline passed before connecting")
        failure: OSError | None = None
        for address in self._pinned_addresses:
            try:
                sock = socket.create_connection(
                    (address, self.port), timeout=min(self._connect_timeout, remaining)
                )
            except OSError as error:
                failure = error
                continue
            self.watchdog = _Watchdog(sock, self._deadline - time.monotonic())
            return sock
        raise failure or OSError("no address to connect to")


class _PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    pass


@dataclass(frozen=True)
class PostResult:
    status: int


def post_pinned(
    destination: Destination,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline_seconds: float,
    connect_timeout: float = 5.0,
) -> PostResult:
    """POST ``body`` to ``destination`` at its checked addresses, within the deadline.

    Raises :class:`DeadlineExceeded` when the deadline passes, ``OSError`` or
    an ``http.client``/urllib3 error when the exchange fails. The answer's
    body is not read beyond what fits the deadline.
    """
    deadline = time.monotonic() + deadline_seconds
    kwargs: dict[str, Any] = {"timeout": deadline_seconds}
    connection_class: type[_PinnedHTTPConnection] | type[_PinnedHTTPSConnection]
    if destination.scheme == "https":
        connection_class = _PinnedHTTPSConnection
        kwargs["ca_certs"] = certifi.where()
    else:
        connection_class = _PinnedHTTPConnection
    connection = connection_class(destination.host, destination.port, **kwargs)
    connection._pinned_addresses = destination.addresses
    connection._deadline = deadline
    connection._connect_timeout = connect_timeout
    connection.watchdog = None
    try:
        connection.request(
            "POST", destination.target, body=body, headers=dict(headers), preload_content=False
        )
        response = connection.getresponse()
        # Drain a little of the answer so the exchange completes; never all of it.
        response.read(64 * 1024)
        if connection.watchdog is not None and connection.watchdog.fired:
            # Cut short, the answer may have looked complete (a header line
            # ended by the shutdown): it is no answer.
            raise DeadlineExceeded(f"no complete answer within {deadline_seconds:g} s")
        return PostResult(status=int(response.status))
    except DeadlineExceeded:
        raise
    except Exception as error:
        watchdog = connection.watchdog
        if watchdog is not None and watchdog.fired:
            raise DeadlineExceeded(f"no complete answer within {deadline_seconds:g} s") from error
        raise
    finally:
        if connection.watchdog is not None:
            connection.watchdog.stop()
        connection.close()
