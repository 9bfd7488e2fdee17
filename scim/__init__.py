"""SCIM 2.0 service-provider protocol (RFC 7643, RFC 7644) over Flask and scim2-models.

This package knows nothing of Hub: it parses and validates requests, applies
PATCH, pages, sorts, serves discovery and answers errors as SCIM Error
documents, and reaches storage only through :mod:`scim.backend`.

What an application uses:

- :func:`scim.blueprint.create_blueprint` (the endpoints) and
  :func:`scim.errors.register_scim_error_handlers` (routing errors);
- :class:`scim.settings.ScimSettings` (limits and advertised capabilities);
- :data:`scim.resources.MODELS` (the models requests are validated with,
  for a backend that resolves attribute paths), and
  :func:`scim.extensions.served_schemas` for a tenant that declared User
  extensions (the blueprint's ``schemas`` callable answers it per request);
- :func:`scim.errors.error_response` (a SCIM Error for its own refusals).
"""
