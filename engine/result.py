"""The record every fax session ends with; it fills the API's ``tx_result``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class SessionResult:
    success: bool = False
    role: str = "send"                 # "send" or "receive"
    pages_sent: int = 0
    pages_received: int = 0
    fax_speed: int = 0                 # bit/s of the last page
    modulation: str = ""               # e.g. "V17_14400"
    ecm: bool = False
    resolution: str = ""               # "standard" | "fine" | "superfine"
    compression: str = ""              # "mh" | "mr" | "mmr"
    bad_rows: int = 0
    remote_ident: str = ""
    local_ident: str = ""
    duration: float = 0.0              # seconds from session start to DCN
    error_phase: str = ""              # "A".."E" on failure
    error_code: str = ""               # short machine code, e.g. "no_response", "training_failed", "busy"
    error_message: str = ""            # human-readable, e.g. "no response to MPS after 3 tries"
    retryable: bool = True             # whether a scheduler should try again
    pages: list[str] = field(default_factory=list)  # files written by a receiver

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def tx_result(self) -> dict:
        """The Kazoo ``tx_result`` object."""
        return {
            "success": self.success,
            "pages_sent": self.pages_sent if self.role == "send" else self.pages_received,
            "fax_speed": self.fax_speed,
            "fax_error_correction": self.ecm,
            "fax_bad_rows": self.bad_rows,
            "fax_receiver_id": self.remote_ident,
            "time_elapsed": int(round(self.duration)),
            "error_message": self.error_message,
        }
