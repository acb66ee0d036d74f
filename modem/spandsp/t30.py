"""The T.30 side shared by spandsp's T.38 terminal and audio fax terminal.

Both embed a ``t30_state_t``; this module configures it from Python options, keeps the phase-E
result and the frame trace, and reads the transfer statistics.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import constants as C
from ._lib import T30_PHASE_E_HANDLER, T30_REAL_TIME_FRAME_HANDLER, T30Stats, lib


def completion_text(code: int) -> str:
    """spandsp's text for a phase E completion code (``t30_completion_code_to_str``)."""
    raw = lib().t30_completion_code_to_str(int(code))
    return raw.decode("latin-1") if raw else f"code {code}"


def frame_name(fcf: int) -> str:
    """spandsp's name for a T.30 frame control field (``t30_frametype``)."""
    raw = lib().t30_frametype(fcf & 0xFF)
    return raw.decode("latin-1") if raw else f"0x{fcf:02x}"


def _mask(names: Iterable[str], table: dict[str, int], what: str) -> int:
    mask = 0
    for name in names:
        key = name.lower().replace("-", "_").replace(".", "")
        if key not in table:
            raise ValueError(f"unknown {what} {name!r}; choose from {sorted(set(table))}")
        mask |= table[key]
    if not mask:
        raise ValueError(f"at least one {what} is needed")
    return mask


def modem_mask(modems: Iterable[str], max_bit_rate: int | None = None) -> int:
    """T30_SUPPORT_* bits for the modem names, trimmed to those able to stay at or below ``max_bit_rate``.

    spandsp 0.0.6 has no bit-rate cap for T.30 itself: it starts at the fastest rate of the
    best modem both ends have.  A cap is therefore applied by dropping modems whose top rate is
    above it (V.17 tops at 14400, V.29 at 9600, V.27ter at 4800).
    """
    mask = _mask(modems, C.MODEMS, "modem")
    if max_bit_rate is not None:
        if max_bit_rate < 14400:
            mask &= ~C.MODEMS["v17"]
        if max_bit_rate < 9600:
            mask &= ~C.MODEMS["v29"]
        if max_bit_rate < 4800:
            raise ValueError(f"max_bit_rate {max_bit_rate} is below every supported modem (4800 is the least)")
        if not mask:
            raise ValueError(f"no modem in {list(modems)} can run at or below {max_bit_rate} bit/s")
    return mask


@dataclass
class T30Options:
    """What both kinds of spandsp fax terminal accept."""

    ecm: bool = False
    modems: tuple[str, ...] = ("v17", "v29", "v27ter")
    max_bit_rate: int | None = None
    ident: str = ""
    tx_tiff: str | None = None
    rx_tiff: str | None = None
    compressions: tuple[str, ...] | None = None   # e.g. ("t4_1d",) ; None = spandsp's default
    resolutions: tuple[str, ...] | None = None    # e.g. ("standard", "fine")
    rx_encoding: str | None = None                # compression of the received TIFF
    min_scan_line_ms: int | None = None           # advertised minimum scan line time

    @classmethod
    def checked(cls, *, modems: Sequence[str], compressions: Sequence[str] | None,
                resolutions: Sequence[str] | None, **rest: Any) -> T30Options:
        """A terminal's keyword arguments as options (sequences frozen to tuples), validated before any C state."""
        opts = cls(modems=tuple(modems), compressions=None if compressions is None else tuple(compressions),
                   resolutions=None if resolutions is None else tuple(resolutions), **rest)
        opts.validate()
        return opts

    def validate(self) -> None:
        if self.tx_tiff is not None and not os.path.isfile(self.tx_tiff):
            raise FileNotFoundError(f"TIFF to send not found: {self.tx_tiff}")
        if self.rx_tiff is not None:
            parent = os.path.dirname(os.path.abspath(self.rx_tiff))
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"directory for the received TIFF does not exist: {parent}")
        if len(self.ident) > 20:
            raise ValueError(f"T.30 ident is at most 20 characters: {self.ident!r}")
        if self.min_scan_line_ms is not None and not 0 <= self.min_scan_line_ms <= 40:
            raise ValueError("min_scan_line_ms must be 0..40")
        if self.rx_encoding is not None and self.rx_encoding not in C.RX_ENCODINGS:
            raise ValueError(f"rx_encoding must be one of {sorted(C.RX_ENCODINGS)}")
        modem_mask(self.modems, self.max_bit_rate)
        for path in (self.tx_tiff, self.rx_tiff):
            if path is not None and len(os.fsencode(path)) >= 255:
                raise ValueError(f"path too long for spandsp (255 bytes max): {path}")


