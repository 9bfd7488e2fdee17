"""SCIM 2.0 service-provider protocol (RFC 7643, RFC 7644) over Flask and scim2-models.

This package knows nothing of Hub: it parses and validates requests, applies
PATCH, pages, sorts, serves discovery and answers errors as SCIM Error
documents, and reaches storage only through :mod:`scim.backend`.
"""
