"""`mailadmin sql-access grant|show`: the mail servers' database user for SQL mode.

"""

from __future__ import annotations

import click

from ..errors import MailadminError
from ..mailstack import settings_from_server_settings
from ..services import sql_access
from ..services.audit import record_event
from ..services.scope import require_admin
from ..services.server import get_server_settings
from .common import CliState, pass_state


@click.group("sql-access")
def sql_access_group() -> None:
    """Database access for the mail servers in SQL mode (read-only views only)."""


def _config_dir(state: CliState, action: str | None = None) -> str:
    with state.unit_of_work() as (session, actor):
        require_admin(actor, "manages the mail servers' access")
        config_dir = settings_from_server_settings(get_server_settings(session)).config_dir
        if action is not None:
            record_event(session, actor, action, object_type="server",
                         object_label="sql-access")
    return config_dir


@sql_access_group.command("grant")
@click.option("--user", "user", default=None, help="Database user name (default: <db>_mailsrv).")
@click.option("--host", default=None, help="Loopback address the mail servers connect to.")
@pass_state
def grant_command(state: CliState, user: str | None, host: str | None) -> None:
    """Create the mail servers' database user (or rotate its password) and write its files."""
    config_dir = _config_dir(state, "sql_access.grant")
    try:
        access = sql_access.grant(state.engine, config_dir, user=user, host=host)
    except MailadminError as exc:
        raise click.ClickException(str(exc)) from None
    who = access.path if access.backend == "sqlite" else f"{access.user}@{access.host}"
    click.echo(f"Mail servers read the {access.backend} views as {who}.")
    click.echo("Apply the configuration (mode 'sql') to put it in force.")


@sql_access_group.command("show")
@pass_state
def show_command(state: CliState) -> None:
    """What `grant` set up (never the password)."""
    config_dir = _config_dir(state)
    try:
        access, files = sql_access.show(config_dir)
    except MailadminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backend  {access.backend}")
    if access.backend == "sqlite":
        click.echo(f"file     {access.path}")
    else:
        click.echo(f"server   {access.host}:{access.port}  database {access.dbname}")
        click.echo(f"user     {access.user}  (SELECT on {', '.join(sql_access.VIEWS)})")
    for f in files:
        click.echo(f"{f.mode:>6} {f.owner}:{f.group}  {f.path}")


