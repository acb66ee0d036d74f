"""Line-audio plumbing shared by the spandsp states that take and make 8 kHz int16 samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._lib import int16_pointer
from ._owner import StateOwner

AudioCall = Callable[[int, object, int], int]   # e.g. ``fax_rx(state, int16_t *, len)``


class AudioStateOwner(StateOwner):
    """A :class:`StateOwner` whose state exchanges line audio through a ``*_rx``/``*_tx`` C pair."""

    def _audio_in(self, rx: AudioCall, samples: np.ndarray) -> int:
        """Hand ``samples`` to ``rx`` (nothing if empty); the caller flushes.  Returns how many went in."""
        state = self._require()
        buf = np.ascontiguousarray(samples, dtype=np.int16)
        if buf.ndim != 1:
            raise ValueError("audio must be a 1-D array of samples")
        if len(buf):
            rx(state, int16_pointer(buf), len(buf))
            self._bump_log(len(buf))
        return len(buf)

    def _audio_out(self, tx: AudioCall, n: int) -> np.ndarray:
        """``n`` samples from ``tx``, silence where it made fewer; flushed before returning."""
        state = self._require()
        if n <= 0:
            raise ValueError("n must be positive")
        buf = np.zeros(n, dtype=np.int16)
        tx(state, int16_pointer(buf), n)
        self._flush()
        return buf
