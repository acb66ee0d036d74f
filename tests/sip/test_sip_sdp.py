"""SDP offer/answer rules for fax (reference t38.md §3.6, §4.5, §4.6)."""

from __future__ import annotations

import pytest

from t38.sdp import (
    LocalSdp,
    SdpError,
    SessionDescription,
    answer_offer,
    audio_line,
    image_line,
    offer_declaration,
    parse_t38,
    read_answer,
)
from t38.trunk import T38Params


def sdp(*media: str, session_c: str = "c=IN IP4 10.0.0.1", version: int = 1) -> SessionDescription:
    text = f"v=0\r\no=peer 42 {version} IN IP4 10.0.0.1\r\ns=-\r\n{session_c}\r\nt=0 0\r\n" + "".join(media)
    return SessionDescription.parse(text)


IMAGE = ("m=image 5000 udptl t38\r\na=T38FaxVersion:{v}\r\na=T38MaxBitRate:14400\r\n{extra}"
         "a=T38FaxRateManagement:{rm}\r\na=T38FaxMaxBuffer:262\r\na=T38FaxMaxDatagram:{dg}\r\na=T38FaxUdpEC:{ec}\r\n")
AUDIO = ("m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
         "a=rtpmap:96 telephone-event/8000\r\n")


def image(v=0, rm="transferredTCF", dg="176", ec="t38UDPRedundancy", extra="") -> str:
    return IMAGE.format(v=v, rm=rm, dg=dg, ec=ec, extra=extra)


def answer(offer: SessionDescription, params: T38Params | None = None, **kw):
    return answer_offer(offer, audio_port=6000, udptl_port=7000, codecs=("PCMU", "PCMA"),
                        t38=params or T38Params(), **kw)


def attrs(plan) -> dict:
    line = next(m for m in plan.media if m.media == "image")
    return {k: v for k, v in line.attributes}


@pytest.mark.parametrize("offered,ours,want", [(3, 0, 0), (0, 3, 0), (2, 3, 2), (3, 3, 3)])
def test_version_same_or_lower(offered, ours, want):
    plan = answer(sdp(image(v=offered)), T38Params(version=ours))
    assert attrs(plan)["T38FaxVersion"] == str(want) and plan.t38.version == want


def test_rate_management_echoed_and_own_buffers_declared():
    plan = answer(sdp(image(rm="localTCF")), T38Params(max_datagram=512, max_buffer=1800))
    a = attrs(plan)
    assert a["T38FaxRateManagement"] == "localTCF" and plan.t38.rate_management == "localTCF"
    assert a["T38FaxMaxDatagram"] == "512" and a["T38FaxMaxBuffer"] == "1800"
    assert plan.t38.remote_max_datagram == 176 and plan.t38.local_max_datagram == 512


def test_booleans_never_invented_and_answered_in_the_offers_syntax():
    plan = answer(sdp(image()), T38Params(fill_bit_removal=True, transcoding_mmr=True))
    assert not any(k.startswith("T38FaxFillBit") or "Transcoding" in k for k in attrs(plan))
    # flag form offered, supported -> flag; Cisco ":1" form offered, unsupported -> ":0"
    offer = sdp(image(extra="a=T38FaxFillBitRemoval\r\na=T38FaxTranscodingMMR:1\r\na=T38FaxTranscodingJBIG:0\r\n"))
    plan = answer(offer, T38Params(fill_bit_removal=True))
    a = attrs(plan)
    assert a["T38FaxFillBitRemoval"] is None           # a=T38FaxFillBitRemoval (flag, true)
    assert a["T38FaxTranscodingMMR"] == "0" and a["T38FaxTranscodingJBIG"] == "0"
    assert plan.t38.fill_bit_removal is True
    plan = answer(offer, T38Params(fill_bit_removal=False))
    assert "T38FaxFillBitRemoval" not in attrs(plan) and plan.t38.fill_bit_removal is False


@pytest.mark.parametrize("offered,ours,want", [
    ("t38UDPFEC", "fec", "fec"), ("t38UDPFEC", "redundancy", "redundancy"),
    ("t38UDPRedundancy", "fec", "redundancy"), ("t38UDPNoEC", "redundancy", "none"),
    ("t38UDPRedundancy", "none", "none")])
def test_error_correction_picked_from_the_offer(offered, ours, want):
    plan = answer(sdp(image(ec=offered)), T38Params(error_correction=ours))
    assert plan.t38.error_correction == want
    assert attrs(plan)["T38FaxUdpEC"] == {"fec": "t38UDPFEC", "redundancy": "t38UDPRedundancy",
                                         "none": "t38UDPNoEC"}[want]


