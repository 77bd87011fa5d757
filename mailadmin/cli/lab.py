"""`mailadmin sandbox start|apply|stop`: the lab's private Dovecot + Postfix (`mailadmin.lab`).

The sandbox renders the database into a scratch folder and runs both servers on 127.0.0.1 high
ports from exactly those files; it needs root and is for trying changes, never for production.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import click

from ..errors import MailadminError
from ..lab.sandbox import (
    SandboxError,
    ensure_vmail_user,
    free_port_base,
    prepare_dirs,
    sandbox_apply,
    start_sandbox,
    stop_sandbox,
)
from ..mailstack.snapshot import StackPorts
from ..services import stack as stack_service
from .common import CliState, pass_state

DEFAULT_PORT_BASE = 10000


@click.group("sandbox")
def sandbox_group() -> None:
    """A private Dovecot + Postfix on 127.0.0.1 high ports from the database (needs root)."""


def _ports_free(base: int) -> bool:
    for port in StackPorts.from_base(base).as_dict().values():
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _sandbox_dir(directory: Path) -> Path:
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    return directory


@sandbox_group.command("start")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Scratch folder (keep it short: unix socket paths are limited).")
@click.option("--port-base", type=int, default=None,
              help=f"Ports are this + the standard port (default {DEFAULT_PORT_BASE}, or a "
                   "free range).")
@click.option("--json", "as_json", is_flag=True, help="Print the ports as JSON.")
@pass_state
def sandbox_start(state: CliState, directory: Path, port_base: int | None,
                  as_json: bool) -> None:
    """Render the database and start Dovecot + Postfix from exactly those files."""
    directory = _sandbox_dir(directory)
    if port_base is None:
        port_base = DEFAULT_PORT_BASE if _ports_free(DEFAULT_PORT_BASE) else free_port_base()
    with state.unit_of_work() as (session, actor):
        snapshot = stack_service.sandbox_snapshot(session, actor, directory, port_base)
    try:
        stop_sandbox(directory)
        ensure_vmail_user(snapshot.settings.vmail_uid, snapshot.settings.vmail_gid)
        prepare_dirs(snapshot.settings)
        sandbox_apply(snapshot)
        info = start_sandbox(directory, port_base)
    except (SandboxError, OSError) as exc:
        raise click.ClickException(f"sandbox did not start: {exc}") from None
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(info.as_json())
        return
    ports = info.ports
    click.echo(f"Sandbox running from {directory}/config/current "
               f"(up in {info.startup_seconds:.2f}s), on 127.0.0.1:")
    for name in ("imap", "pop3", "submission", "smtp", "lmtp"):
        click.echo(f"  {name:<10} {getattr(ports, name)}")
    click.echo(f"Logs: {directory}/log. After changes: mailadmin sandbox apply --dir "
               f"{directory}. Stop: mailadmin sandbox stop --dir {directory}")


def _running_port_base(directory: Path) -> int:
    state_file = directory / "sandbox.json"
    if not state_file.exists():
        raise click.ClickException(
            f"No sandbox is running in {directory}: start one with 'mailadmin sandbox start'.")
    return int(json.loads(state_file.read_text())["port_base"])


@sandbox_group.command("apply")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--restart", is_flag=True,
              help="Restart both servers (the next connection sees every change) instead of "
                   "reloading them as production does.")
@pass_state
def sandbox_apply_command(state: CliState, directory: Path, restart: bool) -> None:
    """Re-render the database into a running sandbox and reload (or restart) it."""
    directory = directory.absolute()
    port_base = _running_port_base(directory)
    with state.unit_of_work() as (session, actor):
        snapshot = stack_service.sandbox_snapshot(session, actor, directory, port_base)
    try:
        result = sandbox_apply(snapshot, restart=restart)
    except (SandboxError, OSError) as exc:
        raise click.ClickException(f"sandbox apply failed: {exc}") from None
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    if result.changed:
        click.echo(f"Applied {result.checksum[:12]} to the sandbox"
                   f" ({'restarted' if restart else 'reloaded'}).")
    else:
        click.echo("No change: the sandbox already runs this configuration.")


@sandbox_group.command("stop")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path))
def sandbox_stop_command(directory: Path) -> None:
    """Stop the sandbox's Postfix, then its Dovecot."""
    stop_sandbox(directory.absolute())
    click.echo(f"Sandbox in {directory} stopped.")
