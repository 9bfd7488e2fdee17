"""The service's configuration: defaults, then ``HUB_SCIM_*`` environment variables, then overrides.

:func:`load_settings` is called once, by the app factory or the command line,
and returns a frozen :class:`Settings`. Every value is checked when the object
is built, so a bad value stops the service at start-up with a message that
names the setting, never later in the middle of a request.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, get_type_hints

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.web.proxies import parse_networks
from scim.settings import LIMITS as SCIM_LIMITS
from scim.settings import ScimSettings

ENV_PREFIX = "HUB_SCIM_"

REQUEST_LINE_LIMIT = 8190
"""Gunicorn's longest request line (its maximum): method, path, query string and version."""

MAX_QUERY_STRING_BYTES = REQUEST_LINE_LIMIT - 1022
"""The query-string limit may not go above this, so that the server never refuses first."""

REALM = "hub-scim"
"""The realm every bearer-token challenge names (RFC 6750 section 3)."""

MIN_SECRET_KEY_LENGTH = 32

logger = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the setting."""


def data_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory: ``$XDG_DATA_HOME/hub-scim``, else ``~/.local/share/hub-scim``."""
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "hub-scim"


def default_scim_settings() -> ScimSettings:
    """The SCIM layer's defaults, its 401s naming this service's realm (RFC 6750 section 3)."""
    return ScimSettings(www_authenticate=f'Bearer realm="{REALM}"')


def default_database_url(environ: Mapping[str, str] | None = None) -> str:
    """A SQLite file in the user's data directory, so data survives a restart wherever started.

    Follows the XDG base-directory convention (:func:`data_directory`).
    """
    return f"sqlite:///{data_directory(environ) / 'hub-scim.db'}"


@dataclass(frozen=True)
class Settings:
    """Everything the app, the command line and the server are configured by.

    Each field ``name`` is read from the environment variable
    ``HUB_SCIM_<NAME>`` (for example ``HUB_SCIM_DATABASE_URL``), and so is each
    of the SCIM layer's limits (:data:`scim.settings.LIMITS`), kept in
    :attr:`scim`: ``HUB_SCIM_MAX_PAGE_SIZE`` sets ``scim.max_page_size``.
    """

    # Storage. Empty means default_database_url(), resolved by load_settings.
    database_url: str = ""
    # The externally visible origin (scheme://host[:port]) used in Location
    # headers and meta.location when the service sits behind a proxy.
    public_base_url: str | None = None
    # Number of reverse proxies whose X-Forwarded-* headers are trusted, and
    # the addresses or networks they connect from (never from elsewhere).
    trusted_proxy_count: int = 0
    trusted_proxies: str = "127.0.0.1,::1"

    # The SCIM layer's limits and advertised capabilities (RFC 7644 sections
    # 3.4.2.4, 3.7 and 5).
    scim: ScimSettings = field(default_factory=default_scim_settings)

    # Credentials. A SCIM token lives until revoked unless a TTL is set (0 =
    # no expiry): IdPs hold one token for years and break when it expires.
    scim_token_ttl_seconds: int = 0
    # Lifetime of access tokens issued by the OAuth 2.0 client-credentials
    # grant (Entra ID's alternative to a long-lived token).
    oauth_token_ttl_seconds: int = 3600

    # Per-credential request rate (token bucket); 0 disables. Sized far above
    # what an Entra initial cycle or an Okta import sends.
    rate_limit_per_minute: int = 6000
    rate_limit_burst: int = 1000

    # Server (used by ``hub-scim serve`` and deploy/gunicorn.conf.py).
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 4
    request_timeout_seconds: int = 60

    log_level: str = "INFO"
    # gunicorn's access log, beside the JSON line every request already gets
    # (connector.web.observability): off by default, since it repeats that
    # line, writes the query string (a filter names a userName) and costs
    # each request a second formatted log record.
    access_log: bool = False

    # Webhooks (docs/webhooks.md). Networks (CIDR, comma-separated) a webhook
    # may resolve to although they are loopback, private, link-local or
    # reserved; empty: only public addresses.
    webhook_allowed_networks: str = ""
    # Overall deadline of one POST, connection to last byte.
    webhook_timeout_seconds: int = 10
    # A delivery is dead-lettered after this many attempts or this age.
    webhook_max_attempts: int = 15
    webhook_max_age_hours: int = 72

    # Prometheus metrics (docs/observability.md), served by the gunicorn
    # master on their own address; port 0: not served.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    # Label SCIM operation counts with the organization's id. Off: one series
    # set for all organizations (label value "all"), whatever their number.
    metrics_org_label: bool = False
    # The IT console (connector.console): the key that signs its cookies and
    # seals each organization's OIDC client secret at rest. Unset: the console
    # answers 503 and `hub-scim sso set` refuses, rather than run with a
    # made-up key that a restart or a second instance would not share.
    secret_key: str | None = None
    # A console session ends this long after sign-in, or after this long idle.
    console_session_ttl_seconds: int = 8 * 3600
    console_idle_timeout_seconds: int = 3600

    # The provisioning log (connector.trail.request_log): every SCIM request an
    # organization's IdP makes, kept this many days. ``HUB_SCIM_REQUEST_LOG=off``
    # stops recording (the benchmark compares the two).
    request_log: bool = True
    request_log_retention_days: int = 30
    # How long the audit trail keeps an entry, and an event is kept after its
    # last delivery, unless an organization sets its own periods
    # (docs/personal-data.md#retention).
    audit_retention_days: int = 400
    event_retention_days: int = 30

    # SQLite's durability of a commit: "full" (fsync at each commit: a change
    # answered to the IdP survives a power loss) or "normal" (faster; the
    # last commits can be lost, an acknowledged deactivation with them).
    # Measured in docs/benchmark.md.
    sqlite_synchronous: str = "full"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """:attr:`webhook_allowed_networks` parsed (ValueError for a malformed one)."""
        return tuple(
            ip_network(item.strip(), strict=False)
            for item in self.webhook_allowed_networks.split(",")
            if item.strip()
        )

    @property
    def scim_token_ttl(self) -> timedelta | None:
        """How long a new SCIM token is valid; None: until revoked."""
        return (
            timedelta(seconds=self.scim_token_ttl_seconds) if self.scim_token_ttl_seconds else None
        )


