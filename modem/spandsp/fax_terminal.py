"""spandsp's audio fax machine (``fax_init``): a complete G3 fax terminal on 8 kHz linear audio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._audio import AudioStateOwner
from ._lib import lib
from .logbridge import LogBridge
from .t30 import T30Options, T30Outcome, T30Session


class FaxAudioTerminal(T30Outcome, AudioStateOwner):
    """A calling or answering fax machine that sends ``tx_tiff`` and/or receives into ``rx_tiff``.

    Audio is 16-bit signed samples at 8000 Hz.  Time advances with the audio fed to
    :meth:`rx_audio`, so feed it continuously (silence included) for T.30 timers to run.
    """

    _kind = "FaxAudioTerminal"

    def __init__(self, calling: bool, *, ecm: bool = False, modems: Sequence[str] = ("v17", "v29", "v27ter"),
                 max_bit_rate: int | None = None, ident: str = "", tx_tiff: str | None = None,
                 rx_tiff: str | None = None, log: bool = False, compressions: Sequence[str] | None = None,
                 resolutions: Sequence[str] | None = None, rx_encoding: str | None = None,
                 min_scan_line_ms: int | None = None, transmit_on_idle: bool = True,
                 name: str | None = None) -> None:
        super().__init__()
        opts = T30Options.checked(ecm=ecm, modems=modems, max_bit_rate=max_bit_rate, ident=ident,
                                  tx_tiff=tx_tiff, rx_tiff=rx_tiff, compressions=compressions,
                                  resolutions=resolutions, rx_encoding=rx_encoding,
                                  min_scan_line_ms=min_scan_line_ms)
        self.calling = calling
        self.name = name or ("fax-caller" if calling else "fax-answerer")
        L = lib()
        state = L.fax_init(None, int(calling))
        if not state:
            raise RuntimeError("fax_init failed")
        self._state = state
        t30 = L.fax_get_t30_state(state)
        if log:
            self._log = LogBridge(f"faxengine.spandsp.{self.name}")
            self._log.attach(L.fax_get_logging_state(state), f"{self.name}/fax")
            self._log.attach(L.t30_get_logging_state(t30), f"{self.name}/t30")
        L.fax_set_transmit_on_idle(state, int(transmit_on_idle))
        self.t30 = T30Session(t30, opts)
        self.samples_in = 0

    def rx_audio(self, samples: np.ndarray) -> None:
        """Feed received line audio (int16, 8 kHz); this is also what moves the T.30 timers."""
        self.samples_in += self._audio_in(lib().fax_rx, samples)
        self._flush()

    def tx_audio(self, n: int = 160) -> np.ndarray:
        """The next ``n`` samples to put on the line (silence-padded if spandsp made fewer)."""
        return self._audio_out(lib().fax_tx, n)

    @property
    def done(self) -> bool:
        """Phase E has been reported."""
        return self.t30.completion_code is not None

    def terminate(self) -> None:
        """End the T.30 session now (the line went away); reports phase E if it was not yet."""
        state = self._require()
        lib().t30_terminate(lib().fax_get_t30_state(state))
        self._flush()

    def _free(self, state: int) -> None:
        lib().fax_free(state)
