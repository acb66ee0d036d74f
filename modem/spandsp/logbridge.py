"""Routing spandsp's per-state log output to Python ``logging``.

spandsp copies the *global* message handler into each logging state when the owning object is
created, so the handler has to be set on every state with ``span_log_set_message_handler``.
The handler gets no user data; a closure per object tells the states apart.  The tag pointer is
kept by the C side, so its buffer must live as long as the state.
"""

from __future__ import annotations

import ctypes
import logging

from . import constants as C
from ._lib import MESSAGE_HANDLER, lib


def _python_level(span_level: int) -> int:
    if span_level <= C.SPAN_LOG_ERROR:
        return logging.ERROR
    if span_level <= C.SPAN_LOG_PROTOCOL_WARNING:
        return logging.WARNING
    return logging.DEBUG


class LogBridge:
    """Sends the messages of a set of spandsp logging states to ``logging.getLogger(name)``."""

    def __init__(self, name: str, level: int = C.SPAN_LOG_FLOW) -> None:
        self.logger = logging.getLogger(name)
        self.level = level
        self._states: list[int] = []
        self._keep: list[object] = []
        self._handler = MESSAGE_HANDLER(self._on_message)

    def _on_message(self, level: int, text: bytes | None) -> None:
        try:
            if text:
                self.logger.log(_python_level(level), "%s", text.decode("latin-1").rstrip("\n"))
        except Exception:  # never let a logging failure unwind into C
            pass

    def attach(self, state: int | None, tag: str) -> None:
        """Route one ``logging_state_t *`` here, with the given tag."""
        if not state:
            return
        L = lib()
        tag_buf = ctypes.create_string_buffer(tag.encode("ascii", "replace"))
        self._keep.append(tag_buf)
        L.span_log_set_message_handler(state, self._handler)
        L.span_log_set_tag(state, tag_buf)
        L.span_log_set_level(state, self.level | C.SPAN_LOG_SHOW_TAG | C.SPAN_LOG_SHOW_SAMPLE_TIME)
        self._states.append(state)

    def bump(self, samples: int) -> None:
        """Advance the sample-time stamp of every attached state (it does not move on its own)."""
        L = lib()
        for state in self._states:
            L.span_log_bump_samples(state, samples)
