"""`mailadmin db upgrade|current|recount`: the panel database's schema (`mailadmin.migrate`) and
the mailbox counters per domain (`mailadmin.services.counters`)."""

from __future__ import annotations

import click

from .. import migrate
from ..services import counters
from .common import CliState, echo_json, json_option, pass_state, work


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


@db_group.command("recount")
@json_option
@pass_state
def db_recount(state: CliState, as_json: bool) -> None:
    """Recount every domain's mailbox counters from the mailbox rows (after a hand edit)."""
    with work(state, as_json) as (session, actor):
        report = counters.recount(session, actor)
    if as_json:
        echo_json({"domains": report.domains, "corrected": list(report.corrected)})
        return
    if not report.corrected:
        click.echo(f"The counters of all {report.domains} domain(s) were right.")
        return
    shown = ", ".join(report.corrected[:10]) + (" …" if len(report.corrected) > 10 else "")
    click.echo(f"Corrected the counters of {len(report.corrected)} of {report.domains} "
               f"domain(s): {shown}")
