"""What every `mailadmin` command shares: the state, the transaction, output and refusals.

A command opens one transaction with `CliState.unit_of_work()` (or `work()`, which also prints a
refusal as JSON under `--json`) and calls one service. A refusal is a message and a non-zero
exit: 1 for a refusal, 2 for a usage error. Nothing here imports the database layer at import
time, so `mailadmin diagnose FILE` runs without SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import typing as t
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..config import ConfigError, load_config
from ..errors import MailadminError, NotFound, ValidationError
from ..sizes import format_size, parse_size

if t.TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ..services.context import Actor
    from ..services.pagination import Page

F = t.TypeVar("F", bound=Callable[..., t.Any])

#: Exit status of a refusal (what `click.ClickException` uses) and of a usage error.
EXIT_REFUSED = 1
EXIT_USAGE = 2


@dataclass
class CliState:
    instance_path: Path | None
    acting_user: str | None
    _config: dict[str, t.Any] | None = None
    _engine: Engine | None = None
    _factory: sessionmaker[Session] | None = field(default=None, repr=False)

    @property
    def config(self) -> dict[str, t.Any]:
        if self._config is None:
            try:
                self._config = load_config(self.instance_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ..db import make_engine

            self._engine = make_engine(self.config["DATABASE_URL"])
        return self._engine

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            from ..db import make_session_factory

            self._factory = make_session_factory(self.engine)
        return self._factory

    def actor(self, session: Session) -> Actor:
        """The operator, or with `--as NAME` that panel user with exactly its rights."""
        from ..services import accounts
        from ..services.context import Actor

        if self.acting_user is None:
            return Actor.operator()
        user = accounts.find_user(session, self.acting_user)
        if user is None:
            raise NotFound(f"--as: there is no panel user {self.acting_user!r}.")
        if user.is_suspended:
            raise MailadminError(f"--as: the panel user {user.username!r} is suspended.")
        return Actor.for_user(user, channel="cli", source="cli")

    @contextmanager
    def unit_of_work(self) -> Iterator[tuple[Session, Actor]]:
        """One transaction for the command; a refusal rolls back and exits non-zero."""
        from ..db import transaction

        try:
            with transaction(self.session_factory) as session:
                yield session, self.actor(session)
        except MailadminError as exc:
            raise click.ClickException(exc.message) from None


pass_state = click.make_pass_decorator(CliState)


def read_password_from_stdin() -> str:
    """A password from standard input: its first line, without the line ending."""
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise click.ClickException("No password on standard input.")
    return password


# --- output -----------------------------------------------------------------------------------


def jsonable(value: t.Any) -> t.Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def echo_json(data: t.Any) -> None:
    click.echo(json.dumps(jsonable(data), ensure_ascii=False, indent=2))


def echo_error_json(code: str, message: str, field: str | None) -> None:
    echo_json({"error": {"code": code, "message": message, "field": field}})


def page_json(page: Page[t.Any]) -> dict[str, t.Any]:
    return {
        "items": [dataclasses.asdict(item) for item in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
        "total_exact": page.exact,
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# --- limits ---------------------------------------------------------------------------------

UNLIMITED = "unlimited"


def limit_count(as_json: bool, text: str | None, option: str) -> int | None:
    """A limit: a whole number, or "unlimited" (None)."""
    assert text is not None
    if text.strip().lower() == UNLIMITED:
        return None
    try:
        value = int(text)
    except ValueError:
        fail(as_json, f"{option} takes a number or 'unlimited'.")
    if value < 0:
        fail(as_json, f"{option} cannot be negative.")
    return value


def limit_size(as_json: bool, text: str | None, option: str) -> int | None:
    assert text is not None
    if text.strip().lower() == UNLIMITED:
        return None
    try:
        # parse_size reads 0 as "no limit" too.
        return parse_size(text, field=option.lstrip("-")) or None
    except ValidationError as exc:
        fail(as_json, f"{option}: {exc.message}")


def show_limit(value: int | None, size: bool = False) -> str:
    if value is None:
        return UNLIMITED
    return format_size(value) if size else str(value)


# --- refusals ---------------------------------------------------------------------------------


def fail(as_json: bool, message: str, *, code: str = "usage", field: str | None = None,
         usage: bool = True) -> t.NoReturn:
    """Stop the command: a usage error (exit 2) or a refusal (exit 1), as JSON with --json."""
    if as_json:
        echo_error_json(code, message, field)
        raise click.exceptions.Exit(EXIT_USAGE if usage else EXIT_REFUSED)
    if usage:
        raise click.UsageError(message, ctx=click.get_current_context(silent=True))
    raise click.ClickException(message)


@contextmanager
def work(state: CliState, as_json: bool) -> Iterator[tuple[Session, Actor]]:
    """`state.unit_of_work()`, with a refusal printed as JSON when `--json` was given.

    unit_of_work turns a MailadminError into a ClickException (exit 1, message on stderr); in
    JSON mode the original error's code and field are printed too. Refusals raised before the
    service runs (an unknown `--as` user) reach here only as the ClickException's context.
    """
    refusals: list[MailadminError] = []
    try:
        with state.unit_of_work() as (session, actor):
            try:
                yield session, actor
            except MailadminError as exc:
                refusals.append(exc)
                raise
    except click.ClickException as exc:
        if not as_json:
            raise
        cause = refusals[0] if refusals else exc.__context__
        if isinstance(cause, MailadminError):
            echo_error_json(cause.code, cause.message, cause.field)
        else:
            echo_error_json("error", exc.message, None)
        raise click.exceptions.Exit(exc.exit_code) from None


def stdin_password(as_json: bool) -> str:
    """The password from standard input; none is a refusal (as JSON with --json)."""
    try:
        return read_password_from_stdin()
    except click.ClickException as exc:
        fail(as_json, exc.message, code="invalid", field="password", usage=False)


def size_option(as_json: bool, text: str | None, option: str = "--quota") -> int | None:
    """A size option ("2G", "500M", bytes), or None when not given."""
    if text is None:
        return None
    try:
        return parse_size(text, field=option.lstrip("-"))
    except ValidationError as exc:
        if as_json:
            fail(True, exc.message, code=exc.code, field=exc.field)
        raise click.BadParameter(exc.message, param_hint=f"'{option}'") from None


# --- shared options ---------------------------------------------------------------------------


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON."
    )(f)


def page_options(f: F) -> F:
    from ..services.pagination import MAX_PER_PAGE

    f = click.option("--per-page", type=click.IntRange(1, MAX_PER_PAGE), default=50,
                     show_default=True, help="Rows per page.")(f)
    f = click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)(f)
    return f
