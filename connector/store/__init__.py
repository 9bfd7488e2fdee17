"""The SQLAlchemy store that fulfils :mod:`scim.backend` for one Hub organization."""
