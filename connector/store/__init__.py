"""The SQLAlchemy store that fulfils :mod:`scim.backend` for one Hub organization."""

from connector.store.backend import DEFAULT_MODELS, SqlBackend
from connector.store.listener import DirectoryListener, NullListener

__all__ = ["DEFAULT_MODELS", "DirectoryListener", "NullListener", "SqlBackend"]
