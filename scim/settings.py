"""What the SCIM protocol layer enforces and advertises (RFC 7644 sections 3.4.2.4, 3.7.4 and 5).

The application builds one :class:`ScimSettings` from its own configuration
and hands it to :func:`scim.blueprint.create_blueprint`; nothing here reads
the environment. Every limit enforced is also the one advertised in
``/ServiceProviderConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scim2_models import AuthenticationScheme

MIB = 1024 * 1024


def default_authentication_schemes() -> tuple[AuthenticationScheme, ...]:
    """The bearer token every deployment accepts (RFC 7644 section 2, RFC 6750)."""
    return (
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="OAuth Bearer Token",
            description="Authentication with a bearer token issued for one organization",
            spec_uri="https://www.rfc-editor.org/rfc/rfc6750",
            primary=True,
        ),
    )


LIMITS: tuple[str, ...] = (
    "max_payload_bytes",
    "bulk_max_operations",
    "bulk_max_payload_bytes",
    "default_page_size",
    "max_page_size",
    "max_filter_length",
    "max_filter_comparisons",
    "max_query_string_bytes",
    "max_patch_operations",
    "max_patch_work",
    "max_multi_valued",
    "max_value_path_comparisons",
)
"""The fields of :class:`ScimSettings` that bound a request's size or work: positive integers
an application may let its operators configure."""


@dataclass(frozen=True)
class ScimSettings:
    """Limits and advertised capabilities of one SCIM service provider."""

    max_payload_bytes: int = MIB
    """Largest request body accepted on any route but ``/Bulk``; larger answers 413."""

    bulk_max_operations: int = 1000
    """``bulk.maxOperations``: more operations in one Bulk request answer 413."""

    bulk_max_payload_bytes: int = MIB
    """``bulk.maxPayloadSize``: a larger Bulk request body answers 413."""

    default_page_size: int = 100
    """``count`` when a list request names none (RFC 7644 section 3.4.2.4)."""

    max_page_size: int = 1000
    """``count`` is capped here; advertised as ``filter.maxResults`` and ``maxPageSize``."""

    max_filter_length: int = 4096
    """Longest ``filter`` expression, in characters; longer answers 400 ``invalidFilter``."""

    max_filter_comparisons: int = 100
    """Most comparisons and presence tests in one filter; more answers 400 ``invalidFilter``."""

    max_query_string_bytes: int = 7168
    """Longest query string; longer answers 400 ``invalidValue`` before anything is parsed."""

    max_patch_operations: int = 10_000
    """Most operations in one PATCH request; more answers 413."""

    max_patch_work: int = 2000
    """Most work in one PATCH: one unit per operation plus the entries each filtered path
    walks (:func:`scim.limits.patch_work`); more answers 400 ``tooMany``."""

    max_multi_valued: int = 100
    """Most entries in a capped multi-valued attribute (:data:`scim.limits.CAPPED_MULTI_VALUED`);
    more answers 400 ``invalidValue``. A group's ``members`` is not capped."""

    max_value_path_comparisons: int = 20
    """Most comparisons inside value paths (``emails[type eq "work"]``) in one filter."""

    authentication_schemes: Sequence[AuthenticationScheme | Mapping[str, Any]] = field(
        default_factory=default_authentication_schemes
    )
    """What ``/ServiceProviderConfig`` lists under ``authenticationSchemes``."""

    documentation_uri: str | None = None
    """``documentationUri`` of ``/ServiceProviderConfig``, when there is one."""

    etag_supported: bool = True
    """Whether ETags (``meta.version``, ``If-Match``, ``If-None-Match``) are honoured."""

    www_authenticate: str = 'Bearer realm="scim"'
    """The ``WWW-Authenticate`` header sent with every 401 (RFC 6750 section 3)."""

    patch_retries: int = 3
    """Times a read-modify-write PATCH is retried when a concurrent writer got there first."""

    def __post_init__(self) -> None:
        for name in LIMITS:
            if getattr(self, name) < 1:
                raise ValueError(f"ScimSettings.{name} must be a positive integer")
        if self.default_page_size > self.max_page_size:
            raise ValueError("ScimSettings.default_page_size cannot exceed max_page_size")
        if self.patch_retries < 0:
            raise ValueError("ScimSettings.patch_retries cannot be negative")
