"""The job store over SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL by URL.

Every write is one short transaction.  Status changes are conditional updates so that a claim,
a release and an API edit can never silently overwrite one another."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, create_engine, delete, event, func, insert, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection, Engine

from engine.store.schema import accounts, attachments, auth_tokens, faxes, metadata, notify_log, smtplog

log = logging.getLogger(__name__)

GREGORIAN_OFFSET = 62167219200  # seconds from 0000-01-01 to 1970-01-01 (Kazoo times)

OUT_FINISHED = ("completed", "failed")
_FAX_INSERT = insert(faxes)


def gregorian_now() -> int:
    return int(time.time()) + GREGORIAN_OFFSET


def new_id() -> str:
    return uuid.uuid4().hex


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def next_rev(rev: str | None, doc: dict, status: str) -> str:
    n = int(rev.split("-", 1)[0]) + 1 if rev else 1
    digest = hashlib.md5((dumps(doc) + status).encode()).hexdigest()
    return f"{n}-{digest}"


class StoreError(Exception):
    pass


class Conflict(StoreError):
    """The row changed under us (another writer won), or its state forbids the change."""


@dataclass
class Fax:
    id: str
    account_id: str
    direction: str
    status: str
    created: int
    modified: int
    to_number: str | None
    from_number: str | None
    attempts: int
    next_attempt: float | None
    node: str | None
    claimed_at: float | None
    cancel_reason: str | None
    progress: dict | None
    deleted: bool
    rev: str
    doc: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> Fax:
        m = row._mapping
        return cls(
            id=m["id"], account_id=m["account_id"], direction=m["direction"], status=m["status"],
            created=m["created"], modified=m["modified"], to_number=m["to_number"],
            from_number=m["from_number"], attempts=m["attempts"], next_attempt=m["next_attempt"],
            node=m["node"], claimed_at=m["claimed_at"], cancel_reason=m["cancel_reason"],
            progress=json.loads(m["progress"]) if m["progress"] else None, deleted=bool(m["deleted"]),
            rev=m["rev"], doc=json.loads(m["doc"]),
        )


@dataclass
class Account:
    id: str
    name: str
    parent_id: str | None
    tree: list[str]
    api_key: str
    fax_domain: str | None
    settings: dict
    created: int

    @classmethod
    def from_row(cls, row: Any) -> Account:
        m = row._mapping
        return cls(id=m["id"], name=m["name"], parent_id=m["parent_id"], tree=json.loads(m["tree"]),
                   api_key=m["api_key"], fax_domain=m["fax_domain"], settings=json.loads(m["doc"]),
                   created=m["created"])


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8,
                           max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # Writers take the lock up front: a deferred transaction that upgrades later can deadlock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class Store:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _sqlite_engine(url) if self.is_sqlite else create_engine(url, pool_size=10, max_overflow=20,
                                                                                pool_pre_ping=True)
        metadata.create_all(self.engine)
        # SQLite has one writer: our threads queue on this lock instead of polling the file lock.
        self._lock = threading.RLock()
        self._progress_lock = threading.Lock()
        self._progress_due: dict[str, dict] = {}
        self._progress_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-progress")

    def close(self) -> None:
        self._progress_pool.shutdown(wait=True)
        self.engine.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.is_sqlite:
            with self._lock, self.engine.connect().execution_options(write=True) as conn:
                yield conn
        else:
            with self.engine.connect() as conn:
                yield conn

    def _read(self):
        return self.engine.connect()

    # ---------------------------------------------------------------- accounts and tokens

    def create_account(self, name: str, parent_id: str | None = None, fax_domain: str | None = None,
                       settings: dict | None = None, default_domain: str = "fax.localhost") -> Account:
        account_id = new_id()
        with self._write() as conn, conn.begin():
            tree: list[str] = []
            if parent_id:
                row = conn.execute(select(accounts.c.tree).where(accounts.c.id == parent_id)).first()
                if row is None:
                    raise StoreError(f"no parent account {parent_id}")
                tree = json.loads(row[0]) + [parent_id]
            values = dict(id=account_id, name=name, parent_id=parent_id, tree=dumps(tree),
                          api_key=secrets.token_hex(32),
                          fax_domain=(fax_domain or f"{account_id}.{default_domain}").lower(),
                          doc=dumps(settings or {}), created=gregorian_now())
            conn.execute(insert(accounts).values(**values))
        return self.get_account(account_id)

    def count_accounts(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(accounts)).scalar_one()

    def get_account(self, account_id: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        return Account.from_row(row) if row else None

    def account_by_api_key(self, api_key: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(accounts).where(accounts.c.api_key == api_key)).first()
        return Account.from_row(row) if row else None

    def account_by_domain(self, domain: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(accounts).where(accounts.c.fax_domain == domain.lower())).first()
        return Account.from_row(row) if row else None

    def account_for_number(self, number: str) -> Account | None:
        """The account owning a fax number (``settings.numbers``), for inbound calls from trunks and modems."""
        digits = number.lstrip("+")
        with self._read() as conn:
            rows = conn.execute(select(accounts)).all()
        for row in rows:
            account = Account.from_row(row)
            owned = account.settings.get("numbers") or []
            if any(str(n).lstrip("+") == digits for n in owned):
                return account
        return None

    def update_account_settings(self, account_id: str, settings: dict) -> Account:
        with self._write() as conn, conn.begin():
            row = conn.execute(select(accounts.c.doc).where(accounts.c.id == account_id)).first()
            if row is None:
                raise StoreError(f"no account {account_id}")
            doc = json.loads(row[0])
            doc.update(settings)
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(doc=dumps(doc)))
        return self.get_account(account_id)

    def create_token(self, account_id: str, ttl: float) -> tuple[str, float]:
        token = secrets.token_hex(32)
        expires = time.time() + ttl
        with self._write() as conn, conn.begin():
            conn.execute(delete(auth_tokens).where(auth_tokens.c.expires < time.time()))
            conn.execute(insert(auth_tokens).values(token=token, account_id=account_id, expires=expires))
        return token, expires

    def check_token(self, token: str) -> tuple[str, float] | None:
        with self._read() as conn:
            row = conn.execute(select(auth_tokens.c.account_id, auth_tokens.c.expires)
                               .where(auth_tokens.c.token == token)).first()
        if row is None or row[1] < time.time():
            return None
        return row[0], row[1]

    # ---------------------------------------------------------------- faxes

    def insert_fax(self, account_id: str, direction: str, status: str, doc: dict, *,
                   next_attempt: float | None = None, files: dict[str, tuple[str, bytes]] | None = None,
                   fax_id: str | None = None, progress: dict | None = None, node: str | None = None) -> Fax:
        fax_id = fax_id or new_id()
        now = gregorian_now()
        doc = dict(doc)
        row = dict(id=fax_id, account_id=account_id, direction=direction, status=status, created=now,
                   modified=now, to_number=doc.get("to_number"), from_number=doc.get("from_number"),
                   attempts=int(doc.get("attempts") or 0), next_attempt=next_attempt, node=node,
                   claimed_at=None, cancel_reason=None, progress=dumps(progress) if progress else None,
                   deleted=False, rev=next_rev(None, doc, status), doc=dumps(doc))
        with self._write() as conn, conn.begin():
            conn.execute(_FAX_INSERT, row)   # one prepared statement: the parameters vary, not the SQL
            for name, (ctype, data) in (files or {}).items():
                self._put_attachment(conn, fax_id, name, ctype, data)
        return Fax(id=fax_id, account_id=account_id, direction=direction, status=status, created=now, modified=now,
                   to_number=row["to_number"], from_number=row["from_number"], attempts=row["attempts"],
                   next_attempt=next_attempt, node=node, claimed_at=None, cancel_reason=None, progress=progress,
                   deleted=False, rev=row["rev"], doc=doc)

    def get_fax(self, fax_id: str, include_deleted: bool = False) -> Fax | None:
        q = select(faxes).where(faxes.c.id == fax_id)
        if not include_deleted:
            q = q.where(faxes.c.deleted.is_(False))
        with self._read() as conn:
            row = conn.execute(q).first()
        return Fax.from_row(row) if row else None

    def update_fax(self, fax_id: str, *, expect_status: Iterable[str] | None = None, expect_rev: str | None = None,
                   doc: dict | None = None, **columns: Any) -> Fax:
        """Change a fax in one transaction; raises Conflict if its status/rev is not as expected."""
        with self._write() as conn, conn.begin():
            row = conn.execute(select(faxes).where(faxes.c.id == fax_id)).first()
            if row is None:
                raise StoreError(f"no fax {fax_id}")
            cur = Fax.from_row(row)
            if expect_status is not None and cur.status not in tuple(expect_status):
                raise Conflict(f"fax {fax_id} is {cur.status}")
            if expect_rev is not None and cur.rev != expect_rev:
                raise Conflict(f"fax {fax_id} changed (rev {cur.rev})")
            new_doc = cur.doc if doc is None else doc
            values = dict(columns)
            if "progress" in values and values["progress"] is not None:
                values["progress"] = dumps(values["progress"])
            status = values.get("status", cur.status)
            if doc is not None or "status" in values:
                values["doc"] = dumps(new_doc)
                values["rev"] = next_rev(cur.rev, new_doc, status)
                values["to_number"] = new_doc.get("to_number")
                values["from_number"] = new_doc.get("from_number")
                values["attempts"] = int(new_doc.get("attempts") or 0)
                values["modified"] = gregorian_now()
            res = conn.execute(update(faxes).where(and_(faxes.c.id == fax_id, faxes.c.rev == cur.rev))
                               .values(**values))
            if res.rowcount != 1:
                raise Conflict(f"fax {fax_id} changed concurrently")
        return self.get_fax(fax_id, include_deleted=True)

    def set_progress(self, fax_id: str, progress: dict) -> None:
        """Live progress of a call in progress (a finished job keeps its final progress)."""
        with self._write() as conn, conn.begin():
            conn.execute(update(faxes).where(faxes.c.id == fax_id, faxes.c.status.in_(("processing", "receiving")))
                         .values(progress=dumps(progress)))

    def set_progress_later(self, fax_id: str, progress: dict) -> None:
        """set_progress on a writer thread, for callers on the event loop (a T.30 session must not wait
        on the store); states not yet written are replaced by the newest."""
        with self._progress_lock:
            queued = fax_id in self._progress_due
            self._progress_due[fax_id] = progress
        if not queued:
            try:
                self._progress_pool.submit(self._write_progress, fax_id)
            except RuntimeError:   # closed
                self._progress_due.pop(fax_id, None)

    def _write_progress(self, fax_id: str) -> None:
        with self._progress_lock:
            state = self._progress_due.pop(fax_id, None)
        if state is not None:
            try:
                self.set_progress(fax_id, state)
            except Exception:
                log.exception("progress of %s not recorded", fax_id)

    def list_faxes(self, account_id: str, direction: str, *, statuses: Iterable[str] | None = None,
                   start_key: tuple[int, str] | None = None, limit: int | None = 50,
                   created_from: int | None = None, created_to: int | None = None,
                   modified_from: int | None = None, modified_to: int | None = None,
                   ascending: bool = False, columns_only: bool = False) -> list:
        """Newest first (by creation, then id); ``start_key`` is the (created, id) of the first row wanted."""
        cols = [faxes.c.id, faxes.c.status, faxes.c.to_number, faxes.c.from_number, faxes.c.attempts,
                faxes.c.created] if columns_only else [faxes]
        q = select(*cols).where(faxes.c.account_id == account_id, faxes.c.direction == direction,
                                faxes.c.deleted.is_(False))
        if statuses is not None:
            q = q.where(faxes.c.status.in_(tuple(statuses)))
        if created_from is not None:
            q = q.where(faxes.c.created >= created_from)
        if created_to is not None:
            q = q.where(faxes.c.created <= created_to)
        if modified_from is not None:
            q = q.where(faxes.c.modified >= modified_from)
        if modified_to is not None:
            q = q.where(faxes.c.modified <= modified_to)
        key = tuple_(faxes.c.created, faxes.c.id)
        if start_key is not None:
            q = q.where(key >= tuple_(*start_key) if ascending else key <= tuple_(*start_key))
        if ascending:
            q = q.order_by(faxes.c.created.asc(), faxes.c.id.asc())
        else:
            q = q.order_by(faxes.c.created.desc(), faxes.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [r._mapping for r in rows] if columns_only else [Fax.from_row(r) for r in rows]

    def count_faxes(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(faxes)).scalar_one()

    # ---------------------------------------------------------------- scheduling

    def due_jobs(self, now: float, limit: int) -> list[Fax]:
        q = (select(faxes).where(faxes.c.direction == "out", faxes.c.status == "pending",
                                 faxes.c.deleted.is_(False), faxes.c.next_attempt <= now)
             .order_by(faxes.c.next_attempt).limit(limit))
        with self._read() as conn:
            return [Fax.from_row(r) for r in conn.execute(q).all()]

    def busy_lines(self) -> tuple[dict[str, int], set[str]]:
        """Jobs in transmission anywhere: count per account, and the destination numbers in use."""
        q = select(faxes.c.account_id, faxes.c.to_number).where(faxes.c.direction == "out",
                                                                 faxes.c.status == "processing")
        per_account: dict[str, int] = {}
        numbers: set[str] = set()
        with self._read() as conn:
            for account_id, to_number in conn.execute(q).all():
                per_account[account_id] = per_account.get(account_id, 0) + 1
                numbers.add(to_number)
        return per_account, numbers

    def claim(self, fax_id: str, node: str, *, account_limit: int | None = None,
              one_per_destination: bool = False) -> Fax | None:
        """pending -> processing, atomically; None if someone else got it first, or if the account already
        has ``account_limit`` jobs in transmission, or (``one_per_destination``) its number is being called.

        The limits are checked inside the claiming transaction: on SQLite that transaction holds the
        database's only write lock; on PostgreSQL it takes transaction-scoped advisory locks on the
        account and on the destination number (always in that order), so two nodes cannot both pass."""
        now = time.time()
        with self._write() as conn, conn.begin():
            q = (select(faxes.c.rev, faxes.c.doc, faxes.c.account_id, faxes.c.to_number)
                 .where(faxes.c.id == fax_id, faxes.c.status == "pending", faxes.c.deleted.is_(False))
                 .with_for_update(skip_locked=True))
            row = conn.execute(q).first()
            if row is None:
                return None
            account_id, to_number = row[2], row[3]
            busy = and_(faxes.c.direction == "out", faxes.c.status == "processing")
            if not self.is_sqlite:
                keys = ([f"faxengine-account:{account_id}"] if account_limit is not None else []) + \
                    ([f"faxengine-destination:{to_number}"] if one_per_destination else [])
                for key in keys:
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
            if account_limit is not None:
                n = conn.execute(select(func.count()).select_from(faxes)
                                 .where(busy, faxes.c.account_id == account_id)).scalar_one()
                if n >= account_limit:
                    return None
            if one_per_destination:
                same = conn.execute(select(faxes.c.id).where(busy, faxes.c.to_number == to_number).limit(1)).first()
                if same is not None:
                    return None
            doc = json.loads(row[1])
            res = conn.execute(update(faxes).where(faxes.c.id == fax_id, faxes.c.rev == row[0],
                                                   faxes.c.status == "pending")
                               .values(status="processing", node=node, claimed_at=now, next_attempt=None,
                                       cancel_reason=None, progress=dumps({"phase": "claimed"}),
                                       modified=gregorian_now(), rev=next_rev(row[0], doc, "processing")))
            if res.rowcount != 1:
                return None
        return self.get_fax(fax_id)

    def processing_jobs(self, node: str | None = None, direction: str = "out",
                        stale_before: float | None = None) -> list[Fax]:
        """Jobs in transmission (direction "out") or receptions in progress ("in"): those of ``node`` if
        given, plus any claimed before ``stale_before`` (their node is presumed dead)."""
        status = "processing" if direction == "out" else "receiving"
        q = select(faxes).where(faxes.c.direction == direction, faxes.c.status == status)
        if node is not None:
            mine = or_(faxes.c.node == node, faxes.c.node.is_(None))
            if stale_before is not None:
                mine = or_(mine, faxes.c.claimed_at < stale_before)
            q = q.where(mine)
        elif stale_before is not None:
            q = q.where(faxes.c.claimed_at < stale_before)
        with self._read() as conn:
            return [Fax.from_row(r) for r in conn.execute(q).all()]

    def cancel_requests(self, ids: Iterable[str]) -> dict[str, str]:
        ids = tuple(ids)
        if not ids:
            return {}
        q = select(faxes.c.id, faxes.c.cancel_reason).where(faxes.c.id.in_(ids), faxes.c.cancel_reason.is_not(None))
        with self._read() as conn:
            return {r[0]: r[1] for r in conn.execute(q).all()}

    # ---------------------------------------------------------------- attachments

    @staticmethod
    def _put_attachment(conn, fax_id: str, name: str, ctype: str, data: bytes) -> None:  # noqa: ANN001
        conn.execute(delete(attachments).where(attachments.c.fax_id == fax_id, attachments.c.name == name))
        conn.execute(insert(attachments).values(fax_id=fax_id, name=name, content_type=ctype, size=len(data),
                                                md5=hashlib.md5(data).hexdigest(), data=data))

    def put_attachment(self, fax_id: str, name: str, ctype: str, data: bytes) -> None:
        with self._write() as conn, conn.begin():
            self._put_attachment(conn, fax_id, name, ctype, data)

    def get_attachment(self, fax_id: str, name: str) -> tuple[str, bytes] | None:
        with self._read() as conn:
            row = conn.execute(select(attachments.c.content_type, attachments.c.data)
                               .where(attachments.c.fax_id == fax_id, attachments.c.name == name)).first()
        return (row[0], bytes(row[1])) if row else None

    def attachment_names(self, fax_id: str) -> dict[str, str]:
        with self._read() as conn:
            rows = conn.execute(select(attachments.c.name, attachments.c.content_type)
                                .where(attachments.c.fax_id == fax_id)).all()
        return {r[0]: r[1] for r in rows}

    def delete_attachments(self, fax_id: str) -> int:
        with self._write() as conn, conn.begin():
            return conn.execute(delete(attachments).where(attachments.c.fax_id == fax_id)).rowcount

    def copy_attachments(self, src_id: str, dst_id: str, renames: dict[str, str]) -> None:
        with self._write() as conn, conn.begin():
            for old, new in renames.items():
                row = conn.execute(select(attachments.c.content_type, attachments.c.data)
                                   .where(attachments.c.fax_id == src_id, attachments.c.name == old)).first()
                if row is not None:
                    self._put_attachment(conn, dst_id, new, row[0], bytes(row[1]))

    # ---------------------------------------------------------------- smtplog and notification log

    def insert_smtplog(self, account_id: str | None, doc: dict) -> str:
        log_id = new_id()
        with self._write() as conn, conn.begin():
            conn.execute(insert(smtplog).values(id=log_id, account_id=account_id, created=gregorian_now(),
                                                doc=dumps(doc)))
        return log_id

    def list_smtplog(self, account_id: str, *, start_key: tuple[int, str] | None = None, limit: int | None = 50,
                     created_from: int | None = None, created_to: int | None = None) -> list[dict]:
        q = select(smtplog).where(smtplog.c.account_id == account_id)
        if created_from is not None:
            q = q.where(smtplog.c.created >= created_from)
        if created_to is not None:
            q = q.where(smtplog.c.created <= created_to)
        if start_key is not None:
            q = q.where(tuple_(smtplog.c.created, smtplog.c.id) <= tuple_(*start_key))
        q = q.order_by(smtplog.c.created.desc(), smtplog.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            return [dict(id=r.id, created=r.created, doc=json.loads(r.doc)) for r in conn.execute(q).all()]

    def get_smtplog(self, account_id: str, log_id: str) -> dict | None:
        with self._read() as conn:
            r = conn.execute(select(smtplog).where(smtplog.c.id == log_id, smtplog.c.account_id == account_id)).first()
        return dict(id=r.id, created=r.created, doc=json.loads(r.doc)) if r else None

    def log_notification(self, fax_id: str | None, kind: str, target: str, event_name: str, ok: bool, tries: int,
                         error: str) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(insert(notify_log).values(fax_id=fax_id, kind=kind, target=target, event=event_name, ok=ok,
                                                   tries=tries, error=error, created=gregorian_now()))

    def notifications_for(self, fax_id: str) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(select(notify_log).where(notify_log.c.fax_id == fax_id)
                                .order_by(notify_log.c.id)).all()
        return [dict(r._mapping) for r in rows]
