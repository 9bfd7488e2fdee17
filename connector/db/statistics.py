"""Keeps PostgreSQL's planner statistics current while an IdP loads a directory.

PostgreSQL's autovacuum refreshes statistics on its own and should stay on,
but it lags behind an initial load, and some installations turn it off. With
stale statistics a one-row ``userName eq`` lookup, the request Okta and Entra
make before every create, can be planned as a scan of the whole tenant. At
most every ``interval`` seconds, on a successful SCIM write (one request or a
1,000-operation Bulk alike), the keeper asks
:func:`connector.db.planner.refresh_postgresql_statistics`, which costs one
catalog query when nothing changed and ANALYZEs only tables that did.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from connector.db.planner import refresh_postgresql_statistics

logger = logging.getLogger(__name__)


class StatisticsKeeper:
    def __init__(self, engine: Engine, interval: float = 10.0) -> None:
        self.engine = engine
        self.interval = interval
        self._last_check = time.monotonic()
        self._lock = threading.Lock()

    def write_committed(self) -> None:
        """Note a committed write; refresh stale statistics if ``interval`` has passed."""
        if self.engine.dialect.name != "postgresql":
            return
        now = time.monotonic()
        with self._lock:
            due = now - self._last_check >= self.interval
            if due:
                self._last_check = now
        if due:
            self.refresh()

    def refresh(self) -> list[str]:
        try:
            with self.engine.connect() as connection:
                analyzed = refresh_postgresql_statistics(connection)
                connection.commit()
        except Exception:  # statistics are an optimization: never fail a request for them
            logger.exception("refreshing planner statistics failed")
            return []
        if analyzed:
            logger.info("planner statistics refreshed for %s", ", ".join(analyzed))
        return analyzed
