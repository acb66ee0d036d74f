"""One direction of the rig's simulated telephone line: delay, impulse hits and noise on 8 kHz audio.

Impairments are applied to audio, not to bits, because the modems only exchange audio.  They are
seeded, so a run is reproducible:

* ``symbol_error_rate``: the probability that a given 1/2400 s interval (one symbol of V.17,
  V.29 or V.27ter at 2400 baud, one eighth of a V.21 bit) is hit by a phase reversal: the
  samples of that interval are negated.  One hit costs a few bits at 14400 bit/s (6 bits per
  symbol, then the descrambler multiplies errors), so the resulting bit error rate is of the same
  order as ``symbol_error_rate`` times a small factor; the exact figure depends on the modem.
* ``noise_dbm0``: white Gaussian noise at that level, added only to 20 ms blocks that carry a
  signal (fax signals are sent near -13 dBm0, so -35 leaves about 22 dB SNR).  The noise is
  gated because spandsp 0.0.6's receivers detect the end of a carrier by energy: continuous
  noise above about -55 dBm0 hides every carrier-off, and calls then fail or stall (measured).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000
SAMPLES_PER_SYMBOL = SAMPLE_RATE / 2400   # 3.33 samples per 2400-baud symbol
HIT_SAMPLES = 4                            # a hit covers one symbol, rounded up
DBM0_RMS = 32768.0 * 10 ** (-3.14 / 20)    # rms of a 0 dBm0 signal in 16-bit linear (G.711 convention)
GATE_RMS = DBM0_RMS * 10 ** (-43 / 20)     # blocks quieter than -43 dBm0 count as silence


class LineDirection:
    """Carries audio one way with a fixed delay and optional, reproducible impairments."""

    def __init__(self, *, delay_ms: float = 0.0, symbol_error_rate: float = 0.0, noise_dbm0: float | None = None,
                 seed: int = 0) -> None:
        if delay_ms < 0 or delay_ms > 2000:
            raise ValueError("line delay must be 0..2000 ms")
        if not 0.0 <= symbol_error_rate < 0.5:
            raise ValueError("symbol_error_rate must be in [0, 0.5)")
        if noise_dbm0 is not None and not -90 <= noise_dbm0 <= 0:
            raise ValueError("noise level must be -90..0 dBm0")
        self.delay_samples = int(round(delay_ms * SAMPLE_RATE / 1000))
        self.symbol_error_rate = symbol_error_rate
        self.noise_rms = None if noise_dbm0 is None else DBM0_RMS * 10 ** (noise_dbm0 / 20)
        self._rng = np.random.default_rng(seed)
        self.hits = 0
        self.reset()

    def reset(self) -> None:
        """Empty the line (a new call starts with silence in flight)."""
        self._fifo = np.zeros(self.delay_samples, dtype=np.int16)

    def carry(self, samples: np.ndarray) -> np.ndarray:
        """Put ``samples`` on the line and take out as many from the far end."""
        n = len(samples)
        if self.delay_samples:
            joined = np.concatenate([self._fifo, samples.astype(np.int16, copy=False)])
            out, self._fifo = joined[:n].copy(), joined[n:]
        else:
            out = samples.astype(np.int16, copy=True)
        if self.symbol_error_rate > 0.0:
            out = self._hit(out)
        if self.noise_rms is not None and n and np.sqrt(np.mean(out.astype(np.float64) ** 2)) > GATE_RMS:
            noisy = out.astype(np.float64) + self._rng.normal(0.0, self.noise_rms, n)
            out = np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
        return out

    def _hit(self, out: np.ndarray) -> np.ndarray:
        symbols = len(out) / SAMPLES_PER_SYMBOL
        count = self._rng.binomial(int(round(symbols)), self.symbol_error_rate)
        if count:
            out = out.astype(np.int32)
            for start in self._rng.integers(0, max(1, len(out) - HIT_SAMPLES + 1), count):
                out[start:start + HIT_SAMPLES] = -out[start:start + HIT_SAMPLES]
            out = np.clip(out, -32768, 32767).astype(np.int16)
            self.hits += count
        return out
