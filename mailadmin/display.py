"""Values the way people read them: times, sizes, yes/no, lists. Pure functions, no Flask.

`format_time` is the one place a time becomes text for people (the panel's ``datetime``
filter, the audit log, the revisions page), so showing times in each user's own time zone
is a change here only.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from . import timezones
from .server_settings_table import PORTS_OR_OFF
from .sizes import format_size

#: Audit fields holding a size in bytes (0: unlimited).
_SIZE_WORDS = ("quota", "size", "_bytes")


def format_time(value: dt.datetime | None, zone: str | None = None, *,
                never: str = "never") -> str:
    """A moment for people in `zone` (None: UTC): "2026-03-01 12:00 UTC"; None is `never`."""
    return timezones.format_time(value, zone, never=never)


def _as_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def readable_value(key: str, value: t.Any, zone: str | None = None) -> str:
    """One field of an audit entry (or a setting) as people read it.

    Sizes in bytes become "50 MiB" (0: "unlimited"), booleans "yes"/"no", lists "a, b", a
    port switched off "off (not offered)", times `format_time`; missing is "—".
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(readable_value(key, item, zone) for item in value) if value else "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {readable_value(k, v, zone)}" for k, v in value.items())
    if isinstance(value, int):
        if key in PORTS_OR_OFF and value == 0:
            return "off (not offered)"
        if any(word in key for word in _SIZE_WORDS):
            return format_size(value)
        return str(value)
    if isinstance(value, str) and key.endswith(("_at", "_until", "_since")):
        moment = _as_time(value)
        if moment is not None:
            return format_time(moment, zone)
    return str(value)