def test_max_datagram_absent_defaults_and_huge_is_capped():
    assert answer(sdp(image(dg="").replace("a=T38FaxMaxDatagram:\r\n", ""))).t38.remote_max_datagram == 400
    assert answer(sdp(image(dg="65000"))).t38.remote_max_datagram == 1400


def test_audio_and_image_offer_keeps_line_order_and_refuses_audio_with_port_0():
    plan = answer(sdp(AUDIO, image()))
    assert [(m.media, m.port) for m in plan.media] == [("audio", 0), ("image", 7000)]
    assert plan.mode == "t38" and plan.t38.remote_address == ("10.0.0.1", 5000)


def test_media_level_connection_wins():
    plan = answer(sdp(image() + "c=IN IP4 192.0.2.9\r\n"))
    assert plan.t38.remote_address == ("192.0.2.9", 5000)


def test_upper_case_udptl_t38_accepted():
    plan = answer(sdp(image().replace("udptl t38", "UDPTL T38")))
    assert plan.mode == "t38"


def test_audio_offer_answered_with_a_common_codec_and_their_event_type():
    plan = answer(sdp(AUDIO))
    line = plan.media[0]
    assert plan.mode == "audio" and plan.audio_codec == "PCMA"
    assert line.formats == ["8", "96"] and ("rtpmap", "96 telephone-event/8000") in line.attributes


def test_t38_offer_we_cannot_take_and_unusable_offers():
    with pytest.raises(SdpError) as info:
        answer_offer(sdp(image()), audio_port=1, udptl_port=None, codecs=("PCMU",), t38=T38Params())
    assert info.value.status == 488 and "T.38 offered" in str(info.value)
    with pytest.raises(SdpError) as info:
        answer(sdp("m=video 4000 RTP/AVP 96\r\n"))
    assert info.value.status == 488 and "no usable media" in str(info.value)
    with pytest.raises(SdpError) as info:
        answer(sdp(AUDIO), allow_audio=False)
    assert info.value.status == 488
    with pytest.raises(SdpError) as info:
        answer(sdp("m=audio 4000 RTP/AVP 18\r\n"))        # G.729 only: nothing in common
    assert info.value.status == 488


@pytest.mark.parametrize("text", ["", "garbage", "v=0\r\nm=audio x RTP/AVP 0\r\n", "v=1\r\n",
                                  "v=0\r\nc=IN IP4\r\nm=audio 1 RTP/AVP 0\r\n", "o=x\r\nm=audio 1 RTP/AVP 0\r\n"])
def test_malformed_sdp_is_a_400(text):
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text)
    assert info.value.status == 400


def test_cisco_style_attributes_parse():
    decl = parse_t38(sdp(image(extra="a=T38FaxFillBitRemoval:0\r\n").replace("T38MaxBitRate", "T38FaxMaxRate")
                         ).media[0])
    assert decl.max_bit_rate == 14400 and decl.flag("T38FaxFillBitRemoval") is False


def test_read_answer():
    params = T38Params()
    ours = SessionDescription.parse(LocalSdp("127.0.0.1").propose([image_line(7000, offer_declaration(params))]))
    accepted = read_answer(ours, sdp(image(dg="300")), params)
    assert accepted.mode == "t38" and accepted.t38.remote_max_datagram == 300
    assert accepted.t38.remote_address == ("10.0.0.1", 5000)
    refused = read_answer(ours, sdp("m=image 0 udptl t38\r\n"), params)
    assert refused.mode == "refused"
    with pytest.raises(SdpError):
        read_answer(ours, sdp(image(v=2)), params)                       # answer raised the version
    with pytest.raises(SdpError):
        read_answer(ours, sdp(image(), AUDIO), params)                   # m-line count changed


def test_local_sdp_version_bumps_only_on_change():
    local = LocalSdp("127.0.0.1")
    first = local.propose([audio_line(6000, ("PCMU",))])
    local.commit(first)
    assert local.propose([audio_line(6000, ("PCMU",))]) == first           # refresh: byte-identical
    second = local.propose([image_line(7000, offer_declaration(T38Params()))])
    assert SessionDescription.parse(second).origin_version() == SessionDescription.parse(first).origin_version() + 1
    # a proposal that was never committed (e.g. answered 491) does not move the version
    assert local.propose([image_line(7000, offer_declaration(T38Params()))]) == second


def test_asterisk_style_audio_0_plus_image_reinvite():
    plan = answer(sdp("m=audio 0 RTP/AVP 0\r\n", image()))
    assert [(m.media, m.port) for m in plan.media] == [("audio", 0), ("image", 7000)] and plan.mode == "t38"
