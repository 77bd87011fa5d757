"""Sizes as people write them: `500M`, `2G`, `1.5G`, or plain bytes. Binary units (1K = 1024)."""

from __future__ import annotations

import re

from .errors import ValidationError

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
MAX_SIZE = 1024**5  # 1 PiB: past this a number is a typo, not a quota


def parse_size(text: str | int, *, field: str = "quota") -> int:
    """Bytes from `500M`, `2G`, `1.5G`, `1048576`; `0` or `unlimited` mean no limit (0)."""
    if isinstance(text, int):
        value = text
    else:
        if text.strip().lower() in {"unlimited", "none"}:
            return 0
        match = _PATTERN.fullmatch(text)
        if not match:
            raise ValidationError(
                f"{text!r} is not a size: write bytes or a number with K, M, G or T "
                "(e.g. 500M, 2G).",
                field=field,
            )
        number, unit = match.groups()
        value = int(float(number) * _UNITS[unit.upper()])
    if value < 0:
        raise ValidationError("A size cannot be negative.", field=field)
    if value > MAX_SIZE:
        raise ValidationError("That size is too large.", field=field)
    return value


def format_size(value: int | None) -> str:
    """`1073741824` -> `1 GiB`; 0 or None -> `unlimited`."""
    if not value:
        return "unlimited"
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor:
            amount = value / factor
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{value} B"


def size_for_input(value: int) -> str:
    """An exact, editable form of a size: `2G`, `500M`, or bytes."""
    if value == 0:
        return "0"
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)
