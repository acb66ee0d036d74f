"""Tables of the job store: JSON documents plus indexed columns for what is queried."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("parent_id", String(32), nullable=True, index=True),
    Column("tree", Text, nullable=False),           # JSON list of ancestor ids, root first
    Column("api_key", String(64), nullable=False, unique=True),
    Column("fax_domain", String(255), nullable=True, unique=True),
    Column("doc", Text, nullable=False),            # JSON settings (inbound_email, smtp_permission_list...)
    Column("created", BigInteger, nullable=False),  # Gregorian seconds
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("expires", Float, nullable=False, index=True),  # Unix time
)

# One row per fax: outbound jobs (direction "out") and inbound receptions (direction "in").
faxes = Table(
    "faxes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created", BigInteger, nullable=False),  # Gregorian seconds
    Column("modified", BigInteger, nullable=False),
    Column("to_number", String(64), nullable=True),
    Column("from_number", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", Float, nullable=True),   # Unix time the job is due (pending only)
    Column("node", String(255), nullable=True),     # node that claimed it (processing only)
    Column("claimed_at", Float, nullable=True),
    Column("cancel_reason", Text, nullable=True),   # set by DELETE while processing
    Column("progress", Text, nullable=True),        # JSON, live while processing
    Column("deleted", Boolean, nullable=False, default=False),
    Column("rev", String(40), nullable=False),
    Column("doc", Text, nullable=False),            # JSON public document
)
Index("ix_faxes_listing", faxes.c.account_id, faxes.c.direction, faxes.c.created, faxes.c.id)
Index("ix_faxes_due", faxes.c.status, faxes.c.next_attempt)
Index("ix_faxes_to", faxes.c.to_number, faxes.c.status)

attachments = Table(
    "attachments",
    metadata,
    Column("fax_id", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("fax_id", "name"),
)

smtplog = Table(
    "smtplog",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("doc", Text, nullable=False),
)
Index("ix_smtplog_listing", smtplog.c.account_id, smtplog.c.created, smtplog.c.id)

notify_log = Table(
    "notify_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fax_id", String(32), nullable=True, index=True),
    Column("kind", String(20), nullable=False),     # email | sms | webhook
    Column("target", Text, nullable=False),
    Column("event", String(40), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
)
