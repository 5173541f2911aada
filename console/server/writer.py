"""The report writer: one thread per process applies reports, committing several together under load.

Reports that queue up while a transaction commits are applied in the next one (group commit): each
report is still all-or-nothing, its ack waits for the commit that holds it, and a commit (an fsync on
SQLite's checkpoints, a round trip and a WAL flush on PostgreSQL) is shared by up to ``max_batch``
reports instead of paid by each. If a batch fails as a whole (a database error), it is rolled back and
every report in it is retried alone, so one bad report cannot take others down with it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from console import governance
from console.server import auth, ingest, ingest_store
from console.server.db import Database
from console.server.errors import CollectorError

log = logging.getLogger("agentroster.server")
Result = ingest.Outcome | ingest.IngestError | Exception


@dataclass(slots=True)
class _Job:
    key: auth.Presented
    report: Mapping[str, Any]
    future: asyncio.Future[Result]
    loop: asyncio.AbstractEventLoop
    now: float | None = None
    prepared: ingest.Prepared | None = None  # made by the request, outside the write lock


class StoreUnavailable(CollectorError):
    """The database failed while applying a report; the device should retry later."""

    code = "store_unavailable"
    status = 503


class Writer:
    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="agentroster-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def apply(self, key: auth.Presented, report: Mapping[str, Any], *, now: float | None = None,
                    prepared: ingest.Prepared | None = None) -> ingest.Outcome:
        """Apply one validated report; raises the IngestError it was refused with, or StoreUnavailable.

        ``prepared`` (``ingest.prepare_report`` with the same ``now``) saves the writer that work, which
        would otherwise be done while it holds the store's write lock.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.put(_Job(key, report, future, loop, now, prepared))
        result = await future
        if isinstance(result, ingest.Outcome):
            return result
        if isinstance(result, ingest.IngestError):
            raise result
        raise StoreUnavailable(type(result).__name__)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            # The batch is gathered once the lock is held: what arrived while another process wrote
            # shares this commit rather than waiting for the next.
            with self.db.write_lock():
                batch = self._gather(job)
                # the same order in every process, so that two batches never wait on each other's devices
                batch.sort(key=lambda j: j.key.key_id)
                results = self._run(batch)
            for done, result in zip(batch, results, strict=True):
                done.loop.call_soon_threadsafe(_resolve, done.future, result)

    def _gather(self, first: _Job) -> list[_Job]:
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(more)
        return batch

    def _run(self, batch: list[_Job], *, first_try: bool = True) -> list[Result]:
        """Apply ``batch`` in one transaction; the caller holds the store's write lock."""
        try:
            with self.db.transaction() as conn:
                policy = ingest_store.current_policy(conn)  # one policy for the whole batch
                return [_apply_one(conn, job, first_try, policy) for job in batch]
        except Exception as exc:  # a database error: nothing of this batch was committed
            if len(batch) == 1:
                log.warning("report from device key %s not applied: %s", batch[0].key.key_id, type(exc).__name__)
                return [exc]
            return [self._run([job], first_try=False)[0] for job in batch]


def _apply_one(conn: Any, job: _Job, first_try: bool, policy: governance.Policy) -> Result:
    # a failed try may have changed the prepared rows: a retry prepares them again
    prepared = job.prepared if first_try else None
    try:
        return ingest_store.apply_report(conn, job.key, job.report, job.now, prepared, policy)
    except ingest.IngestError as exc:  # refused before it wrote anything: the batch goes on
        return exc


def _resolve(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(result)
