"""The `mailadmin` console script: the core CLI plus `serve`, which needs the web layer."""

from __future__ import annotations

import click

from mailadmin import (
    cli_admin,  # noqa: F401  (registers package, customer, reseller)
    cli_diagnostics,  # noqa: F401  (registers test-login, log)
    cli_mail,  # noqa: F401  (registers domain, mailbox, forwarder)
    cli_settings,  # noqa: F401  (registers settings)
    cli_sql,  # noqa: F401  (registers sql-access)
    cli_stack,  # noqa: F401  (registers render, apply, revisions, rollback, config, sandbox)
    cli_tokens,  # noqa: F401  (registers token)
    cli_usage,  # noqa: F401  (registers usage, resolve)
    migrate,
)
from mailadmin.cli import CliState, main, pass_state
from mailadmin.db import transaction
from mailadmin.diagnostics.command import diagnose_command
from mailadmin.services import accounts
from mailadmin.services import stack as stack_service
from mailadmin.services.context import Actor

DEFAULT_PORT = 2082
main.add_command(diagnose_command)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@pass_state
def serve(state: CliState, host: str, port: int, threads: int) -> None:
    """Migrate the database, create the first admin if needed, and serve the panel."""
    import waitress

    from . import create_app

    before = migrate.current_revision(state.engine)
    migrate.upgrade(state.engine)
    after = migrate.current_revision(state.engine)
    if before != after:
        click.echo(f"Database migrated to revision {after}.")
    with transaction(state.session_factory) as session:
        first_admin = accounts.ensure_first_admin(session, Actor.operator(source="serve"))
    if first_admin is not None:
        click.echo("")
        click.echo("  First server admin created. This password is shown only once:")
        click.echo(f"    user name: {first_admin.username}")
        click.echo(f"    password:  {first_admin.password}")
        click.echo("")
    app = create_app({"INSTANCE_PATH": state.config["INSTANCE_PATH"], **_overrides(state)})
    # coalescing auto-apply: acts only while the apply_automatically setting is on
    stack_service.start_auto_apply(state.session_factory)
    click.echo(f"mailadmin panel on http://{host}:{port}/ (Ctrl+C stops it)")
    waitress.serve(app, host=host, port=port, threads=threads, ident="mailadmin")


def _overrides(state: CliState) -> dict[str, str]:
    return {"DATABASE_URL": state.config["DATABASE_URL"], "SECRET_KEY": state.config["SECRET_KEY"]}


__all__ = ["main"]
