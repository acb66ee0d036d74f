"""Per-model modem quirks, kept as data: a table of profiles keyed by identity fingerprints.

Each entry matches regular expressions against what the modem says to +FMI?/+FMM?/+FMR? (or
+GMI/ATI0/ATI3 where those are missing) and overrides fields of :class:`Quirks`.  The defaults are
the conservative HylaFAX ones (reference §3.4).  Code reads fields; it never tests model names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True)
class Quirks:
    name: str = "generic"
    # --- line and flow control
    flow: str = "rtscts"                 # "rtscts" | "xonxoff" | "none"
    flow_cmd: str = ""                   # e.g. "&K3"; sent after reset
    after_class1_cmd: str = ""           # re-assert flow control after +FCLASS=1 (USR switches to XON/XOFF)
    baudrate: int = 19200
    pace_tx: bool = False                # virtual flow control: write at line rate (modem flow control broken)
    pace_lead_seconds: float = 1.0
    # --- Class 1
    class1_cmd: str = "auto"             # "auto" = +FCLASS=1.0 when offered, else 1
    adaptive_receive: str = "auto"       # AT+FAR=1: "auto" (when +FAR=? answers), "yes", "no"
    tm_connect_delay: float = 0.0        # s to wait after +FTM CONNECT (CONNECT at start of training)
    fcs_bytes: int = 2                   # FCS bytes the modem passes on after a +FRH frame (0 on old firmware)
    validate_v21: bool = False           # compute the FCS ourselves (modem says OK on bad frames)
    rm_persistence: int = 2              # +FRM retries on +FCERROR before reporting the wrong carrier
    rh_connect_bug: bool = False         # CONNECT to +FRH on any carrier, then NO CARRIER
    has_fts: bool = True                 # +FTS works; else host delay
    has_frs: bool = True                 # +FRS works; else host delay (USR resets on +FRS)
    frs_cap: float = 60.0                # +FRS can wait forever on a noisy line
    recv_abort_ok: float = 0.2           # s to wait for OK after <CAN>; 0 = modem never answers
    carrier_loss: int = 2                # AT+FCL=<n>, n x 100 ms carrier-loss qualification (0 = leave the modem's)
    dte_inactivity: int = 60             # AT+FIT=<s>,<action>: modem hangs up by itself after s idle seconds (0 = off)
    dte_inactivity_action: int = 1       # +FIT action: 0 = on-hook and +FCLASS=0, 1 = on-hook only
    # --- dialling
    dial_cmd: str = "ATDT"
    ok_after_dial_means: str = "no_carrier"   # DataPort: OK = no carrier
    # --- Class 2 / 2.0
    class2_rx_reversed: str = "auto"     # Class 2 receive bit order: "auto" (reversed unless MultiTech), "yes", "no"
    class2_send_rtc: bool = False        # modem does not append RTC itself
    class2_dcc_override: str = ""        # capability reply to use instead of the modem's (it lies)
    class2_fnr: str = "1,1,1,1"
    class2_trigger: int = 0x12           # DC2 starts +FDR data
    class2_ok: bool = True               # the modem's Class 2/2.0 is usable at all
    class2_old_hangup_codes: bool = False  # +FHNG uses the pre-2388-A (2388/89 draft) numbers; they clash, so opt-in


@dataclass(frozen=True)
class QuirkEntry:
    name: str
    match: dict[str, str]                # field ("fmi", "fmm", "fmr", "ati0", "ati3") -> regex (search, ignore case)
    overrides: dict[str, object] = field(default_factory=dict)
    note: str = ""

    def matches(self, identity: dict[str, str]) -> bool:
        return all(re.search(rx, identity.get(key, "") or "", re.I) for key, rx in self.match.items())


# First match wins: put specific entries before general ones.
QUIRKS_TABLE: tuple[QuirkEntry, ...] = (
    QuirkEntry("spandsp-t31", {"ati3": r"soft-switch"}, {"adaptive_receive": "no"},
               "spandsp T.31 (iaxmodem, our virtual rig): CONNECT to +FTM after training; no +FAR"),
    QuirkEntry("spandsp-t31", {"fmi": r"spandsp|soft-switch"}, {"adaptive_receive": "no"}, ""),
    QuirkEntry("t38modem", {"fmi": r"T38FAX"}, {}, "t38modem >= 0.7 passes the FCS"),
    QuirkEntry("usr-courier-sportster", {"fmi": r"U\.?S\.? ?Robotics|USRobotics|3Com"},
               {"flow_cmd": "&H1&R2", "after_class1_cmd": "AT&H1", "has_frs": False, "class2_ok": False,
                "class2_send_rtc": True, "class2_fnr": "1,1,1,0"},
               "USR: +FRS resets the modem; auto XON/XOFF on +FCLASS=1; Class 2.0 unreliable"),
    QuirkEntry("usr-courier-sportster", {"ati0": r"^(5601|5607|5608A|1444|1445|2886|336[1267])$"},
               {"flow_cmd": "&H1&R2", "after_class1_cmd": "AT&H1", "has_frs": False, "class2_ok": False,
                "class2_send_rtc": True, "class2_fnr": "1,1,1,0"}, ""),
    QuirkEntry("multitech-lucent", {"fmi": r"Multi-?Tech", "fmm": r"ZBA|ZPX|SMI|5634"},
               {"flow_cmd": "&K3", "tm_connect_delay": 0.4, "rh_connect_bug": True, "class2_rx_reversed": "no"},
               "MultiTech on Lucent/Agere chips"),
    QuirkEntry("multitech-conexant", {"fmi": r"Multi-?Tech"},
               {"flow_cmd": "&K3", "adaptive_receive": "yes", "class2_rx_reversed": "no", "class2_send_rtc": True},
               "MultiTech ZDX (Conexant): bit order direct in Class 2"),
    QuirkEntry("lucent-agere", {"fmi": r"Lucent|Agere|LSI"},
               {"flow_cmd": "&K3", "tm_connect_delay": 0.4, "rh_connect_bug": True},
               "Lucent/Agere: XON/XOFF broken, CONNECT at start of training, RH-CONNECT bug"),
    QuirkEntry("lucent-agere", {"ati0": r"LT V\.9|Agere|Zoom V\.90"},
               {"flow_cmd": "&K3", "tm_connect_delay": 0.4, "rh_connect_bug": True}, ""),
    QuirkEntry("mainpine", {"fmi": r"Mainpine"},
               {"flow_cmd": "&K3", "tm_connect_delay": 0.4, "class2_send_rtc": True}, ""),
    QuirkEntry("conexant", {"fmi": r"Conexant|Rockwell|CXT"}, {"flow_cmd": "&K3", "adaptive_receive": "yes"},
               "Conexant/Rockwell: +FAR=1 avoids +FCERROR races"),
    QuirkEntry("conexant", {"ati0": r"^56000$"}, {"flow_cmd": "&K3", "adaptive_receive": "yes"}, ""),
    QuirkEntry("intel-537ep", {"fmi": r"Intel", "fmm": r"537"}, {"tm_connect_delay": 0.4, "baudrate": 38400}, ""),
    QuirkEntry("zyxel", {"fmi": r"ZyXEL"}, {"flow_cmd": "&H3"}, "ZyXEL: Class 1 6.14 firmware omits the FCS"),
    QuirkEntry("digi", {"fmi": r"Digi"}, {"rm_persistence": 0}, "Digi never reports +FCERROR"),
    QuirkEntry("att-dataport", {"fmi": r"AT&T|Paradyne", "fmm": r"DataPort"}, {"fcs_bytes": 0}, ""),
)


def lookup(identity: dict[str, str], table: tuple[QuirkEntry, ...] = QUIRKS_TABLE) -> Quirks:
    """The profile for a modem identity; the generic defaults when nothing matches."""
    for entry in table:
        if entry.match and entry.matches(identity):
            known = {f.name for f in fields(Quirks)}
            bad = set(entry.overrides) - known
            if bad:
                raise ValueError(f"quirk entry {entry.name} sets unknown fields {sorted(bad)}")
            return replace(Quirks(), name=entry.name, **entry.overrides)
    return Quirks()


def with_overrides(base: Quirks, overrides: dict[str, object]) -> Quirks:
    """Apply user overrides (e.g. from the command line) with a clear error for unknown names."""
    known = {f.name: f for f in fields(Quirks)}
    clean: dict[str, object] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"unknown modem quirk {key!r}; known: {', '.join(sorted(known))}")
        default = getattr(Quirks(), key)
        if isinstance(default, bool) and isinstance(value, str):
            value = value.lower() in ("1", "yes", "true", "on")
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
            value = type(default)(value)
        clean[key] = value
    return replace(base, **clean)