def _validate(settings: Settings) -> None:
    if not settings.database_url:
        raise SettingsError(f"{_env_name('database_url')} must not be empty")
    try:
        url = make_url(settings.database_url)
    except ArgumentError as error:
        raise SettingsError(
            f"{_env_name('database_url')} is not a database URL: {settings.database_url!r}"
        ) from error
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError(
            f"{_env_name('database_url')} must be a sqlite:/// or postgresql:// URL, "
            f"got {url.get_backend_name()!r}"
        )
    if settings.public_base_url is not None and not settings.public_base_url.startswith(
        ("http://", "https://")
    ):
        raise SettingsError(
            f"{_env_name('public_base_url')} must start with http:// or https://, "
            f"got {settings.public_base_url!r}"
        )
    try:
        parse_networks(settings.trusted_proxies)
    except ValueError as error:
        raise SettingsError(f"{_env_name('trusted_proxies')}: {error}") from None
    _check_scim_limits({name: getattr(settings.scim, name) for name in SCIM_LIMITS})
    minimums = {
        "scim_token_ttl_seconds": 0,
        "oauth_token_ttl_seconds": 60,
        "rate_limit_per_minute": 0,
        "rate_limit_burst": 1,
        "trusted_proxy_count": 0,
        "workers": 1,
        "threads": 1,
        "request_timeout_seconds": 1,
        "webhook_timeout_seconds": 1,
        "webhook_max_attempts": 1,
        "webhook_max_age_hours": 1,
        "metrics_port": 0,
        "request_log_retention_days": 1,
        "audit_retention_days": 90,
        "event_retention_days": 1,
        "console_session_ttl_seconds": 60,
        "console_idle_timeout_seconds": 60,
    }
    for name, minimum in minimums.items():
        value = getattr(settings, name)
        if value < minimum:
            raise SettingsError(f"{_env_name(name)} must be at least {minimum}, got {value}")
    if settings.secret_key is not None and len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"{_env_name('secret_key')} must be at least {MIN_SECRET_KEY_LENGTH} characters "
            "(for example: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if not 1 <= settings.port <= 65535:
        raise SettingsError(f"{_env_name('port')} must be between 1 and 65535, got {settings.port}")
    if settings.metrics_port > 65535:
        raise SettingsError(
            f"{_env_name('metrics_port')} must be between 0 and 65535, got {settings.metrics_port}"
        )
    try:
        _ = settings.webhook_networks
    except ValueError as error:
        raise SettingsError(f"{_env_name('webhook_allowed_networks')}: {error}") from None
    if settings.sqlite_synchronous not in SQLITE_SYNCHRONOUS:
        raise SettingsError(
            f"{_env_name('sqlite_synchronous')} must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
            f"got {settings.sqlite_synchronous!r}"
        )
    if settings.log_level.upper() not in logging.getLevelNamesMapping():
        raise SettingsError(f"{_env_name('log_level')} is not a log level: {settings.log_level!r}")


