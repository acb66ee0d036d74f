"""spandsp's T.38 fax terminal: an independent T.30 + T.38 peer driven packet by packet."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

from . import constants as C
from ._lib import T38_TX_PACKET_HANDLER, lib
from ._owner import StateOwner
from .logbridge import LogBridge
from .t30 import T30Options, T30Outcome, T30Session

SendPacket = Callable[[bytes, int], None]


class T38Terminal(T30Outcome, StateOwner):
    """A spandsp ``t38_terminal``: sends or receives a TIFF over T.38 IFP packets.

    ``send_packet(ifp, seq)`` gets each bare IFP packet (no UDPTL header) with its sequence
    number, after the library call that produced it has returned.  spandsp asks for some packets
    (indicators, the last packet of a signal) to be sent several times; with ``repeat_copies``
    (the default) ``send_packet`` is called that many times with the same ``seq``, as spandsp's
    own UDP transport would, so the receiver drops the copies as repeats.  ``last_copies`` keeps
    the count spandsp asked for on the most recent packet.

    Time only advances in :meth:`step`; call it every 20 ms of your clock (160 samples), or
    free-running for a simulated call.  With ``no_pacing`` (TCP/TPKT style) a call takes well
    under a second of simulated time.
    """

    _kind = "T38Terminal"

    def __init__(self, calling: bool, send_packet: SendPacket, *, t38_version: int = 0, ecm: bool = False,
                 modems: Sequence[str] = ("v17", "v29", "v27ter"), max_bit_rate: int | None = None,
                 ident: str = "", tx_tiff: str | None = None, rx_tiff: str | None = None,
                 no_pacing: bool = False, log: bool = False, compressions: Sequence[str] | None = None,
                 resolutions: Sequence[str] | None = None, rx_encoding: str | None = None,
                 min_scan_line_ms: int | None = None, repeat_copies: bool = True,
                 max_datagram_size: int | None = None, name: str | None = None) -> None:
        super().__init__()
        if not 0 <= t38_version <= 3:
            raise ValueError("t38_version must be 0..3")
        if not callable(send_packet):
            raise TypeError("send_packet must be callable")
        opts = T30Options.checked(ecm=ecm, modems=modems, max_bit_rate=max_bit_rate, ident=ident,
                                  tx_tiff=tx_tiff, rx_tiff=rx_tiff, compressions=compressions,
                                  resolutions=resolutions, rx_encoding=rx_encoding,
                                  min_scan_line_ms=min_scan_line_ms)
        self.calling = calling
        self.name = name or ("t38-caller" if calling else "t38-answerer")
        self._send_packet = send_packet
        self._repeat = repeat_copies
        self._tx_seq = 0
        self.last_copies = 0
        self.packets_sent = 0
        self._over = False

        L = lib()
        self._tx_handler = T38_TX_PACKET_HANDLER(self._on_tx_packet)
        state = L.t38_terminal_init(None, int(calling), self._tx_handler, None)
        if not state:
            raise RuntimeError("t38_terminal_init failed")
        self._state = state
        self._core = L.t38_terminal_get_t38_core_state(state)
        t30 = L.t38_terminal_get_t30_state(state)
        if log:
            self._log = LogBridge(f"faxengine.spandsp.{self.name}")
            self._log.attach(L.t38_terminal_get_logging_state(state), f"{self.name}/t38term")
            self._log.attach(L.t38_core_get_logging_state(self._core), f"{self.name}/t38core")
            self._log.attach(L.t30_get_logging_state(t30), f"{self.name}/t30")
        L.t38_set_t38_version(self._core, t38_version)
        if max_bit_rate is not None:
            L.t38_set_fastest_image_data_rate(self._core, max_bit_rate)
        if max_datagram_size is not None:
            L.t38_set_max_datagram_size(self._core, max_datagram_size)
        L.t38_terminal_set_config(state, C.T38_TERMINAL_OPTION_NO_PACING if no_pacing else 0)
        self.t30 = T30Session(t30, opts)

    def _on_tx_packet(self, _core: int, _user: int, buf, length: int, count: int) -> int:
        try:
            data = ctypes.string_at(buf, length)
            seq = self._tx_seq
            self._tx_seq = (seq + 1) & 0xFFFF
            self.last_copies = count
            self.packets_sent += 1
            copies = max(1, count) if self._repeat else 1

            def deliver() -> None:
                for _ in range(copies):
                    self._send_packet(data, seq)

            self._defer(deliver)
        except BaseException as exc:  # pragma: no cover - defensive, surfaced by _flush
            self._record_error(exc)
        return 0

    def rx_ifp(self, data: bytes, seq: int) -> None:
        """Hand spandsp one received IFP packet (bare, UDPTL already stripped)."""
        self._require()
        if not data:
            raise ValueError("empty IFP packet")
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        lib().t38_core_rx_ifp_packet(self._core, buf, len(data), seq & 0xFFFF)
        self._flush()

    def step(self, samples: int = 160) -> bool:
        """Advance spandsp's clock by ``samples`` (8 kHz); True once the call is over."""
        state = self._require()
        if samples <= 0:
            raise ValueError("samples must be positive")
        over = lib().t38_terminal_send_timeout(state, samples)
        self._bump_log(samples)
        self._over = self._over or bool(over)
        self._flush()
        return self._over

    @property
    def done(self) -> bool:
        """The call is over (spandsp said so, or phase E has been reported)."""
        return self._over or self.t30.completion_code is not None

    def _free(self, state: int) -> None:
        lib().t38_terminal_free(state)
