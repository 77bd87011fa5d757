"""`mailadmin db upgrade|current`: the panel database's schema (`mailadmin.migrate`)."""

from __future__ import annotations

import click

from .. import migrate
from .common import CliState, pass_state


@click.group("db")
def db_group() -> None:
    """The panel database."""


@db_group.command("upgrade")
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


@db_group.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Show the schema revision of the database."""
    click.echo(migrate.current_revision(state.engine) or "empty")