_SCIM_MINIMUMS = {
    "max_payload_bytes": 1024,
    "bulk_max_payload_bytes": 1024,
    "max_filter_length": 16,
    "max_query_string_bytes": 256,
}
"""Floors above the SCIM layer's own (1) that keep a misconfigured service usable."""


def _check_scim_limits(limits: Mapping[str, int]) -> None:
    """Check the SCIM limits with messages naming their variables, before the SCIM layer does."""
    for name in SCIM_LIMITS:
        minimum = _SCIM_MINIMUMS.get(name, 1)
        if limits[name] < minimum:
            raise SettingsError(f"{_env_name(name)} must be at least {minimum}, got {limits[name]}")
    if limits["max_query_string_bytes"] > MAX_QUERY_STRING_BYTES:
        raise SettingsError(
            f"{_env_name('max_query_string_bytes')} must be at most {MAX_QUERY_STRING_BYTES} "
            f"(the server's request line holds {REQUEST_LINE_LIMIT} bytes), "
            f"got {limits['max_query_string_bytes']}"
        )
    if limits["default_page_size"] > limits["max_page_size"]:
        raise SettingsError(
            f"{_env_name('default_page_size')} ({limits['default_page_size']}) must not exceed "
            f"{_env_name('max_page_size')} ({limits['max_page_size']})"
        )


def _with_scim_limits(scim: ScimSettings, changes: Mapping[str, Any]) -> ScimSettings:
    """``scim`` with some of its limits changed, checked first (:func:`_check_scim_limits`)."""
    if not changes:
        return scim
    _check_scim_limits({name: changes.get(name, getattr(scim, name)) for name in SCIM_LIMITS})
    return dataclasses.replace(scim, **changes)


def _settable() -> dict[str, Any]:
    """Each name a variable or an override may set, with its type."""
    hints = get_type_hints(Settings)
    scim_hints = get_type_hints(ScimSettings)
    return {
        **{item.name: hints[item.name] for item in dataclasses.fields(Settings)},
        **{name: scim_hints[name] for name in SCIM_LIMITS},
    }


def _split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings values, apart from SCIM limits (given by name, as their variables are)."""
    unknown = set(values) - set(_settable())
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    scim_limits = {name: value for name, value in values.items() if name in SCIM_LIMITS}
    others = {name: value for name, value in values.items() if name not in SCIM_LIMITS}
    return others, scim_limits


def replace_settings(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with ``overrides``, a SCIM limit given by its name (``max_page_size=5``)."""
    others, scim_limits = _split(overrides)
    scim = _with_scim_limits(others.pop("scim", settings.scim), scim_limits)
    return dataclasses.replace(settings, scim=scim, **others)


def _env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


SQLITE_SYNCHRONOUS = ("full", "normal")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(field_name: str, field_type: Any, raw: str) -> Any:
    if field_type is bool:
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise SettingsError(f"{_env_name(field_name)} must be on or off, got {raw!r}")
    if field_type is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise SettingsError(
                f"{_env_name(field_name)} must be an integer, got {raw!r}"
            ) from None
    if field_type is str:
        return raw.strip()
    return raw.strip() or None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then ``HUB_SCIM_*`` variables of ``environ``, then ``overrides``.

    An override of ``None`` means "not given" (an absent command-line flag) and
    leaves the environment's value in place. Unknown override names are an error.
    """
    env = os.environ if environ is None else environ
    _split(overrides)
    settable = _settable()
    from_environment = {name: kind for name, kind in settable.items() if name != "scim"}

    values: dict[str, Any] = {}
    for name, kind in from_environment.items():
        raw = env.get(_env_name(name))
        if raw is not None:
            values[name] = _parse(name, kind, raw)
    for key in sorted(set(env) - {_env_name(name) for name in from_environment}):
        if key.startswith(ENV_PREFIX):
            logger.warning("ignoring unknown setting %s", key)
    values.update({name: value for name, value in overrides.items() if value is not None})
    if not values.get("database_url"):
        values["database_url"] = default_database_url(env)
    if values.get("public_base_url"):
        values["public_base_url"] = values["public_base_url"].rstrip("/")
    others, scim_limits = _split(values)
    scim = _with_scim_limits(others.pop("scim", default_scim_settings()), scim_limits)
    return Settings(scim=scim, **others)


def sqlite_file(database_url: str) -> Path | None:
    """The file behind a SQLite URL, or None for another database or an in-memory one."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)
