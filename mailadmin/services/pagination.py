"""Server-side pagination: lists never load more than one page."""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..errors import NotFound, ValidationError

T = t.TypeVar("T")
MAX_PER_PAGE = 200
#: The highest page number of any list. Row ids are 32-bit on every backend and a page holds
#: at most MAX_PER_PAGE rows, so no list reaches it (10,000,000 x 200 < 2**31); past it an
#: OFFSET would overflow the database's integer types (a server error on SQLite and
#: PostgreSQL) instead of finding nothing, so such a page is refused as not found.
MAX_PAGE = 10_000_000
#: Longest page number text looked at; anything longer is past every list anyway.
_MAX_DIGITS = 20
#: A search counts its matches up to this many; past it a page says "more than" and has a
#: next page while rows remain (counting a million matches per page view would cost more
#: than the page).
COUNT_CAP = 1000


@dataclass(frozen=True)
class Page(t.Generic[T]):
    items: list[T]
    page: int
    per_page: int
    #: How many rows the whole list has; when `exact` is False, at least this many (a search
    #: stops counting at `COUNT_CAP` matches) and `more` says whether a next page exists.
    total: int
    exact: bool = True
    more: bool = False

    @property
    def pages(self) -> int:
        counted = max(1, math.ceil(self.total / self.per_page))
        if self.exact:
            return counted
        return max(counted, self.page + (1 if self.more else 0))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.more if not self.exact else self.page < self.pages


def clamp(page: int, per_page: int) -> tuple[int, int]:
    """The page and page size to use: at least 1, at most `MAX_PER_PAGE` a page.

    Raises NotFound for a page past `MAX_PAGE` (it cannot exist).
    """
    page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)
    if page > MAX_PAGE:
        raise NotFound(f"There is no page {page}: no list here is that long.")
    return page, per_page


def _whole_number(name: str, text: str) -> int:
    cleaned = text.strip()
    if not cleaned.isascii() or not cleaned.isdigit():
        raise ValidationError(f"{name} must be a whole number, 1 or more; not {text[:40]!r}.",
                              field=name)
    # Python would read a million digits too, slowly; past 20 every page is out of range.
    return int(cleaned.lstrip("0")[:_MAX_DIGITS + 1] or "0")


def parse_page(text: str | None) -> int:
    """The page number a request asked for (the text of `?page=`; missing or blank is 1).

    Raises ValidationError for text that is not a whole number of 1 or more, NotFound for a
    page that cannot exist (see `clamp`).
    """
    if text is None or not text.strip():
        return 1
    page = _whole_number("page", text)
    if page < 1:
        raise ValidationError("page must be a whole number, 1 or more.", field="page")
    clamp(page, 1)
    return page


def parse_per_page(text: str | None, default: int) -> int:
    """The page size a request asked for (`?per_page=`; missing or blank is `default`).

    Raises ValidationError unless it is a whole number from 1 to `MAX_PER_PAGE`.
    """
    if text is None or not text.strip():
        return default
    per_page = _whole_number("per_page", text)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationError(f"per_page must be from 1 to {MAX_PER_PAGE}.", field="per_page")
    return per_page


def paginate(session: Session, query: t.Any, page: int, per_page: int) -> Page[t.Any]:
    """Run one page of `query` (already ordered) and a count of the whole."""
    page, per_page = clamp(page, per_page)
    total = session.scalar(
        select(func.count()).select_from(query.order_by(None).subquery())
    ) or 0
    items = list(session.execute(query.limit(per_page).offset((page - 1) * per_page)).all())
    return Page(items=items, page=page, per_page=per_page, total=total)


def paginate_keys(
    session: Session, key_query: Select[t.Any], page: int, per_page: int
) -> tuple[list[t.Any], int, int, int]:
    """One page of primary keys from an ordered query, and the total.

    Used as a "deferred join": sorting and skipping over narrow index entries instead of whole
    rows keeps deep pages fast at 100,000 rows; the caller then loads just this page's rows.
    """
    page, per_page = clamp(page, per_page)
    total = session.scalar(
        select(func.count()).select_from(key_query.order_by(None).subquery())
    ) or 0
    keys = list(session.scalars(key_query.limit(per_page).offset((page - 1) * per_page)))
    return keys, total, page, per_page


def capped_count(
    session: Session, key_query: Select[t.Any], cap: int | None = None
) -> tuple[int, bool]:
    """How many rows `key_query` has, counting no further than `cap` (`COUNT_CAP`):
    (count, exact)."""
    cap = COUNT_CAP if cap is None else cap
    counted = session.scalar(
        select(func.count()).select_from(key_query.order_by(None).limit(cap + 1).subquery())
    ) or 0
    return min(counted, cap), counted <= cap
