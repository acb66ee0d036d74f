"""``faxengine modem probe``: what a modem is, what it can do, and which quirks entry we would use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from modem.at import CommandTimeout
from modem.dial import ModemLine, parse_query

MODULATION_NAMES = {"24": "V.27ter 2400", "48": "V.27ter 4800", "72": "V.29 7200", "96": "V.29 9600",
                    "73": "V.17 7200 long", "74": "V.17 7200 short", "97": "V.17 9600 long", "98": "V.17 9600 short",
                    "121": "V.17 12000 long", "122": "V.17 12000 short", "145": "V.17 14400 long",
                    "146": "V.17 14400 short", "3": "V.21 300"}


@dataclass
class ProbeReport:
    port: str
    identity: dict[str, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    class1_tx: list[str] = field(default_factory=list)
    class1_rx: list[str] = field(default_factory=list)
    adaptive_receive: bool = False
    ecm: str = ""
    class2_caps: dict[str, str] = field(default_factory=dict)
    quirks: str = "generic"
    quirks_fields: dict = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)   # every reply verbatim (quirk fingerprinting)
    reset_rung: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def table(self) -> str:
        rows = [("port", self.port), ("reset", self.reset_rung)]
        for key in ("fmi", "fmm", "fmr", "ati0", "ati3"):
            if key in self.identity:
                rows.append((key, self.identity[key]))
        rows.append(("classes", ",".join(self.classes) or "-"))
        if self.class1_tx:
            rows.append(("class 1 +FTM", ", ".join(MODULATION_NAMES.get(m, m) for m in self.class1_tx)))
            rows.append(("class 1 +FRM", ", ".join(MODULATION_NAMES.get(m, m) for m in self.class1_rx)))
            rows.append(("adaptive rx", "yes (+FAR=1)" if self.adaptive_receive else "no"))
        rows.append(("ECM", self.ecm))
        for key, value in self.class2_caps.items():
            rows.append((f"class {key} caps", value))
        rows.append(("quirks entry", self.quirks))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


async def _reply(line: ModemLine, cmd: str, report: ProbeReport, timeout: float = 3.0) -> str | None:
    try:
        resp = await line.ch.command(cmd, timeout)
    except CommandTimeout:
        report.replies[cmd] = "(no answer)"
        return None
    report.replies[cmd] = "\n".join(resp.lines + [resp.final])
    return resp.info() if resp.ok else None


async def probe(line: ModemLine) -> ProbeReport:
    """Run on an opened line; leaves the modem in +FCLASS=0."""
    report = ProbeReport(port=line.port or "(fd)")
    report.reset_rung = await line.reset()
    await line.basic_init()
    report.identity = await line.identify()
    q = line.quirks
    report.quirks = q.name
    report.quirks_fields = asdict(q)
    report.classes = parse_query(await _reply(line, "AT+FCLASS=?", report) or "")
    ecm = []
    if "1" in report.classes or "1.0" in report.classes:
        cls = "1.0" if "1.0" in report.classes else "1"
        await _reply(line, f"AT+FCLASS={cls}", report)
        report.class1_tx = [m for m in parse_query(await _reply(line, "AT+FTM=?", report) or "") if m != "3"]
        report.class1_rx = [m for m in parse_query(await _reply(line, "AT+FRM=?", report) or "") if m != "3"]
        for cmd in ("AT+FTH=?", "AT+FRH=?", "AT+FCL=?", "AT+FIT=?"):
            await _reply(line, cmd, report)
        far = await _reply(line, "AT+FAR=?", report)
        report.adaptive_receive = far is not None and "1" in parse_query(far) and q.adaptive_receive != "no"
        ecm.append("Class 1: yes (ECM is done by our software HDLC)")
    for cls, cmd in (("2", "AT+FDCC=?"), ("2.0", "AT+FCC=?")):
        if cls in report.classes:
            await _reply(line, f"AT+FCLASS={cls}", report)
            caps = await _reply(line, cmd, report)
            if caps:
                report.class2_caps[cls] = caps
                fields = [f.strip() for f in caps.split(":", 1)[-1].replace("),(", ")|(").split("|")]
                if len(fields) >= 6:
                    ec = fields[5].strip("()")
                    ecm.append(f"Class {cls}: {'yes' if ec not in ('0', '') else 'no'} (ec {ec})")
    report.ecm = "; ".join(ecm) or "unknown"
    await _reply(line, "AT+FCLASS=0", report)
    return report
