"""The scheduler: claims due jobs, runs one attempt each on a channel, and releases them.

State moves only through conditional store updates (pending -> processing by ``Store.claim``,
processing -> completed/pending/failed by ``release``), so a job always ends with a reason, also
after a crash: at start-up a job found ``processing`` is released as an interrupted attempt.

Store work runs on worker threads (``asyncio.to_thread``), never on the event loop, so a slow store
does not stall the T.38 calls and API requests that share the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from engine.channels.base import Channel, OutboundCall
from engine.config import Config
from engine.result import SessionResult
from engine.store.documents import DocumentError, DocumentService
from engine.store.store import Conflict, Fax, Store

log = logging.getLogger(__name__)

CAUSE_ALIASES = {
    "remote_disconnected": "remote_hangup",
    "hangup": "remote_hangup",
    "no_response": "no_answer",
    "no_carrier": "no_answer",
    "no_dialtone": "no_answer",
    "tcf_failed": "training_failed",
    "failure_to_train": "training_failed",
    # SIP (t38.sip): SIP 486/600 are "busy", 408/480/487 "no_answer" already
    "channel_busy": "busy",              # the trunk is at its max_calls: a line frees up like a busy one
    "t38_refused": "no_answer",          # answered, but no fax (the no-carrier case of a modem)
    "t38_timeout": "no_answer",          # answered, never switched to T.38
    "media_timeout": "remote_hangup",    # the far end went silent mid-fax: the call was lost
    # not_found, forbidden, rejected, bad_number, media_refused are never retried (no delay)
}


@dataclass
class _Running:
    job_id: str
    account_id: str
    to_number: str
    channel: Channel | None = None
    task: asyncio.Task | None = None
    cancel_reason: str | None = None


def kazoo_tx_result(result: SessionResult) -> dict:
    """The schema's tx_result plus the runtime keys Kazoo clients read."""
    tx = result.tx_result()
    tx.update({
        "result_code": 0 if result.success else (result.error_code or "error"),
        "result_text": "OK" if result.success else result.error_message,
        "transferred_pages": result.pages_sent,
        "remote_station_id": result.remote_ident,
        "ecm_used": result.ecm,
        "fax_modulation": result.modulation,
        "fax_resolution": result.resolution,
        "error_phase": result.error_phase,
    })
    return tx


