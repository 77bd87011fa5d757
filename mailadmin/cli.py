"""The `mailadmin` command line. Each command opens one transaction and calls one service.

`serve` lives in `panel.cli`, which adds it to this group: the core never imports Flask.
"""

from __future__ import annotations

import sys
import typing as t
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import migrate
from .config import ConfigError, load_config
from .db import make_engine, make_session_factory, transaction
from .errors import MailadminError, NotFound
from .models import Role
from .services import accounts
from .services.context import Actor


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
            self._engine = make_engine(self.config["DATABASE_URL"])
        return self._engine

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            self._factory = make_session_factory(self.engine)
        return self._factory

    def actor(self, session: Session) -> Actor:
        """The operator, or with `--as NAME` that panel user with exactly its rights."""
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
        try:
            with transaction(self.session_factory) as session:
                yield session, self.actor(session)
        except MailadminError as exc:
            raise click.ClickException(exc.message) from None


pass_state = click.make_pass_decorator(CliState)


@click.group()
@click.option(
    "--instance",
    "instance_path",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MAILADMIN_INSTANCE_PATH",
    help="Instance folder (config file, secret key, SQLite database). Default: ./instance",
)
@click.option(
    "--as", "acting_user", metavar="NAME", help="Act as this panel user, with its rights."
)
@click.version_option(package_name="mailadmin")
@click.pass_context
def main(ctx: click.Context, instance_path: Path | None, acting_user: str | None) -> None:
    """mailadmin: the mail module of a hosting control panel."""
    ctx.obj = CliState(instance_path=instance_path, acting_user=acting_user)


def read_password_from_stdin() -> str:
    """A password from standard input: its first line, without the line ending."""
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise click.ClickException("No password on standard input.")
    return password


@main.group()
def db() -> None:
    """The panel database."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: CliState) -> None:
    """Apply pending schema migrations."""
    before = migrate.current_revision(state.engine)
    migrate.upgrade(state.engine)
    after = migrate.current_revision(state.engine)
    if before == after:
        click.echo(f"Database is up to date (revision {after}).")
    else:
        click.echo(f"Database upgraded from {before or 'empty'} to {after}.")


@db.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Show the schema revision of the database."""
    click.echo(migrate.current_revision(state.engine) or "empty")


@main.group()
def user() -> None:
    """Panel users (server admins, resellers, customers)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--reseller", "reseller_name", metavar="R", help="The reseller a customer belongs to."
)
@click.option("--email", "contact_email", help="Contact address of the account holder.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (else generated)."
)
@pass_state
def user_add(
    state: CliState,
    name: str,
    role: str,
    reseller_name: str | None,
    contact_email: str | None,
    password_stdin: bool,
) -> None:
    """Create a panel user."""
    from .security import generate_password

    password = read_password_from_stdin() if password_stdin else generate_password()
    with state.unit_of_work() as (session, actor):
        created = accounts.create_panel_user(
            session,
            actor,
            name,
            password,
            Role(role),
            reseller_name=reseller_name,
            contact_email=contact_email,
        )
    click.echo(f"Created {created.role} {created.username!r}.")
    if not password_stdin:
        click.echo(f"Password (shown once): {password}")


@user.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, required=True, help="Read the new password from stdin."
)
@pass_state
def user_passwd(state: CliState, name: str, password_stdin: bool) -> None:
    """Set a panel user's password."""
    password = read_password_from_stdin()
    with state.unit_of_work() as (session, actor):
        changed = accounts.set_panel_password(session, actor, name, password)
    click.echo(f"Password of {changed.username!r} changed.")


def register(command: click.Command | Callable[..., t.Any]) -> None:
    """Attach a command defined elsewhere (diagnostics, serve) to the group."""
    assert isinstance(command, click.Command)
    main.add_command(command)
