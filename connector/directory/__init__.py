"""The SCIM directory as the IdP sent it: the SQL store that fulfils :mod:`scim.backend`."""
