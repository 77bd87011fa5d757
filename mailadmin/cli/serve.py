"""`mailadmin serve`: migrate, create the first admin if needed, and serve the panel.

The only command that needs the web layer: `panel` (Flask) and waitress are imported inside the
command, so the rest of the command line never loads Flask.
"""

from __future__ import annotations

import importlib

import click

from .. import migrate
from ..db import transaction
from ..services import accounts
from ..services.context import Actor
from ..workers import apply_watcher
from .common import CliState, pass_state

DEFAULT_PORT = 2082


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@pass_state
def serve_command(state: CliState, host: str, port: int, threads: int) -> None:
    """Migrate the database, create the first admin if needed, and serve the panel."""
    import waitress

    # The web layer sits above the core: imported by name so neither Python at import time nor
    # mypy (which checks the core) follows the core into Flask.
    create_app = importlib.import_module("panel").create_app

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
    apply_watcher.start_auto_apply(state.session_factory)
    click.echo(f"mailadmin panel on http://{host}:{port}/ (Ctrl+C stops it)")
    waitress.serve(app, host=host, port=port, threads=threads, ident="mailadmin")


def _overrides(state: CliState) -> dict[str, str]:
    return {"DATABASE_URL": state.config["DATABASE_URL"], "SECRET_KEY": state.config["SECRET_KEY"]}
