"""Server-side pagination: lists never load more than one page."""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = t.TypeVar("T")
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page(t.Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def clamp(page: int, per_page: int) -> tuple[int, int]:
    return max(1, page), min(max(1, per_page), MAX_PER_PAGE)


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
