"""The one module-level application, for WSGI servers (``gunicorn connector.web.wsgi:app``).

Configured from ``HUB_SCIM_*`` environment variables (:mod:`connector.settings`).
It does not migrate the database: run ``hub-scim db upgrade`` first, or use
``hub-scim serve``, which does both.
"""

from connector.web.app import create_app

app = create_app()