class T30Outcome:
    """How a terminal's call ended, for the StateOwner subclasses that keep their session in ``self.t30``."""

    t30: T30Session

    @property
    def completion_code(self) -> int | None:
        return self.t30.completion_code

    def stats(self) -> dict[str, Any]:
        if self.t30.final_stats is None:
            self._require()   # type: ignore[attr-defined]   # closed and never finished: ClosedError
        return self.t30.stats()


class T30Session:
    """Owns the Python side of one ``t30_state_t``: configuration, callbacks, result."""

    def __init__(self, t30: int, opts: T30Options) -> None:
        self.t30 = t30
        self.opts = opts
        self.completion_code: int | None = None
        self.final_stats: dict[str, Any] | None = None
        self.frames: list[tuple[str, str]] = []   # ("rx"|"tx", frame name)
        self._phase_e = T30_PHASE_E_HANDLER(self._on_phase_e)
        self._frame = T30_REAL_TIME_FRAME_HANDLER(self._on_frame)
        self._configure()

    def _configure(self) -> None:
        L, s, o = lib(), self.t30, self.opts
        if o.ident and L.t30_set_tx_ident(s, o.ident.encode("ascii")) < 0:
            raise ValueError(f"spandsp rejected the ident {o.ident!r}")
        L.t30_set_ecm_capability(s, int(o.ecm))
        L.t30_set_supported_modems(s, modem_mask(o.modems, o.max_bit_rate))
        if o.compressions is not None:
            L.t30_set_supported_compressions(s, _mask(o.compressions, C.COMPRESSIONS, "compression"))
        if o.resolutions is not None:
            L.t30_set_supported_resolutions(s, _mask(o.resolutions, C.RESOLUTIONS, "resolution"))
        if o.rx_encoding is not None:
            L.t30_set_rx_encoding(s, C.RX_ENCODINGS[o.rx_encoding])
        if o.min_scan_line_ms is not None:
            L.t30_set_minimum_scan_line_time(s, o.min_scan_line_ms)
        if o.tx_tiff is not None:
            L.t30_set_tx_file(s, os.fsencode(o.tx_tiff), -1, -1)
        if o.rx_tiff is not None:
            L.t30_set_rx_file(s, os.fsencode(o.rx_tiff), -1)
        L.t30_set_phase_e_handler(s, self._phase_e, None)
        L.t30_set_real_time_frame_handler(s, self._frame, None)

    # Both callbacks run inside spandsp calls: record only, never call back into the library
    # except for the read-only statistics.
    def _on_phase_e(self, _s: int, _user: int, code: int) -> None:
        self.completion_code = code
        try:
            self.final_stats = self._read_stats()
        except Exception:  # pragma: no cover - would only be a ctypes failure
            self.final_stats = None

    def _on_frame(self, _s: int, _user: int, incoming: int, msg, length: int) -> None:
        if length >= 3:
            self.frames.append(("rx" if incoming else "tx", frame_name(msg[2])))

    def _read_stats(self) -> dict[str, Any]:
        L = lib()
        st = T30Stats()
        L.t30_get_transfer_statistics(self.t30, ctypes.byref(st))
        raw_ident = L.t30_get_rx_ident(self.t30)
        return {
            "bit_rate": st.bit_rate,
            "ecm": bool(st.error_correcting_mode),
            "pages_tx": st.pages_tx,
            "pages_rx": st.pages_rx,
            "pages_in_file": st.pages_in_file,
            "x_resolution": st.x_resolution,
            "y_resolution": st.y_resolution,
            "width": st.width,
            "length": st.length,
            "image_size": st.image_size,
            "encoding": C.ENCODINGS.get(st.encoding, str(st.encoding)),
            "bad_rows": st.bad_rows,
            "longest_bad_row_run": st.longest_bad_row_run,
            "ecm_retries": st.error_correcting_mode_retries,
            "remote_ident": (raw_ident or b"").decode("latin-1").strip(),
        }

    def stats(self) -> dict[str, Any]:
        """Transfer statistics now (or as they were at phase E), plus the completion code and text."""
        out = dict(self.final_stats) if self.final_stats is not None else self._read_stats()
        out["completion_code"] = self.completion_code
        out["completion"] = None if self.completion_code is None else completion_text(self.completion_code)
        out["ok"] = self.completion_code == C.T30_ERR_OK
        out["frames"] = self.frame_trace()
        return out

    def frame_trace(self) -> list[str]:
        """Frames seen, ``->`` sent and ``<-`` received, with runs of one frame folded as ``->FCD x35``."""
        out: list[str] = []
        run = 0
        for i, (direction, name) in enumerate(self.frames):
            run += 1
            if i + 1 < len(self.frames) and self.frames[i + 1] == (direction, name):
                continue
            label = f"{'<-' if direction == 'rx' else '->'}{name}"
            out.append(label if run == 1 else f"{label} x{run}")
            run = 0
        return out
