"""`mailadmin sandbox start|apply|stop`: the lab's private Dovecot + Postfix (`mailadmin.lab`).

The sandbox renders the database into a scratch folder and runs both servers on 127.0.0.1 high
ports from exactly those files; it needs root and is for trying changes, never for production.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import click

from ..errors import MailadminError
from ..lab.chroot24 import Chroot, ChrootError, ensure_chroot
from ..lab.sandbox import (
    SandboxError,
    check_sandbox_dir,
    clear_generated,
    ensure_vmail_user,
    free_port_base,
    prepare_dirs,
    sandbox_apply,
    start_sandbox,
    stop_sandbox,
)
from ..lab.sandbox24 import sandbox24_apply, start_sandbox24, stop_sandbox24
from ..mailstack.apply import ApplyResult
from ..mailstack.snapshot import StackPorts, StackSettings, StackSnapshot
from ..services import nodes as node_service
from ..services import sql_access
from ..services import stack as stack_service
from .common import CliState, pass_state

DEFAULT_PORT_BASE = 10000


@click.group("sandbox")
def sandbox_group() -> None:
    """A private Dovecot + Postfix on 127.0.0.1 high ports from the database (needs root)."""


def _ports_free(base: int, host: str = "127.0.0.1") -> bool:
    for port in StackPorts.from_base(base).as_dict().values():
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _sandbox_dir(directory: Path, *, create: bool = True) -> Path:
    """The checked scratch folder (see check_sandbox_dir): the servers run as root from it."""
    try:
        return check_sandbox_dir(directory, create=create)
    except (SandboxError, OSError) as exc:
        raise click.ClickException(f"refusing the sandbox folder: {exc}") from None


@sandbox_group.command("start")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Scratch folder (keep it short: unix socket paths are limited).")
@click.option("--port-base", type=int, default=None,
              help=f"Ports are this + the standard port (default {DEFAULT_PORT_BASE}, or a "
                   "free range).")
@click.option("--json", "as_json", is_flag=True, help="Print the ports as JSON.")
@click.option("--nodes", "node_count", type=click.IntRange(1, 254), default=None,
              help="Start this many mail nodes (node-1 on 127.0.2.1, node-2 on 127.0.2.2, "
                   "...), each from its own folder <dir>/node-N with the same ports.")
@pass_state
def sandbox_start(state: CliState, directory: Path, port_base: int | None,
                  as_json: bool, node_count: int | None) -> None:
    """Render the database and start Dovecot + Postfix from exactly those files."""
    directory = _sandbox_dir(directory)
    if node_count is not None:
        _start_nodes(state, directory, port_base, node_count, as_json)
        return
    if port_base is None:
        port_base = DEFAULT_PORT_BASE if _ports_free(DEFAULT_PORT_BASE) else free_port_base()
    with state.unit_of_work() as (session, actor):
        snapshot = stack_service.sandbox_snapshot(session, actor, directory, port_base)
    settings = snapshot.settings
    try:
        chroot = _chroot_for(settings)
        _stop(directory)
        # run only what this invocation writes: nothing an earlier run (or anyone) left
        clear_generated(directory)
        ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
        prepare_dirs(settings)
        if settings.mode == "sql":
            # the servers read the panel's own database as the read-only views' user
            sql_access.grant(state.engine, settings.config_dir)
        if chroot is None:
            result = sandbox_apply(snapshot)
            info = start_sandbox(directory, port_base, release=result.release_dir)
        else:
            chroot.share(directory)
            database = _sqlite_folder(state) if settings.mode == "sql" else None
            if database is not None:
                chroot.share(database)
            sandbox24_apply(snapshot, chroot)
            info = start_sandbox24(directory, port_base, chroot)
            if database is not None:  # for stop, which unshares it
                _remember_share(directory, database)
    except (SandboxError, ChrootError, OSError) as exc:
        raise click.ClickException(f"sandbox did not start: {exc}") from None
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(info.as_json())
        return
    ports = info.ports
    click.echo(f"Sandbox running {describe(settings)} from {directory}/config/current "
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
    """Re-render the database into a running sandbox and reload (or restart) it; with nodes,
    each node's own files into its folder (reloaded)."""
    directory = _sandbox_dir(directory, create=False)
    if (directory / _NODES_FILE).exists():
        _apply_nodes(state, directory)
        return
    port_base = _running_port_base(directory)
    with state.unit_of_work() as (session, actor):
        snapshot = stack_service.sandbox_snapshot(session, actor, directory, port_base)
    try:
        result = _apply(snapshot, restart=restart)
    except (SandboxError, ChrootError, OSError) as exc:
        raise click.ClickException(f"sandbox apply failed: {exc}") from None
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Sandbox runs {describe(snapshot.settings)}.")
    if result.changed:
        click.echo(f"Applied {result.checksum[:12]} to the sandbox"
                   f" ({'restarted' if restart else 'reloaded'}).")
    else:
        click.echo("No change: the sandbox already runs this configuration.")


