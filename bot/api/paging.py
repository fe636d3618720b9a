"""Opaque cursors: the sort key of the last item of a page, base64url of a JSON list."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from bot.api.errors import ApiError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, *rest: Any) -> str:
    raw = json.dumps([at.isoformat(), *rest], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """``(at, *rest)`` with ``rest`` of ``types``, or a 422 naming the cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != 1 + len(types):
            raise ValueError
        at = datetime.fromisoformat(values[0])
        if at.tzinfo is None:
            raise ValueError
        rest = values[1:]
        if not all(type(v) is t for v, t in zip(rest, types, strict=True)):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid", "not a cursor from this API", "cursor") from None
    return (at, *rest)
