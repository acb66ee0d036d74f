"""The one error the imaging layer raises for bad input, so callers can report it without a traceback."""

from __future__ import annotations


class ImagingError(Exception):
    """A document that cannot become fax pages (or a fax file that cannot be read); the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
