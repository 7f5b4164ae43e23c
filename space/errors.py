"""How an exception is quoted in a one-line message to the user: its first line, or its type where it says nothing."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """e.g. "401 Client Error: Unauthorized for url: …" from an HTTP error whose text goes on for lines."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
