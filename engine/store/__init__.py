"""The job store (SQLAlchemy Core): faxes, attachments, accounts, tokens, smtplog."""

from engine.store.store import (
    GREGORIAN_OFFSET,
    Account,
    Conflict,
    Fax,
    Store,
    StoreError,
    gregorian_now,
    new_id,
)

__all__ = ["GREGORIAN_OFFSET", "Account", "Conflict", "Fax", "Store", "StoreError", "gregorian_now", "new_id"]
