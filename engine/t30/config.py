"""Settings of one T.30 session (local capabilities and the timer values)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class T30Config:
    ident: str = ""
    ecm: bool = True
    max_speed: int = 14400
    modems: tuple = ("v17", "v29", "v27ter")
    resolutions: tuple = ("standard", "fine", "superfine")
    compressions: tuple = ("mh", "mr", "mmr")
    min_scan_line_ms: int = 0          # what we, as receiver, ask for (0, 5, 10, 20 or 40)
    ecm_frame_size: int = 256          # 256, or 64 (as sender: what we send; as receiver: what we prefer)
    # T.30 timers (seconds) and retry limits
    t1: float = 35.0
    t2: float = 6.0
    t3: float = 10.0
    t4: float = 3.0
    t5: float = 60.0
    tries: int = 3
    tcf_first_byte_timeout: float = 4.5
    sink_grace: float = 1.0            # ECM receiver: how long a busy page sink may take before we answer RNR
    turnaround: float = 0.075          # silence between V.21 and high-speed signals
    max_page_retrains: int = 3         # RTN answers tolerated for one page
    ppr_per_speed: int = 4             # PPRs for one block before CTC/EOR

    def validate(self) -> None:
        if self.ecm_frame_size not in (64, 256):
            raise ValueError("ecm_frame_size must be 64 or 256")
        if self.min_scan_line_ms not in (0, 5, 10, 20, 40):
            raise ValueError("min_scan_line_ms must be 0, 5, 10, 20 or 40")
        unknown = set(self.modems) - {"v17", "v29", "v27ter"}
        if unknown or not self.modems:
            raise ValueError(f"modems must be a non-empty subset of v17, v29, v27ter (got {self.modems})")
        if not set(self.resolutions) <= {"standard", "fine", "superfine"} or "standard" not in self.resolutions:
            raise ValueError("resolutions must include standard and be among standard, fine, superfine")
        if not set(self.compressions) <= {"mh", "mr", "mmr"} or "mh" not in self.compressions:
            raise ValueError("compressions must include mh and be among mh, mr, mmr")
        if self.max_speed < 2400:
            raise ValueError("max_speed must be at least 2400")