@sandbox_group.command("stop")
@click.option("--dir", "directory", required=True,
              type=click.Path(file_okay=False, path_type=Path))
def sandbox_stop_command(directory: Path) -> None:
    """Stop the sandbox's Postfix, then its Dovecot (by signals: no program or file from the
    folder is run); with nodes, every node's."""
    if not os.path.lexists(directory):
        click.echo(f"No sandbox in {directory}.")
        return
    directory = _sandbox_dir(directory, create=False)
    for node in _stop_nodes(directory):
        click.echo(f"Node {node} stopped.")
    _stop(directory)
    click.echo(f"Sandbox in {directory} stopped.")


_NODES_FILE = "nodes.json"


def node_address(index: int) -> str:
    """Sandboxed node `index` (1-based) listens on 127.0.2.<index>."""
    return f"127.0.2.{index}"


def _start_nodes(state: CliState, directory: Path, port_base: int | None, count: int,
                 as_json: bool) -> None:
    """N mail nodes, each a MailNode row applied for itself (`node_service.apply_on_node`)
    and started from its own folder on its own loopback address, all with one port base."""
    addresses = [node_address(i) for i in range(1, count + 1)]
    _stop_nodes(directory)
    if port_base is None:
        port_base = next(
            (base for base in (DEFAULT_PORT_BASE, *range(20000, 60000, 1000))
             if all(_ports_free(base, a) for a in addresses)), None)
        if port_base is None:
            raise click.ClickException("No port base is free on every node address.")
    started: list[dict[str, object]] = []
    (directory / _NODES_FILE).write_text(json.dumps(started))
    try:
        # every node first: each node's files name the others
        with state.unit_of_work() as (session, actor):
            for index, address in enumerate(addresses, start=1):
                node_service.add_node(session, actor, f"node-{index}", address)
        for index, address in enumerate(addresses, start=1):
            name = f"node-{index}"
            folder = check_sandbox_dir(directory / name)
            stop_sandbox(folder)
            clear_generated(folder)
            sandbox = node_service.NodeSandbox(str(folder), port_base)
            with state.unit_of_work() as (session, actor):
                settings = stack_service.sandbox_stack_settings(session, folder, port_base)
            if settings.mode != "files" and (
                    state.engine.dialect.name != "sqlite" or settings.dovecot_version != "2.3"):
                # one grant per node folder would rotate a server database user's password
                raise click.ClickException(
                    "Sandboxed nodes run files mode, or SQL mode with Dovecot 2.3 on a SQLite "
                    f"panel database, for now (the server settings ask for "
                    f"{describe(settings)}).")
            ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
            if settings.mode == "sql":
                sql_access.grant(state.engine, settings.config_dir)
            chroot = _chroot_for(settings)
            if chroot is not None:
                chroot.share(folder)
            started.append({"name": name, "address": address, "dir": str(folder),
                            "chroot": chroot is not None})
            (directory / _NODES_FILE).write_text(json.dumps(started))
            with state.unit_of_work() as (session, actor):
                report = node_service.apply_on_node(
                    session, actor, name, sandbox=sandbox,
                    tools=chroot.tools() if chroot is not None else None)
                revision = report.revision
                if revision.state != "applied":
                    raise click.ClickException(
                        f"{name}: the apply failed:\n{revision.validation_output}")
                release = folder / "config" / "releases" / revision.checksum
            if chroot is None:
                info = start_sandbox(folder, port_base, release=release, host=address)
            else:
                info = start_sandbox24(folder, port_base, chroot, host=address)
            started[-1].update(info.ports.as_dict())
            (directory / _NODES_FILE).write_text(json.dumps(started))
    except (SandboxError, ChrootError, OSError) as exc:
        _stop_nodes(directory)
        raise click.ClickException(f"sandbox nodes did not start: {exc}") from None
    except (MailadminError, click.ClickException):
        _stop_nodes(directory)
        raise
    if as_json:
        click.echo(json.dumps({"port_base": port_base, "nodes": started}))
        return
    ports = StackPorts.from_base(port_base)
    click.echo(f"{count} mail node(s) running {describe(settings)} from {directory}/node-N, "
               "each on its own address with the same ports:")
    for node in started:
        click.echo(f"  {node['name']:<8} {node['address']:<11} folder {node['dir']}")
    click.echo("Ports: " + ", ".join(f"{name} {getattr(ports, name)}" for name in
                                      ("imap", "pop3", "submission", "smtp", "lmtp")))
    click.echo(f"Keep a node current: mailadmin node run --name node-1 --address "
               f"{addresses[0]} --sandbox {directory}/node-1. "
               f"Stop: mailadmin sandbox stop --dir {directory}")