class Scheduler:
    def __init__(self, store: Store, config: Config, documents: DocumentService, channels: dict[str, Channel],
                 notifier=None):  # noqa: ANN001
        self.store = store
        self.config = config
        self.cfg = config["scheduler"]
        self.documents = documents
        self.channels = channels
        self.notifier = notifier
        self.node = config.node_id
        self._wake = asyncio.Event()
        self._running: dict[str, _Running] = {}
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_stale_check = time.time()
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        for channel in self.channels.values():
            await channel.start()
        await asyncio.to_thread(self.recover)
        if self.cfg["enabled"]:
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.shield(self._task)
            self._task.cancel()
        for run in list(self._running.values()):
            self.cancel(run.job_id, "interrupted: the fax engine is shutting down", final=False)
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.stop()

    def recover(self) -> None:
        """Jobs left ``processing`` by a dead process: that attempt counts, then retry or fail."""
        node = None if self.store.is_sqlite else self.node
        stale = None if node is None else self._stale_before()   # one node on SQLite: all of them are ours
        for job in self.store.processing_jobs(node, stale_before=stale):
            log.warning("job %s was interrupted (node %s); releasing it", job.id, job.node)
            result = SessionResult(success=False, error_code="interrupted",
                                   error_message="interrupted: the fax engine stopped during transmission",
                                   retryable=True)
            self.release(job, result)
        for rec in self.store.processing_jobs(node, direction="in"):
            log.warning("reception %s was interrupted; marking it failed", rec.id)
            doc = dict(rec.doc)
            doc["rx_result"] = {**(doc.get("rx_result") or {}), "success": False,
                                "error_message": "interrupted: the fax engine stopped during reception"}
            with contextlib.suppress(Conflict):
                self.store.update_fax(rec.id, expect_status=["receiving"], doc=doc, status="failed",
                                      progress={"phase": "done", "status": "failed"})

    def _stale_before(self) -> float:
        return time.time() - float(self.cfg["attempt_timeout"]) - 120

    def _recover_stale(self, running: set[str]) -> None:
        """Jobs claimed long ago by a node that never released them (it died and did not come back)."""
        for job in self.store.processing_jobs(stale_before=self._stale_before()):
            if job.id not in running:
                log.warning("job %s claimed by %s at %s is stale; releasing it", job.id, job.node, job.claimed_at)
                self.release(job, SessionResult(success=False, error_code="interrupted", retryable=True,
                                                error_message="interrupted: the node sending it stopped responding"))

    def wake(self) -> None:
        self.call_on_loop(self._wake.set)

    def call_on_loop(self, fn, *args) -> None:  # noqa: ANN001
        """Run ``fn`` on the scheduler's event loop: API handlers and the SMTP gateway call in from threads."""
        loop = self._event_loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or loop.is_closed():
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def running(self) -> list[str]:
        return list(self._running)

    def cancel(self, job_id: str, reason: str, final: bool = True) -> bool:
        """End a running attempt; ``final`` means the job is not retried."""
        run = self._running.get(job_id)
        if run is None:
            return False
        if final or run.cancel_reason is None:
            run.cancel_reason = reason if final else None
        if run.channel is not None:
            run.channel.abort(job_id, reason)
        elif run.task is not None:  # still fetching/converting: stop that
            run.task.cancel()
        return True

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        # Checks _stopping itself: on 3.11 a cancellation that races with the wake-up can be swallowed.
        while not self._stopping:
            try:
                await self._tick()
            except Exception:
                log.exception("scheduler tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg["poll_interval"]):
                    await self._wake.wait()

    async def _tick(self) -> None:
        now = time.time()
        if now - self._last_stale_check > 60:
            self._last_stale_check = now
            await asyncio.to_thread(self._recover_stale, set(self._running))
        if self._running:  # cancellations requested through another node or process
            requests = await asyncio.to_thread(self.store.cancel_requests, list(self._running))
            for job_id, reason in requests.items():
                run = self._running.get(job_id)
                if run is not None and run.cancel_reason is None:
                    self.cancel(job_id, reason)
        now = time.time()
        due = await asyncio.to_thread(self.store.due_jobs, now, self.cfg["claim_batch"])
        if not due:
            return
        per_account, numbers = await asyncio.to_thread(self.store.busy_lines)
        limit = self.cfg["max_outbound_per_account"]
        serialize = bool(self.cfg["serialize_destinations"])
        for job in due:
            if self._stopping:
                return
            # A first cut from one snapshot; the claim itself re-checks both limits atomically.
            if per_account.get(job.account_id, 0) >= limit:
                continue
            if serialize and job.to_number in numbers:
                continue
            claimed = await asyncio.to_thread(self.store.claim, job.id, self.node, account_limit=limit,
                                              one_per_destination=serialize)
            if claimed is None:
                continue
            per_account[job.account_id] = per_account.get(job.account_id, 0) + 1
            numbers.add(job.to_number)
            run = _Running(claimed.id, claimed.account_id, claimed.to_number or "")
            self._running[claimed.id] = run
            run.task = asyncio.create_task(self._attempt(claimed, run), name=f"fax-{claimed.id}")

    # ------------------------------------------------------------------ one attempt

    def _channel_name(self, job: Fax) -> str:
        """The job's own channel, else the default (which may not be configured any more)."""
        name = job.doc.get("channel")
        return name if isinstance(name, str) and name else self.config["channels"]["default"]

    async def _attempt(self, job: Fax, run: _Running) -> None:
        last: dict = {"at": 0.0, "key": None}

        def progress(state: dict) -> None:
            # Written through to the store, so any node's GET sees it; throttled except on phase/page changes.
            now = time.monotonic()
            key = (state.get("phase"), state.get("page"))
            if key != last["key"] or now - last["at"] > 0.5:
                last["at"], last["key"] = now, key
                self.store.set_progress_later(job.id, state)

        try:
            result = await self._attempt_body(job, run, progress)
        except asyncio.CancelledError:
            result = SessionResult(success=False, error_code="aborted",
                                   error_message=run.cancel_reason or "interrupted: the fax engine is shutting down",
                                   retryable=run.cancel_reason is None)
        except Exception as exc:
            log.exception("attempt of job %s crashed", job.id)
            result = SessionResult(success=False, error_code="internal", error_message=f"internal error: {exc}",
                                   retryable=True)
        finally:
            self._running.pop(job.id, None)
        if self._stopping and run.cancel_reason is None and not result.success:
            result.retryable = True   # cut short by our own shutdown: the job deserves another try
        if run.cancel_reason is not None:
            result.success = False
            result.retryable = False
            if run.cancel_reason not in result.error_message:
                result.error_message = run.cancel_reason
            result.error_code = result.error_code or "aborted"
        try:
            await asyncio.to_thread(self.release, job, result)
        except Exception:
            log.exception("release of job %s failed", job.id)
        self.wake()

    async def _attempt_body(self, job: Fax, run: _Running, progress) -> SessionResult:  # noqa: ANN001
        progress({"phase": "preparing", "event": "phase"})
        name = self._channel_name(job)
        channel = self.channels.get(name)
        if channel is None:
            # A stored job naming a channel the configuration no longer has: never a silent reroute.
            return SessionResult(success=False, error_code="no_channel", retryable=False,
                                 error_message=f"channel {name!r} is not configured on this server")
        try:
            prepared = await self.documents.prepare(job)
        except DocumentError as exc:
            return SessionResult(success=False, error_code="bad_file", error_message=str(exc), retryable=False)
        if run.cancel_reason is not None:
            return SessionResult(success=False, error_code="aborted", error_message=run.cancel_reason,
                                 retryable=False)
        run.channel = channel
        doc = job.doc
        call = OutboundCall(job_id=job.id, account_id=job.account_id, pages=prepared.pages,
                            to_number=job.to_number or "", from_number=job.from_number or "",
                            ident=str(doc.get("fax_identity_number") or doc.get("from_number") or ""),
                            from_name=str(doc.get("from_name") or ""))
        progress({"phase": "dialing", "event": "phase", "pages": len(prepared.pages), "channel": channel.name})
        try:
            async with asyncio.timeout(self.cfg["attempt_timeout"]):   # not wait_for: it can eat a cancel (3.11)
                return await channel.send(call, progress)
        except TimeoutError:
            channel.abort(job.id, "fax job timed out")
            return SessionResult(success=False, error_code="timeout", error_message="fax job timed out",
                                 retryable=True)

    def retry_delay(self, code: str) -> float:
        delays = self.cfg["retry_delay"]
        code = code or ""
        if code in delays:
            return float(delays[code])
        alias = CAUSE_ALIASES.get(code)
        if alias in delays:
            return float(delays[alias])
        return float(self.cfg["default_retry_delay"])

    def release(self, job: Fax, result: SessionResult) -> Fax | None:
        for _ in range(5):
            cur = self.store.get_fax(job.id, include_deleted=True)
            if cur is None or cur.status != "processing":
                return cur
            doc = dict(cur.doc)
            attempts = int(doc.get("attempts") or 0) + 1
            doc["attempts"] = attempts
            doc["tx_result"] = kazoo_tx_result(result)
            max_attempts = max(int(doc.get("retries") or 1), 1)
            next_attempt = None
            if result.success:
                status = "completed"
            elif result.retryable and attempts < max_attempts:
                status = "pending"
                next_attempt = time.time() + self.retry_delay(result.error_code)
            else:
                status = "failed"
            final_progress = {"phase": "done", "status": status}
            try:
                new = self.store.update_fax(cur.id, expect_status=["processing"], expect_rev=cur.rev, doc=doc,
                                            status=status, next_attempt=next_attempt, node=None,
                                            progress=final_progress)
            except Conflict:
                continue
            log.info("job %s attempt %d: %s (%s)", cur.id, attempts, status, result.error_message or "ok")
            if status in ("completed", "failed") and self.notifier is not None:
                self._notify(new)
            return new
        log.error("could not release job %s", job.id)
        return None

    def _notify(self, f: Fax) -> None:
        """Hand a finished job to the notifier on the event loop (release runs on a worker thread)."""
        self.call_on_loop(self.notifier.outbound_finished, f)
