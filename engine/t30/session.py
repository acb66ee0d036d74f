"""One T.30 session (phases B to E) over the PHY contract, in either role.

The same code runs over T.38 and over a Class 1 modem: it only sees HDLC frames in transmission
order, image bit streams, silences and timeouts.  Every wait is bounded by a T.30 timer and every
command is tried at most ``config.tries`` times, so a session always ends, with DCN and a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engine.clock import Clock
from engine.phy import HdlcFrame, Phy, PhyError, WrongCarrier
from engine.result import SessionResult
from engine.t30 import ecm, fcf
from engine.t30.config import T30Config
from engine.t30.dis import Capabilities, DcsParams, ctc_fif, decode_ident, encode_ident, modulation_from_ctc
from engine.t30.quality import judge_page
from engine.t30.tcf import tcf_bytes, tcf_ok
from imaging.page import FAX_WIDTH, Y_DPI, FaxPage
from imaging.paper import page_rows

log = logging.getLogger(__name__)

BAD = object()          # a frame arrived with a bad FCS or unparseable
MR_K = {"standard": 2, "fine": 4, "superfine": 8}
RES_ORDER = ("standard", "fine", "superfine")
PPM_CODES = (fcf.MPS, fcf.EOM, fcf.EOP, fcf.PRI_MPS, fcf.PRI_EOM, fcf.PRI_EOP)
_PRI_TO_PLAIN = {fcf.PRI_MPS: fcf.MPS, fcf.PRI_EOM: fcf.EOM, fcf.PRI_EOP: fcf.EOP}


class SessionFailed(Exception):
    """Ends a session with a reason; ``dcn`` says whether we still owe the remote a DCN."""

    def __init__(self, phase: str, code: str, message: str, *, retryable: bool = True, dcn: bool = True):
        super().__init__(message)
        self.phase, self.code, self.message, self.retryable, self.dcn = phase, code, message, retryable, dcn


class _Aborted(Exception):
    pass


@dataclass
class _Received:
    """The receiver's view of the current page."""

    data: bytearray
    ecm_frames: dict[int, bytes]


