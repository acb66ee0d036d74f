"""spandsp 0.0.6 constants we use, and the names the Python API accepts for them."""

from __future__ import annotations

import enum

# T30_SUPPORT_* modem bits
MODEMS = {"v27ter": 0x01, "v27": 0x01, "v29": 0x02, "v17": 0x04}
# T30_SUPPORT_*_COMPRESSION bits
COMPRESSIONS = {"none": 0x01, "t4_1d": 0x02, "t4_2d": 0x04, "t6": 0x08}
# T30_SUPPORT_*_RESOLUTION bits
RESOLUTIONS = {"standard": 0x01, "fine": 0x02, "superfine": 0x04, "r4": 0x10000, "r8": 0x20000,
               "r16": 0x40000, "300x300": 0x100000, "400x400": 0x200000, "600x600": 0x400000}
# T4_COMPRESSION_ITU_* (the line coding in t30_stats_t.encoding, and the rx TIFF compression)
ENCODINGS = {1: "t4_1d", 2: "t4_2d", 3: "t6", 4: "t85", 5: "t85_l0"}
RX_ENCODINGS = {"t4_1d": 1, "t4_2d": 2, "t6": 3}

T30_ERR_OK = 0
T30_ERR_CALLDROPPED = 49

T38_TERMINAL_OPTION_NO_PACING = 0x01

SPAN_LOG_ERROR = 1
SPAN_LOG_PROTOCOL_WARNING = 4
SPAN_LOG_FLOW = 5
SPAN_LOG_DEBUG = 8
SPAN_LOG_SHOW_SAMPLE_TIME = 0x0200
SPAN_LOG_SHOW_TAG = 0x2000

# Offset of at_state.logging inside struct t31_state_s in Debian's 0.0.6 build (the AT
# interpreter's logging state has no public getter).  Measured with offsetof() against the
# private headers; tests re-measure it with gcc when gcc is available.
T31_AT_LOGGING_OFFSET = 856


class CallEvent(enum.IntEnum):
    """``at_call_event_e``: what the application tells a T.31 modem about the line."""

    ALERTING = 1
    CONNECTED = 2
    ANSWERED = 3
    BUSY = 4
    NO_DIALTONE = 5
    NO_ANSWER = 6
    HANGUP = 7


class ModemControl(enum.IntEnum):
    """``at_modem_control_operation_e``: what a T.31 modem asks of the application."""

    CALL = 0
    ANSWER = 1
    HANGUP = 2
    OFFHOOK = 3
    ONHOOK = 4
    DTR = 5
    RTS = 6
    CTS = 7
    CAR = 8
    RNG = 9
    DSR = 10
    SETID = 11
    RESTART = 12
    DTE_TIMEOUT = 13
