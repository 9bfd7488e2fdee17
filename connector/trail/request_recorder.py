"""Writes the provisioning log outside the requests it describes, in batches.

A SCIM request only appends its :class:`~connector.trail.request_log.LoggedRequest`
to an in-memory buffer (a few microseconds, no database work, nothing that
can fail it). One background thread per process writes the buffer every
``flush_interval`` seconds, or as soon as ``max_batch`` rows wait, each batch
in one short transaction of its own: a SCIM write never waits for the log, and
on SQLite the log takes the write lock once per batch, not once per request.
The same thread prunes rows past each organization's retention (its own,
else ``retention``) in small batches of their own transactions
(:func:`connector.trail.retention.prune`), at most every ``prune_interval`` seconds.

What a process still buffers is written when it exits (``atexit``: gunicorn
workers exit normally on restart and shutdown) or when :meth:`close` is
called. A database that refuses rows costs log rows, never a request: a batch
that fails for a passing reason (a locked or unreachable database) is tried
again with the next ones, up to ``max_attempts`` times; a batch refused row by
row keeps the rows the database accepts. The buffer is bounded
(``max_buffered``): past it, new rows are counted in :attr:`dropped` and not kept.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.trail.request_log import LoggedRequest, append
from connector.trail.retention import REQUEST_LOG, RetentionPeriods, prune

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[RequestRecorder] = weakref.WeakSet()


class RequestRecorder:
    """Buffers logged requests in memory and writes them in batches from a background thread."""

    def __init__(
        self,
        engine: Engine,
        retention: timedelta,
        *,
        flush_interval: float = 1.0,
        max_batch: int = 500,
        max_buffered: int = 50_000,
        max_attempts: int = 3,
        prune_interval: float = 60.0,
        max_prune_batches: int = 100,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.owns_engine = owns_engine
        self.retention = retention
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.max_attempts = max_attempts
        self.prune_interval = prune_interval
        self.max_prune_batches = max_prune_batches
        self.dropped = 0
        self._buffer: deque[LoggedRequest] = deque()
        self._failures = 0
        self._last_prune: float | None = None
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        _LIVE.add(self)

    # -- the request side: never blocks on the database, never raises ----------------

    def record(self, request: LoggedRequest) -> None:
        """Buffer one request for the next batch."""
        if len(self._buffer) >= self.max_buffered:
            self.dropped += 1
            return
        self._buffer.append(request)
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if len(self._buffer) >= self.max_batch:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():
                # A forked child: the parent's thread did not come along, and
                # the rows it had buffered are the parent's to write.
                self._pid = os.getpid()
                self._thread = None
                self._buffer.clear()
            if self._thread is not None or self._closed.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="hub-scim-request-log", daemon=True
            )
            self._thread.start()

    # -- the background side ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
                self._prune_if_due()
            except Exception:  # the thread must outlive any failure
                logger.exception("provisioning log: flush failed")

    def flush(self) -> int:
        """Write what is buffered now; return the rows written.

        Safe from any thread; never raises for a database error.
        """
        with self._flush_lock:
            written = 0
            while self._buffer:
                batch = [
                    self._buffer.popleft() for _ in range(min(self.max_batch, len(self._buffer)))
                ]
                stored = self._write(batch)
                if stored is None:  # kept for the next round
                    break
                written += stored
            return written

    def _write(self, batch: list[LoggedRequest]) -> int | None:
        try:
            with self.engine.begin() as connection:
                append(connection, batch)
        except IntegrityError:
            # A row the database refuses (its organization deleted meanwhile)
            # must not take the batch's other rows with it.
            return self._write_one_by_one(batch)
        except SQLAlchemyError as error:
            self._failures += 1
            if self._failures < self.max_attempts:
                logger.warning("provisioning log: %d rows not written yet: %s", len(batch), error)
                self._buffer.extendleft(reversed(batch))
                return None
            logger.error("provisioning log: %d rows dropped: %s", len(batch), error)
            self._failures = 0
            self.dropped += len(batch)
            return 0
        self._failures = 0
        return len(batch)

    def _write_one_by_one(self, batch: list[LoggedRequest]) -> int:
        written = 0
        for request in batch:
            try:
                with self.engine.begin() as connection:
                    append(connection, [request])
            except SQLAlchemyError as error:
                self.dropped += 1
                logger.warning("provisioning log: a row refused: %s", error)
            else:
                written += 1
        return written

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < self.prune_interval:
            return
        self._last_prune = now
        self.prune()

    def prune(self) -> int:
        """Delete rows past the retention, one small transaction per batch; return how many."""
        defaults = RetentionPeriods(request_log_days=max(1, self.retention.days))
        try:
            report = prune(
                self.engine,
                defaults,
                kinds=(REQUEST_LOG,),
                stop=self._closed,
                max_batches=self.max_prune_batches,
            )
        except SQLAlchemyError as error:
            logger.warning("provisioning log: pruning failed: %s", error)
            return 0
        return report.total()

    def close(self) -> None:
        """Stop the thread, write what is buffered, release an engine of its own."""
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None
        self.flush()
        if self.owns_engine:
            self.engine.dispose()


@atexit.register
def _flush_at_exit() -> None:
    for recorder in list(_LIVE):
        if recorder._pid == os.getpid():
            recorder.close()
