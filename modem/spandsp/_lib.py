"""Loading libspandsp.so.2 and declaring the C prototypes we use (spandsp 0.0.6, Debian).

Every state object is allocated by the library (``*_init(NULL, ...)``); the only struct laid out
here is ``t30_stats_t`` (15 ints, 60 bytes in 0.0.6).  Prototypes are copied from the public
headers in /usr/include/spandsp; getting one wrong corrupts memory silently, so keep them exact.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char_p, c_int, c_int16, c_size_t, c_uint8, c_uint16, c_void_p

SONAME = "libspandsp.so.2"


class SpandspUnavailable(RuntimeError):
    """libspandsp.so.2 could not be loaded."""


class T30Stats(ctypes.Structure):
    """``t30_stats_t`` of spandsp 0.0.6 (the ``#if 0`` fields are not compiled in)."""

    _fields_ = [(name, c_int) for name in (
        "bit_rate", "error_correcting_mode", "pages_tx", "pages_rx", "pages_in_file",
        "x_resolution", "y_resolution", "width", "length", "image_size", "encoding", "bad_rows",
        "longest_bad_row_run", "error_correcting_mode_retries", "current_status")]


# Callback types (the C typedefs of the same names).
T38_TX_PACKET_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_uint8), c_int, c_int)
T30_PHASE_BD_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_int)
T30_PHASE_E_HANDLER = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int)
T30_REAL_TIME_FRAME_HANDLER = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_int, POINTER(c_uint8), c_int)
AT_TX_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_uint8), c_size_t)
# ``num`` is a char * for CALL/SETID and a small integer smuggled in the pointer otherwise.
T31_MODEM_CONTROL_HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_int, c_void_p)
MESSAGE_HANDLER = ctypes.CFUNCTYPE(None, c_int, c_char_p)

_P16 = POINTER(c_int16)
_PU8 = POINTER(c_uint8)
_S = c_void_p  # any opaque state pointer

_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    # t38_terminal.h
    "t38_terminal_init": (_S, [_S, c_int, T38_TX_PACKET_HANDLER, c_void_p]),
    "t38_terminal_send_timeout": (c_int, [_S, c_int]),
    "t38_terminal_set_config": (None, [_S, c_int]),
    "t38_terminal_set_tep_mode": (None, [_S, c_int]),
    "t38_terminal_set_fill_bit_removal": (None, [_S, c_int]),
    "t38_terminal_get_t30_state": (_S, [_S]),
    "t38_terminal_get_t38_core_state": (_S, [_S]),
    "t38_terminal_get_logging_state": (_S, [_S]),
    "t38_terminal_free": (c_int, [_S]),
    # t38_core.h
    "t38_core_rx_ifp_packet": (c_int, [_S, _PU8, c_int, c_uint16]),
    "t38_set_t38_version": (None, [_S, c_int]),
    "t38_set_fastest_image_data_rate": (None, [_S, c_int]),
    "t38_set_max_datagram_size": (None, [_S, c_int]),
    "t38_set_data_rate_management_method": (None, [_S, c_int]),
    "t38_core_get_logging_state": (_S, [_S]),
    # fax.h
    "fax_init": (_S, [_S, c_int]),
    "fax_rx": (c_int, [_S, _P16, c_int]),
    "fax_tx": (c_int, [_S, _P16, c_int]),
    "fax_set_transmit_on_idle": (None, [_S, c_int]),
    "fax_set_tep_mode": (None, [_S, c_int]),
    "fax_get_t30_state": (_S, [_S]),
    "fax_get_logging_state": (_S, [_S]),
    "fax_free": (c_int, [_S]),
    # t31.h
    "t31_init": (_S, [_S, AT_TX_HANDLER, c_void_p, T31_MODEM_CONTROL_HANDLER, c_void_p,
                      T38_TX_PACKET_HANDLER, c_void_p]),
    "t31_call_event": (None, [_S, c_int]),
    "t31_at_rx": (c_int, [_S, c_char_p, c_int]),
    "t31_rx": (c_int, [_S, _P16, c_int]),
    "t31_rx_fillin": (c_int, [_S, c_int]),
    "t31_tx": (c_int, [_S, _P16, c_int]),
    "t31_set_transmit_on_idle": (None, [_S, c_int]),
    "t31_set_tep_mode": (None, [_S, c_int]),
    "t31_get_logging_state": (_S, [_S]),
    "t31_free": (c_int, [_S]),
    # t30.h / t30_api.h
    "t30_set_tx_file": (None, [_S, c_char_p, c_int, c_int]),
    "t30_set_rx_file": (None, [_S, c_char_p, c_int]),
    "t30_set_tx_ident": (c_int, [_S, c_char_p]),
    "t30_get_rx_ident": (c_char_p, [_S]),
    "t30_set_ecm_capability": (c_int, [_S, c_int]),
    "t30_set_rx_encoding": (c_int, [_S, c_int]),
    "t30_set_minimum_scan_line_time": (c_int, [_S, c_int]),
    "t30_set_supported_modems": (c_int, [_S, c_int]),
    "t30_set_supported_compressions": (c_int, [_S, c_int]),
    "t30_set_supported_resolutions": (c_int, [_S, c_int]),
    "t30_set_supported_image_sizes": (c_int, [_S, c_int]),
    "t30_set_phase_b_handler": (None, [_S, T30_PHASE_BD_HANDLER, c_void_p]),
    "t30_set_phase_d_handler": (None, [_S, T30_PHASE_BD_HANDLER, c_void_p]),
    "t30_set_phase_e_handler": (None, [_S, T30_PHASE_E_HANDLER, c_void_p]),
    "t30_set_real_time_frame_handler": (None, [_S, T30_REAL_TIME_FRAME_HANDLER, c_void_p]),
    "t30_get_transfer_statistics": (None, [_S, POINTER(T30Stats)]),
    "t30_completion_code_to_str": (c_char_p, [c_int]),
    "t30_frametype": (c_char_p, [c_uint8]),
    "t30_call_active": (c_int, [_S]),
    "t30_terminate": (None, [_S]),
    "t30_get_logging_state": (_S, [_S]),
    # logging.h
    "span_log_set_level": (c_int, [_S, c_int]),
    "span_log_set_tag": (c_int, [_S, c_char_p]),
    "span_log_bump_samples": (c_int, [_S, c_int]),
    "span_log_set_message_handler": (None, [_S, MESSAGE_HANDLER]),
}

_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library with prototypes set (loaded once, on first use)."""
    global _lib
    if _lib is None:
        try:
            handle = ctypes.CDLL(SONAME)
        except OSError as exc:
            raise SpandspUnavailable(
                f"cannot load {SONAME} ({exc}); install the Debian package libspandsp2 "
                "(spandsp 0.0.6) to use the spandsp peer and the virtual modem rig") from exc
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(handle, name)
            except AttributeError as exc:
                raise SpandspUnavailable(f"{SONAME} has no symbol {name}; spandsp 0.0.6 is required") from exc
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = handle
    return _lib


def require() -> None:
    """Load the library now, so a command can say why it cannot run before it starts (SpandspUnavailable)."""
    lib()


def available() -> bool:
    """True if libspandsp.so.2 loads (for skipping tests on machines without it)."""
    try:
        lib()
    except SpandspUnavailable:
        return False
    return True


def int16_pointer(buf) -> ctypes._Pointer:  # type: ignore[name-defined]
    """A ``int16_t *`` into a C-contiguous numpy int16 array."""
    return buf.ctypes.data_as(_P16)
