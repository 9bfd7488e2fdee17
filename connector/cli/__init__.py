"""The ``hub-scim`` command line."""
