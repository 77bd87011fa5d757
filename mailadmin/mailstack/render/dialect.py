"""`Dialect`: which configuration a release is rendered for."""

from __future__ import annotations

import dataclasses
import typing as t

from .common import RenderError

Mode = t.Literal["files", "sql"]
Version = t.Literal["2.3", "2.4"]
MODES: tuple[Mode, ...] = ("files", "sql")
VERSIONS: tuple[Version, ...] = ("2.3", "2.4")


@dataclasses.dataclass(frozen=True)
class Dialect:
    """Where the mail data lives (``files``: rendered maps and passwd-files; ``sql``: the
    servers query the panel's database) and which Dovecot major.minor reads the result.

    Postfix is the same in every version; the mode decides its lookup tables.
    """

    mode: Mode
    version: Version

    def __post_init__(self) -> None:
        if self.mode not in MODES or self.version not in VERSIONS:
            raise RenderError(
                f"no renderer for mode {self.mode!r} with Dovecot {self.version}; "
                f"available: modes {MODES} with Dovecot {VERSIONS}"
            )

    @classmethod
    def of(cls, mode: str, dovecot_version: str) -> Dialect:
        """The dialect for a settings pair; ``"2.4.1"`` means ``"2.4"``."""
        version = ".".join(dovecot_version.split(".")[:2])
        return cls(t.cast(Mode, mode), t.cast(Version, version))

    @property
    def sql(self) -> bool:
        return self.mode == "sql"

    @property
    def v24(self) -> bool:
        return self.version == "2.4"

    def __str__(self) -> str:
        return f"{self.mode}/{self.version}"


FILES_23 = Dialect("files", "2.3")
FILES_24 = Dialect("files", "2.4")
SQL_23 = Dialect("sql", "2.3")
SQL_24 = Dialect("sql", "2.4")
ALL = (FILES_23, FILES_24, SQL_23, SQL_24)