class T30Session:
    def __init__(self, phy: Phy, clock: Clock, config: T30Config, *, send_pages: Sequence[FaxPage] | None = None,
                 on_page: Callable[[FaxPage, int], Awaitable[None] | None] | None = None, calling: bool = True,
                 progress: Callable[[dict], None] | None = None):
        config.validate()
        self.phy = phy
        self.clock = clock
        self.config = config
        self.send_pages = list(send_pages) if send_pages is not None else None
        self.on_page = on_page
        self.calling = calling
        self.progress_cb = progress
        self.result = SessionResult(role="send" if send_pages is not None else "receive", local_ident=config.ident)
        self.phase = "A"
        self.x = calling          # X bit: frames from the station that received DIS (the caller here)
        self.log: list[str] = []  # a short protocol transcript: "> DCS ..." / "< CFR"
        self._abort_reason: str | None = None
        self._body_task: asyncio.Task | None = None
        self._remote_gone = False
        self._start = 0.0
        self._page_no = 0
        self._last_op: str | None = None   # "v21" / "hs" (what we sent last) or "rx" (we received)

    # ------------------------------------------------------------------ public API

    async def run(self) -> SessionResult:
        self._start = self.clock.now()
        self._body_task = asyncio.ensure_future(self._body())
        try:
            await asyncio.shield(self._body_task)
        except asyncio.CancelledError:
            if not self._body_task.done():  # run() itself was cancelled: stop the body, release the line
                self._body_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._body_task
                await self._finish_failed(SessionFailed(self.phase, "aborted", "session cancelled",
                                                        retryable=True), owe_dcn=not self._remote_gone)
                raise
        return self.result

    def abort(self, reason: str) -> None:
        """End the call now (job cancelled): DCN, hang up, result with ``reason``."""
        if self._abort_reason is None:
            self._abort_reason = reason or "aborted"
        if self._body_task is not None and not self._body_task.done():
            self._body_task.cancel()

    # ------------------------------------------------------------------ plumbing

    async def _body(self) -> None:
        try:
            try:
                if self.send_pages is not None:
                    await self._run_sender()
                else:
                    await self._run_receiver()
            except asyncio.CancelledError:
                if self._abort_reason is None:
                    raise
                raise SessionFailed(self.phase, "aborted", f"aborted: {self._abort_reason}", retryable=False) from None
            except PhyError as exc:
                self._remote_gone = True
                raise SessionFailed(self.phase, "remote_disconnected",
                                    f"remote disconnected in phase {self.phase} ({exc or type(exc).__name__})",
                                    dcn=False) from exc
            except SessionFailed:
                raise
            except Exception as exc:  # a bug or a broken callback must still end the call cleanly
                log.exception("T.30 session error in phase %s", self.phase)
                raise SessionFailed(self.phase, "internal_error",
                                    f"internal error in phase {self.phase}: {type(exc).__name__}: {exc}") from exc
        except SessionFailed as failure:
            await self._finish_failed(failure, owe_dcn=failure.dcn and not self._remote_gone)
            return
        self.result.success = True
        self.result.error_phase = ""
        await self._hangup()
        self.result.duration = self.clock.now() - self._start
        self._progress()

    async def _finish_failed(self, failure: SessionFailed, *, owe_dcn: bool) -> None:
        self.result.success = False
        self.result.error_phase = failure.phase
        self.result.error_code = failure.code
        self.result.error_message = failure.message
        self.result.retryable = failure.retryable
        log.info("T.30 session failed in phase %s: %s", failure.phase, failure.message)
        if owe_dcn:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._bounded(self._send_frames([fcf.build(fcf.DCN, x=self.x)]), 10.0)
        await self._hangup()
        with contextlib.suppress(Exception, asyncio.CancelledError):   # pages confirmed before the failure
            await self._await_pending_sinks()
        self.result.duration = self.clock.now() - self._start
        self._progress()

    async def _hangup(self) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._bounded(self.phy.hangup(), 10.0)

    async def _bounded(self, awaitable, seconds: float):
        """Run ``awaitable`` for at most ``seconds`` of clock time (so even a stuck PHY cannot hang us)."""
        task = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise TimeoutError

    def _progress(self, **extra) -> None:
        if self.progress_cb is None:
            return
        info = {"phase": self.phase, "page": self._page_no, "speed": self.result.fax_speed, "ecm": self.result.ecm}
        info.update(extra)
        try:
            self.progress_cb(info)
        except Exception:  # a broken observer must not break the call
            log.exception("progress callback failed")

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._progress()

    def _fail(self, code: str, message: str, **kw) -> SessionFailed:
        return SessionFailed(self.phase, code, message, **kw)

    def _remote_disconnected(self) -> SessionFailed:
        self._remote_gone = True
        return self._fail("remote_disconnected", f"remote disconnected in phase {self.phase}", dcn=False)

    async def _turnaround(self, kind: str) -> None:
        """The T.30 gap (75 ms) before a signal that follows a reception or a different carrier."""
        if self._last_op is not None and self._last_op != kind:
            await self.phy.send_silence(self.config.turnaround)
        self._last_op = kind

    async def _send_frames(self, frames: list[bytes]) -> None:
        for f in frames:
            self.log.append("> " + repr(fcf.parse(f)))
        await self._turnaround("v21")
        await self.phy.send_hdlc(frames)

    async def _send_image(self, modulation, data: bytes, *, long_training: bool) -> None:
        await self._turnaround("hs")
        await self.phy.send_image(modulation, data, long_training=long_training)

    async def _send(self, code: int, fif: bytes = b"", *, pre: list[bytes] | None = None) -> None:
        await self._send_frames(list(pre or []) + [fcf.build(code, fif, final=True, x=self.x)])

    async def _recv_frame(self, timeout: float):
        """One frame: a parsed :class:`fcf.Frame`, ``BAD``, or ``None`` on timeout."""
        if timeout <= 0:
            return None
        hf: HdlcFrame | None = await self.phy.receive_hdlc(timeout)
        self._last_op = "rx"
        if hf is None:
            return None
        if not hf.fcs_ok:
            self.log.append("< (bad FCS)")
            return BAD
        try:
            frame = fcf.parse(hf.data)
        except fcf.FrameError:
            self.log.append("< (garbage) " + hf.data[:8].hex())
            return BAD
        self.log.append("< " + repr(frame))
        return frame

    async def _recv_burst(self, timeout: float):
        """Frames up to and including a final one; ``None`` if nothing came; may hold ``BAD`` items."""
        first = await self._recv_frame(timeout)
        if first is None:
            return None
        burst = [first]
        while burst[-1] is BAD or not burst[-1].final:
            nxt = await self._recv_frame(1.0 if burst[-1] is BAD else self.config.t4)
            if nxt is None:
                break
            burst.append(nxt)
        return burst

    async def _recv_response(self, timeout: float):
        """The final frame of the next burst (``BAD`` if it was damaged, ``None`` on timeout)."""
        burst = await self._recv_burst(timeout)
        if burst is None:
            return None
        last = burst[-1]
        if last is BAD or not last.final:
            return BAD
        return last

    def _check_abort(self) -> None:
        if self._abort_reason is not None:
            raise asyncio.CancelledError

    # ================================================================== sender

    async def _run_sender(self) -> None:
        pages = self.send_pages or []
        if not pages:
            raise self._fail("bad_document", "no pages to send", retryable=False)
        for i, p in enumerate(pages, 1):
            if p.pixels.ndim != 2 or p.width != FAX_WIDTH:
                raise self._fail("bad_document", f"page {i} is {p.width} pixels wide; fax pages must be {FAX_WIDTH}",
                                 retryable=False)
            if p.y_dpi not in Y_DPI.values():
                raise self._fail("bad_document", f"page {i} has an unsupported resolution ({p.y_dpi} lpi)",
                                 retryable=False)
        self._set_phase("B")
        remote = await self._await_dis()
        self._choose_session_params(remote)
        index = 0
        retrains_for_page = 0
        need_training = True
        while index < len(pages):
            resolution = self._page_resolution(pages[index])
            if need_training or resolution != self._dcs.resolution:
                self._dcs = replace(self._dcs, resolution=resolution,
                                    scan_time_ms=0 if self._dcs.ecm else self._remote.scan_time_ms(resolution))
                await self._train()
            last = index == len(pages) - 1
            if last:
                ppm = fcf.EOP
            else:
                ppm = fcf.MPS if self._page_resolution(pages[index + 1]) == resolution else fcf.EOM
            self._page_no = index + 1
            self._set_phase("C")
            pixels = self._convert(pages[index], resolution)
            if self._dcs.ecm:
                answer = await self._send_page_ecm(pixels, ppm, index)
            else:
                answer = await self._send_page_non_ecm(pixels, ppm)
            if answer in (fcf.MCF, fcf.RTP, fcf.PIP):
                self.result.pages_sent += 1
                index += 1
                retrains_for_page = 0
                need_training = answer == fcf.RTP
                if ppm == fcf.EOM and index < len(pages):
                    self._set_phase("B")
                    remote = await self._await_dis()
                    self._choose_session_params(remote, keep_speed=True)
                    need_training = True
            else:  # RTN / PIN: retrain (one step slower) and send the page again
                retrains_for_page += 1
                if retrains_for_page >= self.config.max_page_retrains:
                    raise self._fail("page_rejected", f"page {index + 1} rejected by the remote "
                                                      f"({fcf.NAMES[answer]}) {retrains_for_page} times")
                if self._speed_index + 1 < len(self._modulations):
                    self._speed_index += 1
                need_training = True          # back to DCS/TCF (no new DIS, even after EOM)
        self._set_phase("E")
        await self._send(fcf.DCN)

    async def _await_dis(self) -> Capabilities:
        """Phase B of the sender: the remote's receive capabilities.

        As caller: listen for NSF/CSI/DIS until T1 expires.  As answerer (the caller polls us):
        send CSI/DIS saying we have a document, every T4, until its CIG/DTC arrives."""
        if self.calling:
            frame = await self._await_identification(fcf.DIS, None)
        else:
            caps = self._local_capabilities()
            caps.ready_to_transmit = True
            frame = await self._await_identification(fcf.DTC, [
                fcf.build(fcf.CSI, encode_ident(self.config.ident), final=False),
                fcf.build(fcf.DIS, caps.build(), final=True)])
        caps = Capabilities.parse(frame.fif)
        if not caps.ready_to_receive:
            raise self._fail("incompatible", "the remote cannot receive faxes (DIS/DTC without bit 10)",
                             retryable=False)
        return caps

    async def _await_identification(self, wanted: int, repeat: list[bytes] | None):
        """Listen (sending ``repeat`` every T4 if given) until a ``wanted`` frame, for at most T1."""
        cfg = self.config
        deadline = self.clock.now() + cfg.t1
        while True:
            self._check_abort()
            if repeat:
                await self._send_frames(repeat)
            left = deadline - self.clock.now()
            burst = await self._recv_burst(min(left, cfg.t4) if repeat else left)
            if burst is None:
                if self.clock.now() < deadline - 1e-6:
                    continue
                raise self._fail("no_response", f"no {fcf.NAMES[wanted]} received from the remote within T1 "
                                                f"({cfg.t1:g} s)")
            found = None
            for frame in burst:
                if frame is BAD:
                    continue
                if frame.fcf in (fcf.CSI, fcf.CIG):
                    self.result.remote_ident = decode_ident(frame.fif)
                elif frame.fcf == wanted:
                    found = frame
                elif frame.fcf == fcf.DCN:
                    raise self._remote_disconnected()
            if found is not None:
                return found

    def _choose_session_params(self, remote: Capabilities, *, keep_speed: bool = False) -> None:
        cfg = self.config
        mods = [m for m in remote.modulations() if m.family.lower() in cfg.modems and m.bit_rate <= cfg.max_speed]
        if not mods:
            raise self._fail("incompatible", "no modulation in common with the remote", retryable=False)
        if keep_speed and getattr(self, "_modulations", None):
            current = self._modulations[self._speed_index]
            self._speed_index = mods.index(current) if current in mods else 0
        else:
            self._speed_index = 0
        self._modulations = mods
        self._remote = remote
        use_ecm = cfg.ecm and remote.ecm
        if use_ecm and "mmr" in cfg.compressions and remote.mmr:
            compression = "mmr"
        elif "mr" in cfg.compressions and remote.mr:
            compression = "mr"
        else:
            compression = "mh"
        # 64-octet frames when we are set to, or when the receiver's DIS says it prefers them (bit 7)
        frame_size = 64 if cfg.ecm_frame_size == 64 or remote.prefers_64_octet else 256
        self._dcs = DcsParams(modulation=mods[self._speed_index], resolution="standard", compression=compression,
                              ecm=use_ecm, ecm_frame_size=frame_size, width=FAX_WIDTH,
                              unlimited_length=remote.unlimited_length, receive=True)
        self.result.ecm = use_ecm
        self.result.compression = compression

    def _page_resolution(self, page: FaxPage) -> str:
        """The page's own resolution if both ends take it, else the best lower one."""
        wanted = page.resolution
        for res in reversed(RES_ORDER[:RES_ORDER.index(wanted) + 1]):
            remote_ok = res == "standard" or (res == "fine" and self._remote.fine) or \
                (res == "superfine" and self._remote.superfine)
            if remote_ok and res in self.config.resolutions:
                return res
        return "standard"

    def _convert(self, page: FaxPage, resolution: str) -> np.ndarray:
        """The page at the negotiated resolution, and no longer than the receiver can record.

        A receiver without "unlimited length" in its DIS records A4 length only (our DCS says so):
        a longer page (Legal) is shrunk vertically to A4 by dropping rows evenly, so nothing at the
        bottom is lost, rather than sent whole to a machine that would cut or reject it."""
        step = page.y_dpi // Y_DPI[resolution]
        pixels = np.asarray(page.pixels, dtype=bool)
        if step > 1:
            pixels = pixels[::step]
        if not self._remote.unlimited_length:
            limit = page_rows("a4", Y_DPI[resolution])
            if pixels.shape[0] > limit:
                log.info("page %d: %d rows shrunk to the receiver's A4 length (%d rows)",
                         self._page_no, pixels.shape[0], limit)
                pixels = pixels[np.linspace(0, pixels.shape[0] - 1, limit).round().astype(np.intp)]
        return pixels

    async def _train(self) -> None:
        """Send TSI/DCS and TCF, walking down the fallback list on FTT, until CFR."""
        cfg = self.config
        while True:
            mod = self._modulations[self._speed_index]
            self._dcs = replace(self._dcs, modulation=mod)
            self.result.fax_speed = mod.bit_rate
            self.result.modulation = mod.name
            self.result.resolution = self._dcs.resolution
            self._set_phase("B")
            answer = None
            for _attempt in range(cfg.tries):
                self._check_abort()
                pre = [fcf.build(fcf.TSI, encode_ident(cfg.ident), final=False, x=self.x)] if cfg.ident else []
                await self._send(fcf.DCS, self._dcs.build(), pre=pre)
                await self._send_image(mod, tcf_bytes(mod), long_training=True)
                answer = await self._recv_response(cfg.t4)
                if answer is None or answer is BAD:
                    continue
                if answer.fcf in (fcf.CFR, fcf.FTT):
                    break
                if answer.fcf == fcf.DCN:
                    raise self._remote_disconnected()
                answer = None  # DIS again (our DCS was lost), CRP, anything else: repeat
            if answer is None or answer is BAD:
                raise self._fail("no_response", f"no response to DCS after {cfg.tries} tries")
            if answer.fcf == fcf.CFR:
                return
            if self._speed_index + 1 >= len(self._modulations):
                raise self._fail("training_failed", f"training failed at {mod.bit_rate} bit/s")
            self._speed_index += 1

    def _encode(self, pixels: np.ndarray, *, ecm_mode: bool) -> bytes:
        from imaging import codec

        dcs = self._dcs
        comp = getattr(codec.Compression, dcs.compression.upper())
        min_bits = 0 if ecm_mode else -(-dcs.modulation.bit_rate * dcs.scan_time_ms // 1000)
        return codec.encode(pixels, comp, k=MR_K[dcs.resolution], min_row_bits=min_bits, rtc=True, lsb_first=True)

    async def _send_page_non_ecm(self, pixels: np.ndarray, ppm: int) -> int:
        cfg = self.config
        data = self._encode(pixels, ecm_mode=False)
        self._progress(bytes=len(data))
        await self._send_image(self._dcs.modulation, data, long_training=False)
        self._set_phase("D")
        name = fcf.NAMES[ppm]
        for _attempt in range(cfg.tries):
            self._check_abort()
            await self._send(ppm)
            answer = await self._recv_response(cfg.t4)
            if answer is None or answer is BAD:
                continue
            if answer.fcf in (fcf.MCF, fcf.RTP, fcf.RTN, fcf.PIP, fcf.PIN):
                return answer.fcf
            if answer.fcf == fcf.DCN:
                raise self._remote_disconnected()
        raise self._fail("no_response", f"no response to {name} after {cfg.tries} tries")

    async def _ecm_command(self, code: int, fif: bytes, name: str, wanted: tuple[int, ...]):
        """Send an ECM-phase command, riding out RNR with RR (up to T5), until a wanted response."""
        cfg = self.config
        tries = 0
        t5_deadline = None
        while True:
            self._check_abort()
            await self._send(code, fif)
            answer = await self._recv_response(cfg.t4)
            if answer is None or answer is BAD or answer.fcf == fcf.CRP:
                tries += 1
                if tries >= cfg.tries:
                    raise self._fail("no_response", f"no response to {name} after {cfg.tries} tries")
                continue
            if answer.fcf == fcf.DCN:
                raise self._remote_disconnected()
            if answer.fcf == fcf.RNR:
                if t5_deadline is None:
                    t5_deadline = self.clock.now() + cfg.t5
                elif self.clock.now() >= t5_deadline:
                    raise self._fail("no_response", f"receiver not ready (RNR) for longer than T5 ({cfg.t5:g} s)")
                code, fif, name, tries = fcf.RR, b"", "RR", 0
                await self.clock.sleep(min(1.0, cfg.t4 / 3))
                continue
            if answer.fcf in wanted:
                return answer
            tries += 1
            if tries >= cfg.tries:
                raise self._fail("protocol_error", f"unexpected {answer.name} in response to {name}")

    async def _send_page_ecm(self, pixels: np.ndarray, ppm: int, page_index: int) -> int:
        cfg = self.config
        data = self._encode(pixels, ecm_mode=True)
        blocks = ecm.split_blocks(data, self._dcs.ecm_frame_size)
        self._progress(bytes=len(data), blocks=len(blocks))
        long_training = False
        for block_no, block in enumerate(blocks):
            final = block_no == len(blocks) - 1
            fcf2 = ppm if final else fcf.PPS_NULL
            pps_name = "PPS-" + fcf.PPM_NAMES[fcf2]
            to_send = list(range(len(block)))
            pprs = 0
            while True:
                self._set_phase("C")
                await self._send_image_hdlc(ecm.block_frames(block, to_send), long_training)
                long_training = False
                self._set_phase("D")
                answer = await self._ecm_command(
                    fcf.PPS, ecm.pps_fif(fcf2, page_index, block_no, len(block), x=self.x), pps_name,
                    (fcf.MCF, fcf.PPR, fcf.PIP, fcf.PIN))
                if answer.fcf in (fcf.MCF, fcf.PIP):
                    break
                if answer.fcf == fcf.PIN:
                    raise self._fail("page_rejected", f"page {page_index + 1} refused by the remote (PIN)")
                to_send = ecm.frames_from_bitmap(answer.fif, len(block))
                if not to_send:  # a PPR that asks for nothing: treat as confirmation
                    break
                pprs += 1
                if pprs % cfg.ppr_per_speed:
                    continue
                if self._speed_index + 1 < len(self._modulations):
                    new_mod = self._modulations[self._speed_index + 1]
                    await self._ecm_command(fcf.CTC, ctc_fif(self._dcs.build(), new_mod), "CTC", (fcf.CTR,))
                    self._speed_index += 1
                    self._dcs = replace(self._dcs, modulation=new_mod)
                    self.result.fax_speed = new_mod.bit_rate
                    self.result.modulation = new_mod.name
                    long_training = True
                    continue
                # Nowhere slower to go: give up on the damaged frames of this block (EOR/ERR).
                eor_fif = bytes((fcf2 | 1 if (self.x and fcf2) else fcf2,))
                await self._ecm_command(fcf.EOR, eor_fif, "EOR-" + fcf.PPM_NAMES[fcf2], (fcf.ERR,))
                self.result.bad_rows += 0  # frames are lost; the receiver counts the damage
                break
        return fcf.MCF

    async def _send_image_hdlc(self, frames: list[bytes], long_training: bool) -> None:
        await self._turnaround("hs")
        await self.phy.send_image_hdlc(self._dcs.modulation, frames, long_training=long_training)

    # ================================================================== receiver

    def _local_capabilities(self) -> Capabilities:
        cfg = self.config
        fam = set(cfg.modems)
        return Capabilities(
            ready_to_receive=True, ready_to_transmit=False,
            v27ter="v27ter" in fam, v29="v29" in fam and cfg.max_speed >= 7200,
            v17="v17" in fam and cfg.max_speed >= 7200,
            fine="fine" in cfg.resolutions, superfine="superfine" in cfg.resolutions,
            mr="mr" in cfg.compressions, mmr=cfg.ecm and "mmr" in cfg.compressions, ecm=cfg.ecm,
            prefers_64_octet=cfg.ecm and cfg.ecm_frame_size == 64,
            widths=(FAX_WIDTH,), unlimited_length=True,     # we store A4-width pages only
            scan_time_code={0: 7, 5: 1, 10: 2, 20: 0, 40: 4}[cfg.min_scan_line_ms],
        )

    async def _run_receiver(self) -> None:
        cfg = self.config
        self._set_phase("B")
        if self.calling:
            # We called to receive: the answerer must offer a document (DIS bit 9); we poll with DTC.
            offer = Capabilities.parse((await self._await_identification(fcf.DIS, None)).fif)
            if not offer.ready_to_transmit:
                raise self._fail("incompatible", "the remote has no document to send (DIS without bit 9)",
                                 retryable=False)
            dis_frames = [fcf.build(fcf.CIG, encode_ident(cfg.ident), final=False),
                          fcf.build(fcf.DTC, self._local_capabilities().build(), final=True)]
        else:
            dis_frames = [fcf.build(fcf.CSI, encode_ident(cfg.ident), final=False),
                          fcf.build(fcf.DIS, self._local_capabilities().build(), final=True)]
        self._rx_dcs: DcsParams | None = None
        self._rx_trained = False          # a CFR was sent for the current DCS
        self._last_response: list[bytes] | None = None
        self._ended_with_eop = False
        self._rx_page_state = _Received(bytearray(), {})
        self._rx_block_frames: dict[int, bytes] = {}
        self._rx_last_block: tuple[int, int] | None = None
        self._rx_got_image = False
        self._rx_ppm_answer: int | None = None
        self._rx_expected_frames = 0
        self._pending_sinks: list[asyncio.Future] = []
        state = "dis"
        while state != "done":
            self._check_abort()
            if state == "dis":
                state = await self._rx_phase_b(dis_frames)
            elif state == "command":
                state = await self._rx_wait_command()
            elif state == "page":
                state = await self._rx_page()
            elif state == "end":
                state = await self._rx_end()
        await self._await_pending_sinks()

    async def _await_pending_sinks(self) -> None:
        """Pages still being stored (non-ECM, slow sink): the result waits for them (at most T5 each)."""
        for task in getattr(self, "_pending_sinks", []):
            if not await self._sink_done(task, self.config.t5):
                task.cancel()
                raise self._fail("internal_error", f"a received page was not stored within T5 ({self.config.t5:g} s)")
        self._pending_sinks = []

    async def _rx_phase_b(self, dis_frames: list[bytes]) -> str:
        """Send CSI/DIS every T4 until a command arrives or T1 runs out.

        Once the caller has been heard (even a damaged frame), DIS is not repeated until it has been
        quiet for T4: it is then busy with TCF or its own T4, and a DIS in the middle of that makes
        some senders (spandsp) give up with "unexpected message"."""
        cfg = self.config
        deadline = self.clock.now() + cfg.t1
        send_dis = True
        while self.clock.now() < deadline:
            self._check_abort()
            if send_dis:
                await self._send_frames(dis_frames)
            burst = await self._recv_burst(min(cfg.t4 if send_dis else cfg.t2 + cfg.t4, deadline - self.clock.now()))
            if burst is None:
                send_dis = True
                continue
            nxt = await self._rx_handle_command_burst(burst)
            if nxt is not None:
                return nxt
            # The remote's own DIS (it did not hear ours) calls for a repeat; anything else means wait.
            send_dis = any(f is not BAD and f.fcf in (fcf.DIS, fcf.CSI, fcf.NSF) for f in burst)
        raise self._fail("no_response", f"no command received in answer to DIS within T1 ({cfg.t1:g} s)")

    async def _rx_wait_command(self) -> str:
        """After FTT/RTN/RTP: wait (T2, a few times) for the sender's next command."""
        for _ in range(self.config.tries):
            self._check_abort()
            burst = await self._recv_burst(self.config.t2)
            if burst is None:
                continue
            nxt = await self._rx_handle_command_burst(burst)
            if nxt is not None:
                return nxt
        raise self._fail("no_response", f"no command received from the sender in phase {self.phase}")

    async def _rx_handle_command_burst(self, burst: list) -> str | None:
        """Act on a burst received while waiting for a command; the next state, or None to keep waiting."""
        frames = [f for f in burst if f is not BAD]
        for frame in frames:
            if frame.fcf == fcf.TSI:
                self.result.remote_ident = decode_ident(frame.fif)
        last = frames[-1] if frames else None
        if last is None:
            return None
        code = last.fcf
        if code == fcf.DCS:
            return await self._rx_training(last)
        if code == fcf.DCN:
            if self._ended_with_eop:
                return "done"
            raise self._remote_disconnected()
        if code == fcf.DTC:
            raise self._fail("incompatible", "the remote asked to poll us (DTC); we have nothing to send",
                             retryable=False)
        if code == fcf.CRP and self._last_response:
            await self._send_frames(self._last_response)
            return None
        if code in PPM_CODES or code in (fcf.PPS, fcf.EOR, fcf.RR, fcf.CTC):
            return await self._rx_post_page(last)
        return None

    async def _rx_training(self, dcs_frame) -> str:
        cfg = self.config
        try:
            dcs = DcsParams.parse(dcs_frame.fif)
        except ValueError as exc:
            raise self._fail("protocol_error", f"unusable DCS: {exc}") from exc
        self._check_dcs(dcs)
        self._rx_dcs = dcs
        self._rx_trained = False
        self.result.ecm = dcs.ecm
        self.result.compression = dcs.compression
        self.result.resolution = dcs.resolution
        self.result.fax_speed = dcs.modulation.bit_rate
        self.result.modulation = dcs.modulation.name
        self._progress()
        data = bytearray()
        try:
            self._last_op = "rx"
            async for chunk in self.phy.receive_image(dcs.modulation, cfg.tcf_first_byte_timeout):
                data += chunk
        except WrongCarrier:
            return "command"        # DCS again: the caller is repeating itself
        except TimeoutError:
            data = bytearray()
        if tcf_ok(bytes(data), dcs.modulation):
            self._last_response = [fcf.build(fcf.CFR, x=self.x)]
            await self._send_frames(self._last_response)
            self._rx_trained = True
            self._rx_page_state = _Received(bytearray(), {})
            self._rx_block_frames: dict[int, bytes] = {}
            self._rx_last_block: tuple[int, int] | None = None
            self._rx_got_image = False
            self._rx_ppm_answer = None
            self._rx_expected_frames = 0
            return "page"
        self._last_response = [fcf.build(fcf.FTT, x=self.x)]
        await self._send_frames(self._last_response)
        return "command"

    def _check_dcs(self, dcs: DcsParams) -> None:
        cfg = self.config
        if dcs.ecm and not cfg.ecm:
            raise self._fail("incompatible", "the sender chose ECM, which we did not offer", retryable=False)
        if dcs.compression not in cfg.compressions:
            raise self._fail("incompatible", f"the sender chose {dcs.compression.upper()}, which we did not offer",
                             retryable=False)
        if dcs.width != FAX_WIDTH:
            raise self._fail("incompatible", f"the sender chose a {dcs.width}-pixel width; we offered {FAX_WIDTH} only",
                             retryable=False)
        if dcs.modulation.family.lower() not in cfg.modems:
            raise self._fail("incompatible", f"the sender chose {dcs.modulation.name}, which we did not offer",
                             retryable=False)
        if dcs.resolution not in cfg.resolutions:
            raise self._fail("incompatible", f"the sender chose {dcs.resolution} resolution, which we did not offer",
                             retryable=False)

    async def _rx_page(self) -> str:
        """Phase C: take the page (or ECM block); a V.21 frame instead means the sender repeated itself."""
        cfg = self.config
        dcs = self._rx_dcs
        assert dcs is not None
        self._page_no = self.result.pages_received + 1
        self._set_phase("C")
        for _ in range(cfg.tries):
            self._check_abort()
            try:
                if dcs.ecm:
                    got = False
                    self._last_op = "rx"
                    async for hf in self.phy.receive_image_hdlc(dcs.modulation, cfg.t2):
                        got = True
                        self._rx_ecm_frame(hf)
                    if not got:
                        continue
                else:
                    data = bytearray()
                    self._last_op = "rx"
                    async for chunk in self.phy.receive_image(dcs.modulation, cfg.t2):
                        data += chunk
                    self._rx_page_state.data = data
                self._rx_got_image = True
            except (WrongCarrier, TimeoutError) as exc:
                # V.21 instead of the image: the sender repeats a command (it missed our answer).
                # No carrier at all: perhaps we missed the image and its command follows.
                burst = await self._recv_burst(cfg.t2 if isinstance(exc, WrongCarrier) else cfg.t4)
                if burst is None:
                    continue
                if all(f is BAD for f in burst):
                    await self._send_frames([fcf.build(fcf.CRP, x=self.x)])
                    continue
                nxt = await self._rx_handle_command_burst(burst)
                return nxt if nxt is not None else "page"
            return await self._rx_after_image()
        raise self._fail("no_response", f"no page data received for page {self._page_no}")

    def _rx_ecm_frame(self, hf: HdlcFrame) -> None:
        if not hf.fcs_ok or len(hf.data) < 4:
            return
        try:
            frame = fcf.parse(hf.data)
        except fcf.FrameError:
            return
        if frame.fcf == fcf.FCD and frame.fif:
            self._rx_block_frames[frame.fif[0]] = frame.fif[1:]

    async def _rx_after_image(self) -> str:
        """Phase D after an image: wait (T2, with CRP for damaged frames) for the post-page command."""
        cfg = self.config
        self._set_phase("D")
        for _ in range(cfg.tries):
            self._check_abort()
            burst = await self._recv_burst(cfg.t2)
            if burst is None:
                continue
            frames = [f for f in burst if f is not BAD]
            if not frames:
                await self._send_frames([fcf.build(fcf.CRP, x=self.x)])
                continue
            nxt = await self._rx_handle_command_burst(burst)
            if nxt is not None:
                return nxt
        raise self._fail("no_response", f"no post-page command after page {self._page_no}")

    async def _respond(self, code: int, fif: bytes = b"") -> None:
        self._last_response = [fcf.build(code, fif, x=self.x)]
        await self._send_frames(self._last_response)

    async def _rx_post_page(self, frame) -> str | None:
        dcs = self._rx_dcs
        if dcs is None or not self._rx_trained:
            log.info("ignoring %s before training succeeded", frame.name)
            return None
        code = frame.fcf
        if code in PPM_CODES:
            return await self._rx_non_ecm_ppm(_PRI_TO_PLAIN.get(code, code))
        if code == fcf.RR:
            if self._last_response:
                await self._send_frames(self._last_response)
            return "page" if not self._ended_with_eop else "end"
        if code == fcf.CTC:
            try:
                new_mod = modulation_from_ctc(frame.fif)
            except ValueError as exc:
                raise self._fail("protocol_error", str(exc)) from exc
            self._rx_dcs = replace(dcs, modulation=new_mod)
            self.result.fax_speed = new_mod.bit_rate
            self.result.modulation = new_mod.name
            await self._respond(fcf.CTR)
            return "page"
        if code in (fcf.PPS, fcf.EOR):
            if not frame.fif:
                raise self._fail("protocol_error", f"{frame.name} without its information field")
            fcf2 = fcf.normalize(frame.fif[0]) if frame.fif[0] else fcf.PPS_NULL
            fcf2 = _PRI_TO_PLAIN.get(fcf2, fcf2)
            if code == fcf.EOR:
                return await self._rx_ecm_block_done(fcf2, None, accept_partial=True)
            if len(frame.fif) < 4:
                raise self._fail("protocol_error", "PPS with a short information field")
            return await self._rx_ecm_block_done(fcf2, frame.fif[1:4], accept_partial=False)
        return "page"

    async def _rx_non_ecm_ppm(self, ppm: int) -> str:
        dcs = self._rx_dcs
        if dcs.ecm:
            raise self._fail("protocol_error", f"{fcf.NAMES[ppm]} without PPS in an ECM session")
        state = self._rx_page_state
        if not self._rx_got_image and self._rx_ppm_answer is not None:
            # No image since our last answer: the sender missed it and repeats the command.
            await self._send_frames(self._last_response)
            return self._rx_next_state(ppm, self._rx_ppm_answer)
        page, bad_rows, verdict = self._decode_page(bytes(state.data), dcs)
        state.data = bytearray()
        self._rx_got_image = False
        self._rx_ppm_answer = verdict
        if verdict in (fcf.MCF, fcf.RTP):
            # Without ECM there is no RNR, and the answer is due within T4: a sink slower than
            # ``sink_grace`` finishes in the background and the session waits for it before it ends.
            sink = self._deliver(page, bad_rows)
            if not await self._sink_done(sink, self.config.sink_grace):
                self._pending_sinks.append(sink)
        await self._respond(verdict)
        return self._rx_next_state(ppm, verdict)

    def _rx_next_state(self, ppm: int, verdict: int) -> str:
        if verdict in (fcf.RTN, fcf.RTP):
            if ppm == fcf.EOP and verdict == fcf.RTP:
                self._ended_with_eop = True
                return "end"
            return "command"           # the sender retrains (DCS/TCF) before the next page
        if ppm == fcf.MPS:
            return "page"
        if ppm == fcf.EOM:
            return "dis"
        self._ended_with_eop = True
        return "end"

    def _decode_page(self, data: bytes, dcs: DcsParams) -> tuple[FaxPage | None, int, int]:
        from imaging import codec

        comp = getattr(codec.Compression, dcs.compression.upper())
        try:
            decoded = codec.decode(data, comp, dcs.width, lsb_first=True)
        except Exception as exc:  # undecodable data is a bad page, not a crash
            log.info("page %d undecodable: %s", self._page_no, exc)
            return None, 0, fcf.RTN
        pixels = np.asarray(decoded.pixels, dtype=bool)
        verdict = judge_page(decoded.rows, decoded.bad_rows, decoded.consecutive_bad_rows)
        page = FaxPage(pixels=pixels, y_dpi=dcs.y_dpi)
        return page, int(decoded.bad_rows), verdict

    def _deliver(self, page: FaxPage | None, bad_rows: int) -> asyncio.Future | None:
        """Hand the page to ``on_page``; an asynchronous sink comes back as a task still running."""
        if page is None:
            return None
        self.result.pages_received += 1
        self.result.bad_rows += bad_rows
        self._page_no = self.result.pages_received
        sink = self.on_page(page, bad_rows) if self.on_page is not None else None
        self._progress(received=self.result.pages_received)
        return asyncio.ensure_future(sink) if inspect.isawaitable(sink) else None

    async def _sink_done(self, task: asyncio.Future | None, seconds: float) -> bool:
        """Wait up to ``seconds`` of clock time for the page sink; its failure ends the session."""
        if task is None:
            return True
        if not task.done() and seconds > 0:
            timer = asyncio.ensure_future(self.clock.sleep(seconds))
            try:
                await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
        if not task.done():
            return False
        task.result()       # re-raises the sink's exception: internal_error, with DCN
        return True

    async def _rx_not_ready(self, task: asyncio.Future, final: int, next_state: str) -> str:
        """ECM receiver whose page sink is still busy: RNR, then RNR to every RR until it is done (T5).

        The page is only confirmed (``final``, MCF or ERR) once it has been stored."""
        cfg = self.config
        deadline = self.clock.now() + cfg.t5
        await self._respond(fcf.RNR)
        misses = 0
        while True:
            self._check_abort()
            burst = await self._recv_burst(cfg.t2 + cfg.t4)
            frames = [f for f in burst or [] if f is not BAD]
            if not frames:
                misses += 1
                if misses >= cfg.tries:
                    task.cancel()
                    raise self._fail("no_response", "no RR from the sender after our RNR")
                if burst:
                    await self._send_frames([fcf.build(fcf.CRP, x=self.x)])
                continue
            misses = 0
            code = frames[-1].fcf
            if code == fcf.DCN:
                await self._sink_done(task, cfg.t5)
                raise self._remote_disconnected()
            if code not in (fcf.RR, fcf.PPS, fcf.EOR, fcf.CRP) and code not in PPM_CODES:
                continue
            if await self._sink_done(task, min(cfg.sink_grace, max(0.0, deadline - self.clock.now()))):
                await self._respond(final)
                return next_state
            if self.clock.now() >= deadline:
                task.cancel()
                raise self._fail("internal_error", f"page {self._page_no} not stored within T5 ({cfg.t5:g} s)")
            await self._respond(fcf.RNR)

    async def _rx_ecm_block_done(self, fcf2: int, counts: bytes | None, *, accept_partial: bool) -> str:
        state = self._rx_page_state
        frames = self._rx_block_frames
        if counts is not None:
            page_no, block_no, n = counts[0], counts[1], counts[2] + 1
            key = (page_no, block_no)
            if not frames and self._rx_last_block == key and self._last_response:
                await self._send_frames(self._last_response)   # our MCF was lost: say it again
                return self._rx_next_after_block(fcf2)
            # After a retransmission some senders (spandsp) count only the frames they resent:
            # the block keeps the size its first PPS announced.
            n = max(n, self._rx_expected_frames)
            self._rx_expected_frames = n
            size = self._rx_dcs.ecm_frame_size
            for i in [i for i in range(n) if i in frames and len(frames[i]) != size]:
                if i < n - 1 or fcf2 == fcf.PPS_NULL or len(frames[i]) > size:
                    del frames[i]      # only the last frame of a page may be short
            missing = [i for i in range(n) if i not in frames]
            if missing:
                await self._respond(fcf.PPR, ecm.ppr_bitmap(missing))
                return "page"
        else:
            key = None
            n = max([self._rx_expected_frames, *[i + 1 for i in frames]])
        size = self._rx_dcs.ecm_frame_size
        for i in range(n):
            state.data += frames.get(i, bytes(size))
        self._rx_block_frames = {}
        self._rx_expected_frames = 0
        self._rx_last_block = key
        sink = None
        if fcf2 != fcf.PPS_NULL:
            page, bad_rows, _verdict = self._decode_page(bytes(state.data), self._rx_dcs)
            state.data = bytearray()
            sink = self._deliver(page, bad_rows)
        final = fcf.ERR if accept_partial else fcf.MCF
        if not await self._sink_done(sink, self.config.sink_grace):
            return await self._rx_not_ready(sink, final, self._rx_next_after_block(fcf2))
        await self._respond(final)
        return self._rx_next_after_block(fcf2)

    def _rx_next_after_block(self, fcf2: int) -> str:
        if fcf2 in (fcf.PPS_NULL, fcf.MPS):
            return "page"
        if fcf2 == fcf.EOM:
            return "dis"
        self._ended_with_eop = True
        return "end"

    async def _rx_end(self) -> str:
        """After answering EOP: wait for DCN; a repeated EOP gets our answer again."""
        self._set_phase("E")
        for _ in range(self.config.tries):
            try:
                burst = await self._recv_burst(self.config.t2)
            except PhyError:
                return "done"       # the sender hung up without DCN: the fax is complete anyway
            if burst is None:
                return "done"
            frames = [f for f in burst if f is not BAD]
            if not frames:
                continue
            last = frames[-1]
            if last.fcf == fcf.DCN:
                return "done"
            if last.fcf in (fcf.EOP, fcf.PRI_EOP, fcf.PPS, fcf.EOR, fcf.RR, fcf.CRP) and self._last_response:
                await self._send_frames(self._last_response)
                continue
            if last.fcf == fcf.DCS:         # RTP then a retrain: unusual, but follow the sender
                self._ended_with_eop = False
                return await self._rx_training(last)
        return "done"
