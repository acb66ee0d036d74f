"""Common plumbing for Python objects that own one spandsp state.

spandsp calls back into Python from inside library calls.  Acting on a callback there (feeding
the peer, which may feed us back) would re-enter the library on a state that is mid-update, and
an exception raised in a ctypes callback is printed and swallowed.  So the C-facing callbacks
only record what happened; the recorded deliveries run after the library call has returned, and
any exception they or the callbacks raise surfaces in the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .logbridge import LogBridge


class ClosedError(RuntimeError):
    """The spandsp state was already freed."""


class StateOwner:
    _kind = "spandsp"

    def __init__(self) -> None:
        self._state: int | None = None
        self._pending: deque[Callable[[], None]] = deque()
        self._callback_error: BaseException | None = None
        self._log: LogBridge | None = None
        self._keep_alive: list[object] = []   # CFUNCTYPE objects C holds pointers to

    # -- used by subclasses ----------------------------------------------------------------
    def _require(self) -> int:
        if not self._state:
            raise ClosedError(f"{self._kind} is closed")
        return self._state

    def _defer(self, thunk: Callable[[], None]) -> None:
        self._pending.append(thunk)

    def _record_error(self, exc: BaseException) -> None:
        if self._callback_error is None:
            self._callback_error = exc

    def _flush(self) -> None:
        """Run deliveries recorded during the last library call, then raise a callback error if any."""
        while self._pending:
            self._pending.popleft()()
        if self._callback_error is not None:
            exc, self._callback_error = self._callback_error, None
            raise exc

    def _bump_log(self, samples: int) -> None:
        if self._log is not None:
            self._log.bump(samples)

    def _free(self, state: int) -> None:
        raise NotImplementedError

    # -- public lifecycle --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return not self._state

    def close(self) -> None:
        """Free the C state (idempotent)."""
        state, self._state = self._state, None
        if state:
            self._free(state)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