def _apply_nodes(state: CliState, directory: Path) -> None:
    """What `node run --once` does for every node a `start --nodes` started here."""
    for node in json.loads((directory / _NODES_FILE).read_text()):
        name = str(node["name"])
        folder = _sandbox_dir(directory / name, create=False)
        sandbox = node_service.NodeSandbox(str(folder), _running_port_base(folder))
        tools = ensure_chroot().tools() if node.get("chroot") else None
        with state.unit_of_work() as (session, actor):
            report = node_service.apply_on_node(session, actor, name, sandbox=sandbox,
                                                tools=tools)
            revision = report.revision
            if revision.state != "applied":
                raise click.ClickException(
                    f"{name}: the apply failed:\n{revision.validation_output}")
            click.echo(f"{name}: " + ("no change" if report.already_applied
                                      else f"applied revision {revision.id} (reloaded)"))


def _stop_nodes(directory: Path) -> list[str]:
    """Stop every node an earlier `start --nodes` started here; their names."""
    state_file = directory / _NODES_FILE
    if not state_file.exists() or state_file.is_symlink():
        return []
    try:
        recorded = json.loads(state_file.read_text())
    except ValueError:
        recorded = []
    stopped = []
    for node in recorded:
        folder = directory / str(node.get("name", ""))
        # only a folder of this sandbox, named as start names them
        if folder.parent == directory and folder.name.startswith("node-") and folder.is_dir():
            if node.get("chroot"):
                stop_sandbox24(folder, ensure_chroot())
            else:
                stop_sandbox(folder)
            stopped.append(folder.name)
    state_file.unlink()
    return stopped


def describe(settings: StackSettings) -> str:
    """What the sandbox runs, in the words of the server settings."""
    dovecot = f"Dovecot {settings.dovecot_version}"
    if settings.dovecot_version == "2.4":
        dovecot += " (Debian 13 chroot)"
    if settings.mode == "sql":
        mode = "SQL mode: the servers read the panel's database through the sql-access user"
    else:
        mode = "files mode"
    return f"{dovecot} + Postfix, {mode}"


def _chroot_for(settings: StackSettings) -> Chroot | None:
    """The Dovecot 2.4 chroot when the settings ask for 2.4 (built or restored on first use)."""
    if settings.dovecot_version != "2.4":
        return None
    return ensure_chroot(vmail_uid=settings.vmail_uid, vmail_gid=settings.vmail_gid)


def _sqlite_folder(state: CliState) -> Path | None:
    url = state.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database).absolute().parent


def _apply(snapshot: StackSnapshot, *, restart: bool) -> ApplyResult:
    chroot = _chroot_for(snapshot.settings)
    if chroot is None:
        return sandbox_apply(snapshot, restart=restart)
    return sandbox24_apply(snapshot, chroot, restart=restart)


def _stop(directory: Path) -> None:
    """Stop whatever an earlier start left running: a 2.4 sandbox also holds a bind mount."""
    state_file = directory / "sandbox.json"
    recorded = json.loads(state_file.read_text()) if state_file.exists() else {}
    if recorded.get("chroot") is None:
        stop_sandbox(directory)
        return
    chroot = ensure_chroot()
    stop_sandbox24(directory, chroot)
    for folder in recorded.get("shared", []):
        chroot.unshare(folder)


def _remember_share(directory: Path, folder: Path) -> None:
    state_file = directory / "sandbox.json"
    recorded = json.loads(state_file.read_text())
    recorded["shared"] = [*recorded.get("shared", []), str(folder)]
    state_file.write_text(json.dumps(recorded))
