"""Time zones: each person reads times in their own zone; the database keeps UTC.

`format_time` is the one way the panel shows a moment (pages, audit, revisions, flash
messages); `to_utc` and `to_local` convert what a person types into a date field and back.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from .errors import ValidationError

__all__ = ["check_time_zone", "format_time", "time_zone_names", "to_local", "to_utc", "zone_of"]

#: The longest IANA zone name is 32 characters; the column holds 64.
TIME_ZONE_MAX = 64


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """Every zone a person may choose, sorted (IANA names such as "Europe/Berlin")."""
    return tuple(sorted(
        name for name in zoneinfo.available_timezones()
        # Legacy aliases ("US/Pacific", "Etc/GMT+5" with its inverted sign) only confuse.
        if ("/" in name and not name.startswith(("Etc/", "SystemV/", "US/"))) or name == "UTC"
    ))


def check_time_zone(name: str, *, field: str = "time_zone") -> str:
    """The zone name, stripped; raises ValidationError unless it is a known IANA zone."""
    cleaned = name.strip()
    if len(cleaned) > TIME_ZONE_MAX or cleaned not in time_zone_names():
        raise ValidationError(
            f"{cleaned[:40]!r} is not a time zone this server knows; choose one from the list "
            "(for example Europe/Berlin or America/New_York).",
            field=field,
        )
    return cleaned


def zone_of(name: str | None) -> dt.tzinfo:
    """The zone called `name`; UTC for None or a name this server no longer knows."""
    if not name:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def format_time(value: dt.datetime | None, zone: str | None, *, never: str = "never") -> str:
    """A moment as a person reads it in `zone`: "2026-12-06 15:04 CET" (UTC without a zone).

    Naive values are UTC, as the database stores them.
    """
    if value is None:
        return never
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(zone_of(zone))
    label = local.tzname() or "UTC"
    # Zones without an abbreviation report an offset such as "+0530"; spell it as one.
    if label[:1] in "+-" and label[1:].isdigit():
        label = f"UTC{label[:3]}:{label[3:]}" if len(label) == 5 else f"UTC{label}"
    return f"{local:%Y-%m-%d %H:%M} {label}"


def to_utc(local: dt.datetime | None, zone: str | None) -> dt.datetime | None:
    """A wall-clock time typed in `zone` (naive) as an aware UTC moment."""
    if local is None:
        return None
    return local.replace(tzinfo=zone_of(zone)).astimezone(dt.UTC)


def to_local(value: dt.datetime | None, zone: str | None) -> dt.datetime | None:
    """A stored moment as the naive wall-clock time in `zone`, for a date-time field."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone_of(zone)).replace(tzinfo=None)
