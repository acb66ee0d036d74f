"""SDP for fax calls: audio offers, ``m=image udptl t38`` offers, and the answers to both.

The answer rules follow what interoperates with carriers and gateways (reference t38.md §3.6,
§4.5, §4.6): answer the same or a lower T38FaxVersion, echo the rate management, never turn on a
boolean option the offer did not carry, declare our own MaxBuffer/MaxDatagram, keep the m-line
count and order of the offer with port 0 on the lines we refuse, and take the far UDPTL address
from the offer's ``c=`` line (media level first, then session level).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import time
from dataclasses import dataclass, field

from t38.trunk import KNOWN_CODECS, T38Params

EC_SDP = {"redundancy": "t38UDPRedundancy", "fec": "t38UDPFEC", "none": "t38UDPNoEC"}
EC_NAME = {v.lower(): k for k, v in EC_SDP.items()}
T38_BOOLEANS = ("T38FaxFillBitRemoval", "T38FaxTranscodingMMR", "T38FaxTranscodingJBIG")
DEFAULT_REMOTE_MAX_DATAGRAM = 400   # what Asterisk assumes when the far end says nothing
MAX_SEND_DATAGRAM = 1400            # never build datagrams bigger than this, whatever the far end accepts


class SdpError(ValueError):
    """An SDP we cannot use.  ``status`` is the SIP response to give (400 unparsable, 488 unusable)."""

    def __init__(self, message: str, status: int = 488):
        super().__init__(message)
        self.status = status


@dataclass
class MediaLine:
    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    extra_lines: list[str] = field(default_factory=list)   # b=, i=, k= kept verbatim

    @property
    def is_image_t38(self) -> bool:
        return (self.media.lower() == "image" and self.proto.lower() == "udptl"
                and any(f.lower() == "t38" for f in self.formats))

    @property
    def is_rtp_audio(self) -> bool:
        return self.media.lower() == "audio" and self.proto.upper().startswith("RTP/")

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key.lower() == name.lower():
                return value if value is not None else ""
        return None

    def direction(self) -> str:
        for key, _ in self.attributes:
            if key.lower() in ("sendrecv", "sendonly", "recvonly", "inactive"):
                return key.lower()
        return "sendrecv"


@dataclass
class SessionDescription:
    origin: str = "- 0 0 IN IP4 0.0.0.0"
    name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaLine] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        if not isinstance(text, str) or not text.strip():
            raise SdpError("empty SDP body", status=400)
        sd = cls()
        current: MediaLine | None = None
        seen_v = False
        for lineno, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"SDP line {lineno} is not 'x=value': {line[:40]!r}", status=400)
            kind, value = line[0], line[2:]
            if kind == "v":
                if value.strip() != "0":
                    raise SdpError(f"unsupported SDP version v={value}", status=400)
                seen_v = True
            elif kind == "o":
                sd.origin = value
            elif kind == "s":
                sd.name = value or "-"
            elif kind == "t":
                sd.timing = value
            elif kind == "c":
                address = _parse_connection(value, lineno)
                if current is None:
                    sd.connection = address
                else:
                    current.connection = address
            elif kind == "a":
                name, sep, attr_value = value.partition(":")
                entry = (name.strip(), attr_value.strip() if sep else None)
                (current.attributes if current else sd.attributes).append(entry)
            elif kind == "m":
                parts = value.split()
                if len(parts) < 3:
                    raise SdpError(f"SDP line {lineno}: m= needs media, port and proto: {value!r}", status=400)
                port_text = parts[1].split("/")[0]
                if not port_text.isdigit() or int(port_text) > 65535:
                    raise SdpError(f"SDP line {lineno}: bad port {parts[1]!r}", status=400)
                current = MediaLine(parts[0], int(port_text), parts[2], parts[3:])
                sd.media.append(current)
            elif current is not None:
                current.extra_lines.append(line)
        if not seen_v:
            raise SdpError("SDP has no v= line", status=400)
        if not sd.media:
            raise SdpError("SDP has no m= line", status=488)
        return sd

    def format(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.name}"]
        if self.connection:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        lines.append(f"t={self.timing}")
        lines += [_format_attribute(a) for a in self.attributes]
        for m in self.media:
            lines.append(" ".join([m.media, str(m.port), m.proto, *m.formats]).join(("m=", "")))
            if m.connection:
                lines.append(f"c=IN {_addrtype(m.connection)} {m.connection}")
            lines += m.extra_lines
            lines += [_format_attribute(a) for a in m.attributes]
        return "\r\n".join(lines) + "\r\n"

    def address_of(self, index: int) -> str | None:
        return self.media[index].connection or self.connection

    def origin_version(self) -> int | None:
        parts = self.origin.split()
        if len(parts) >= 3 and parts[2].isdigit():
            return int(parts[2])
        return None


def _parse_connection(value: str, lineno: int) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {lineno}: bad c= line {value!r}", status=400)
    return parts[2].split("/")[0]


def _addrtype(address: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"


def _format_attribute(attr: tuple[str, str | None]) -> str:
    name, value = attr
    return f"a={name}" if value is None else f"a={name}:{value}"


# ---------------------------------------------------------------------------------------------
# T.38 attributes


@dataclass(frozen=True)
class T38Declaration:
    """The T.38 attributes one side put in its SDP (``None`` = attribute absent)."""

    version: int = 0
    max_bit_rate: int | None = None
    rate_management: str | None = None
    max_buffer: int | None = None
    max_datagram: int | None = None
    udp_ec: str | None = None                      # "redundancy" | "fec" | "none"
    booleans: tuple[tuple[str, bool, str], ...] = ()  # (name, value, style "flag" | "num")

    def flag(self, name: str) -> bool:
        for key, value, _ in self.booleans:
            if key.lower() == name.lower():
                return value
        return False


def _int_attr(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    m = re.match(r"\s*(\d+)", value)
    if not m:
        raise SdpError(f"T.38 attribute {name} has a non-numeric value {value!r}", status=488)
    return int(m.group(1))


def parse_t38(line: MediaLine) -> T38Declaration:
    version = 0
    values: dict[str, object] = {}
    booleans: list[tuple[str, bool, str]] = []
    for name, value in line.attributes:
        key = name.lower()
        if key == "t38faxversion":
            version = _int_attr(value, name) or 0
        elif key in ("t38maxbitrate", "t38faxmaxrate"):
            values["max_bit_rate"] = _int_attr(value, name)
        elif key == "t38faxratemanagement":
            values["rate_management"] = (value or "").strip()
        elif key == "t38faxmaxbuffer":
            values["max_buffer"] = _int_attr(value, name)
        elif key == "t38faxmaxdatagram":
            values["max_datagram"] = _int_attr(value, name)
        elif key == "t38faxudpec":
            values["udp_ec"] = EC_NAME.get((value or "").strip().lower())
        else:
            for canonical in T38_BOOLEANS:
                if key == canonical.lower():
                    if value is None or value == "":
                        booleans.append((canonical, True, "flag"))
                    else:
                        booleans.append((canonical, value.strip() not in ("0", "false"), "num"))
    return T38Declaration(version=version, booleans=tuple(booleans), **values)  # type: ignore[arg-type]


def t38_attributes(decl: T38Declaration) -> list[tuple[str, str | None]]:
    attrs: list[tuple[str, str | None]] = [("T38FaxVersion", str(decl.version))]
    if decl.max_bit_rate is not None:
        attrs.append(("T38MaxBitRate", str(decl.max_bit_rate)))
    for name, value, style in decl.booleans:
        if style == "flag":
            if value:
                attrs.append((name, None))
        else:
            attrs.append((name, "1" if value else "0"))
    if decl.rate_management is not None:
        attrs.append(("T38FaxRateManagement", decl.rate_management))
    if decl.max_buffer is not None:
        attrs.append(("T38FaxMaxBuffer", str(decl.max_buffer)))
    if decl.max_datagram is not None:
        attrs.append(("T38FaxMaxDatagram", str(decl.max_datagram)))
    if decl.udp_ec is not None:
        attrs.append(("T38FaxUdpEC", EC_SDP[decl.udp_ec]))
    return attrs


def offer_declaration(params: T38Params) -> T38Declaration:
    booleans = tuple((name, True, "flag") for name, on in zip(
        T38_BOOLEANS, (params.fill_bit_removal, params.transcoding_mmr, params.transcoding_jbig), strict=True) if on)
    return T38Declaration(version=params.version, max_bit_rate=params.max_bit_rate,
                          rate_management=params.rate_management, max_buffer=params.max_buffer,
                          max_datagram=params.max_datagram, udp_ec=params.error_correction, booleans=booleans)


def answer_declaration(offer: T38Declaration, params: T38Params) -> T38Declaration:
    """Our answer to a T.38 offer (see the module docstring for the rules)."""
    ours = {"T38FaxFillBitRemoval": params.fill_bit_removal, "T38FaxTranscodingMMR": params.transcoding_mmr,
            "T38FaxTranscodingJBIG": params.transcoding_jbig}
    # Only booleans the offer carried, in the offer's syntax; true only if both sides support it.
    booleans = tuple((name, value and ours.get(name, False), style) for name, value, style in offer.booleans
                     if style == "num" or (value and ours.get(name, False)))
    rate = offer.max_bit_rate if offer.max_bit_rate is not None else params.max_bit_rate
    rate = min(rate, params.max_bit_rate)
    if offer.udp_ec is None:
        ec = None
    elif offer.udp_ec == "fec" and params.error_correction == "fec":
        ec = "fec"
    elif offer.udp_ec in ("fec", "redundancy") and params.error_correction != "none":
        ec = "redundancy"
    else:
        ec = "none" if offer.udp_ec == "none" or params.error_correction == "none" else "redundancy"
    return T38Declaration(version=min(offer.version, params.version), max_bit_rate=rate,
                          rate_management=offer.rate_management or "transferredTCF",
                          max_buffer=params.max_buffer, max_datagram=params.max_datagram,
                          udp_ec=ec, booleans=booleans)


@dataclass(frozen=True)
class T38Session:
    """What both sides agreed, as the T.38 PHY needs it."""

    version: int
    rate_management: str
    max_bit_rate: int
    error_correction: str          # "redundancy" | "fec" | "none": what we send
    redundancy_depth: int
    remote_max_datagram: int       # never send a UDPTL datagram bigger than this
    local_max_datagram: int
    fill_bit_removal: bool
    remote_address: tuple[str, int]


def agree(offer: T38Declaration, answer: T38Declaration, params: T38Params, *, remote: T38Declaration,
          remote_address: tuple[str, int]) -> T38Session:
    """Combine an offer and its answer; ``remote`` is whichever of the two the far end wrote."""
    far_datagram = remote.max_datagram if remote.max_datagram else DEFAULT_REMOTE_MAX_DATAGRAM
    ec = answer.udp_ec or offer.udp_ec or "none"
    return T38Session(
        version=min(offer.version, answer.version),
        rate_management=answer.rate_management or offer.rate_management or "transferredTCF",
        max_bit_rate=min(x for x in (offer.max_bit_rate, answer.max_bit_rate, params.max_bit_rate) if x),
        error_correction=ec,
        redundancy_depth=params.redundancy_depth if ec == "redundancy" else 0,
        remote_max_datagram=min(far_datagram, MAX_SEND_DATAGRAM),
        local_max_datagram=params.max_datagram,
        fill_bit_removal=offer.flag("T38FaxFillBitRemoval") and answer.flag("T38FaxFillBitRemoval"),
        remote_address=remote_address,
    )


# ---------------------------------------------------------------------------------------------
# Building offers and answers


_session_ids = itertools.count(int(time.time()) & 0xFFFFFFF)


class LocalSdp:
    """Our side of one call's SDP: a stable o= session id, the version bumped only on change.

    ``propose`` renders a candidate (an offer, or an answer) without changing the established
    state; ``commit`` makes it the established SDP once the exchange succeeded.  An unchanged
    proposal is byte-identical to the established text, so refreshes see the same SDP."""

    def __init__(self, address: str, user_agent: str = "faxengine"):
        self.address = address
        self.session_id = next(_session_ids)
        self.version = -1
        self.name = user_agent
        self.media: list[MediaLine] | None = None
        self.text: str | None = None

    def propose(self, media: list[MediaLine]) -> str:
        if self.media is not None and self.text is not None and _same_media(self.media, media):
            return self.text
        version = self.version + 1
        sd = SessionDescription(origin=f"- {self.session_id} {version} IN {_addrtype(self.address)} {self.address}",
                                name=self.name, connection=self.address, media=media)
        return sd.format()

    def commit(self, text: str) -> None:
        sd = SessionDescription.parse(text)
        self.media = sd.media
        self.version = sd.origin_version() or 0
        self.text = text


def _same_media(a: list[MediaLine], b: list[MediaLine]) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def audio_line(port: int, codecs: tuple[str, ...], address: str | None = None,
               telephone_event: str | None = "101") -> MediaLine:
    formats = [str(KNOWN_CODECS[c]) for c in codecs]
    attrs: list[tuple[str, str | None]] = [("rtpmap", f"{KNOWN_CODECS[c]} {c}/8000") for c in codecs]
    if telephone_event:
        formats.append(telephone_event)
        attrs += [("rtpmap", f"{telephone_event} telephone-event/8000"), ("fmtp", f"{telephone_event} 0-15")]
    attrs += [("ptime", "20"), ("sendrecv", None)]
    return MediaLine("audio", port, "RTP/AVP", formats, address, attrs)


def image_line(port: int, decl: T38Declaration, address: str | None = None) -> MediaLine:
    return MediaLine("image", port, "udptl", ["t38"], address, t38_attributes(decl))


def disabled_copy(line: MediaLine) -> MediaLine:
    """A refused m-line: same media/proto/formats, port 0, no attributes (RFC 3264 §6)."""
    return MediaLine(line.media, 0, line.proto, list(line.formats) or ["0"])


@dataclass
class AnswerPlan:
    """The outcome of answering an offer."""

    media: list[MediaLine]
    mode: str                                  # "t38" or "audio"
    t38: T38Session | None = None
    audio_codec: str | None = None
    remote_audio: tuple[str, int] | None = None


def _remote_address(sd: SessionDescription, index: int) -> tuple[str, int]:
    address = sd.address_of(index)
    if not address:
        raise SdpError(f"m-line {index} ({sd.media[index].media}) has no c= address", status=488)
    return address, sd.media[index].port


def answer_offer(offer: SessionDescription, *, audio_port: int, udptl_port: int | None, codecs: tuple[str, ...],
                 t38: T38Params | None, allow_audio: bool = True) -> AnswerPlan:
    """Answer an offer: T.38 if offered and allowed, else audio; SdpError(488) if neither is usable.

    ``udptl_port`` None means we cannot take T.38 now; ``allow_audio`` False refuses audio-only
    offers (e.g. during a T.38 session we will not drop back to audio)."""
    image_index = next((i for i, m in enumerate(offer.media) if m.is_image_t38 and m.port != 0), None)
    audio_index = None
    codec = None
    for i, m in enumerate(offer.media):
        if m.is_rtp_audio and m.port != 0 and audio_index is None:
            codec = _pick_codec(m, codecs)
            if codec is not None:
                audio_index = i
    if image_index is not None and t38 is not None and udptl_port is not None:
        line = offer.media[image_index]
        remote = parse_t38(line)
        ours = answer_declaration(remote, t38)
        session = agree(remote, ours, t38, remote=remote, remote_address=_remote_address(offer, image_index))
        media = [image_line(udptl_port, ours) if i == image_index else disabled_copy(m)
                 for i, m in enumerate(offer.media)]
        return AnswerPlan(media, "t38", t38=session)
    if audio_index is not None and allow_audio:
        media = []
        for i, m in enumerate(offer.media):
            if i == audio_index:
                answer = audio_line(audio_port, (codec,), telephone_event=_rtpmaps(m).get("TELEPHONE-EVENT"))  # type: ignore[arg-type]
                media.append(answer)
            else:
                media.append(disabled_copy(m))
        return AnswerPlan(media, "audio", audio_codec=codec, remote_audio=_remote_address(offer, audio_index))
    described = ", ".join(f"{m.media} {m.port} {m.proto} {' '.join(m.formats)}" for m in offer.media)
    if image_index is not None and (t38 is None or udptl_port is None):
        raise SdpError(f"T.38 offered but not accepted here ({described})", status=488)
    raise SdpError(f"no usable media in offer ({described})", status=488)


def _rtpmaps(line: MediaLine) -> dict[str, str]:
    """Encoding name (upper case) -> payload type, from the line's a=rtpmap attributes."""
    names: dict[str, str] = {}
    for key, value in line.attributes:
        if key.lower() == "rtpmap" and value:
            pt, _, enc = value.partition(" ")
            names.setdefault(enc.split("/")[0].strip().upper(), pt.strip())
    return names


