"""Declarative base, naming convention and portable column types."""

from __future__ import annotations

import datetime as dt
import typing as t

from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints make migrations reproducible on every backend (MariaDB and PostgreSQL
# otherwise invent their own names, and Alembic cannot drop what it cannot name).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware.

    SQLite and MariaDB have no time zone type; storing naive UTC everywhere keeps the three
    backends identical and lets Alembic compare the schema without false differences.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> t.Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware UTC datetime")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: t.Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC)


class PreciseUTCDateTime(UTCDateTime):
    """`UTCDateTime` that keeps microseconds on MariaDB too, whose DATETIME keeps whole
    seconds: the change stamps (``ServerSettings.config_changed_at``) are compared with the
    apply's watermark, and two changes within one second must not look like one."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> t.Any:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())


#: The largest row id: Integer primary keys are 32-bit on every backend. A larger number
#: given as an id can name no row, and would overflow the database's integer type.
MAX_ROW_ID = 2**31 - 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: t.ClassVar[dict[t.Any, t.Any]] = {dt.datetime: UTCDateTime}