def _pick_codec(line: MediaLine, codecs: tuple[str, ...]) -> str | None:
    by_pt = {pt: name for name, pt in _rtpmaps(line).items()}
    for fmt in line.formats:
        name = by_pt.get(fmt)
        if name is None and fmt.isdigit():
            name = next((c for c, pt in KNOWN_CODECS.items() if pt == int(fmt)), None)
        if name in codecs:
            return name
    return None


@dataclass
class AnswerResult:
    """What the far end's answer to our offer means."""

    mode: str                          # "t38", "audio", or "refused"
    t38: T38Session | None = None
    reason: str = ""


def read_answer(our_offer: SessionDescription, answer: SessionDescription, t38: T38Params | None) -> AnswerResult:
    """Check an answer against our offer (m-line by m-line, in order)."""
    if len(answer.media) != len(our_offer.media):
        raise SdpError(f"answer has {len(answer.media)} m-lines, our offer had {len(our_offer.media)}", status=488)
    for i, (ours, theirs) in enumerate(zip(our_offer.media, answer.media, strict=True)):
        if ours.is_image_t38 and ours.port != 0 and theirs.is_image_t38 and theirs.port != 0 and t38 is not None:
            ours_decl = parse_t38(ours)
            remote = parse_t38(theirs)
            if remote.version > ours_decl.version:
                raise SdpError(f"answer raised T38FaxVersion to {remote.version} (offered {ours_decl.version})")
            return AnswerResult("t38", agree(ours_decl, remote, t38, remote=remote,
                                             remote_address=_remote_address(answer, i)))
    if any(m.is_image_t38 and m.port != 0 for m in our_offer.media):
        return AnswerResult("refused", reason="answer declined the image (T.38) stream")
    if any(m.is_rtp_audio and m.port != 0 for m in answer.media):
        return AnswerResult("audio")
    return AnswerResult("refused", reason="answer accepted no media")
