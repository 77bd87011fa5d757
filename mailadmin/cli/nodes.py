"""`mailadmin node run|list`: the mail nodes the panel's configuration is applied on."""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path

import click

from ..errors import MailadminError
from ..lab.chroot24 import ensure_chroot
from ..lab.sandbox import SandboxError, check_sandbox_dir
from ..mailstack.apply import Tools
from ..services import nodes
from ..services.stack import ApplyReport
from ..workers import node_runner
from .common import CliState, echo_json, format_table, pass_state


@click.group("node")
def node_group() -> None:
    """Mail nodes: the machines that run Dovecot + Postfix from the panel's configuration."""


def _default_name() -> str:
    return socket.gethostname().split(".")[0].lower()


def _node_sandbox(directory: Path, port_base: int | None) -> nodes.NodeSandbox:
    try:
        directory = check_sandbox_dir(directory)
    except (SandboxError, OSError) as exc:
        raise click.ClickException(f"refusing the sandbox folder: {exc}") from None
    if port_base is None:
        state_file = directory / "sandbox.json"
        if not state_file.exists():
            raise click.UsageError("--port-base is needed for a sandbox that is not running")
        port_base = int(json.loads(state_file.read_text())["port_base"])
    return nodes.NodeSandbox(str(directory), port_base)


def _sandbox_tools(directory: Path) -> Tools | None:
    """A sandboxed node started with Dovecot 2.4 validates and reloads with the chroot's
    tools (`mailadmin.lab.chroot24`)."""
    state_file = directory / "sandbox.json"
    if state_file.exists() and json.loads(state_file.read_text()).get("chroot"):
        return ensure_chroot().tools()
    return None


@node_group.command("run")
@click.option("--name", default=None, help="This node's name [default: the short host name].")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Where the other nodes reach this one.")
@click.option("--quiet-seconds", default=1.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Apply once no change came for this long (bursts become one apply).")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between checks when the database cannot announce changes "
                   "(all but PostgreSQL).")
@click.option("--once", is_flag=True,
              help="Apply what is pending once, then exit (at once when nothing is).")
@click.option("--sandbox", "sandbox_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Lab: this node's servers run from this sandbox folder on --address "
                   "(see 'mailadmin sandbox start --nodes'), not from the server settings.")
@click.option("--port-base", type=int, default=None,
              help="With --sandbox: the sandbox's port base [default: the one it started "
                   "with].")
@pass_state
def node_run(state: CliState, name: str | None, address: str, quiet_seconds: float,
             interval: float, once: bool, sandbox_dir: Path | None,
             port_base: int | None) -> None:
    """Keep this machine's Dovecot + Postfix current: the only process that writes their
    files and reloads them (run it as root, or as a user that may)."""
    name = name or _default_name()
    try:
        nodes.check_node_name(name)
        nodes.check_node_address(address)
    except MailadminError as exc:
        raise click.UsageError(exc.message) from None
    sandbox = _node_sandbox(sandbox_dir, port_base) if sandbox_dir is not None else None
    tools = _sandbox_tools(Path(sandbox.directory)) if sandbox is not None else None
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        how = ("LISTEN/NOTIFY" if state.engine.dialect.name == "postgresql"
               else f"a check every {interval:g}s")
        click.echo(f"Node {name}: applying changes as they come ({how}); Ctrl+C stops.")

    def report(r: ApplyReport) -> None:
        rev = r.revision
        if rev.state == "failed":
            click.echo(f"revision {rev.id} failed:\n{rev.validation_output}", err=True)
        elif r.already_applied:
            click.echo(f"already in force: revision {rev.id}")
        else:
            click.echo(f"applied revision {rev.id} ({rev.checksum[:12]})")

    try:
        result = node_runner.run_node(
            state.session_factory, state.engine, name, address, quiet_seconds=quiet_seconds,
            interval=interval, once=once, stop=stop, on_apply=report, sandbox=sandbox,
            tools=tools)
    except KeyboardInterrupt:
        return
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    if once and result.applies == 0:
        click.echo(f"Node {name}: nothing to apply, the servers have every change.")
    if once and result.failures:
        raise click.ClickException("The apply failed; the configuration in force is unchanged.")


@node_group.command("add")
@click.argument("name")
@click.option("--address", required=True, help="Where the other nodes reach this one.")
@pass_state
def node_add(state: CliState, name: str, address: str) -> None:
    """Register a mail node before its runner first checks in (new domains may go to it)."""
    with state.unit_of_work() as (session, actor):
        node = nodes.add_node(session, actor, name, address)
        click.echo(f"Node {node.name} at {node.address}.")


@node_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def node_list(state: CliState, as_json: bool) -> None:
    """Every node: online, applied revision, lag, last error."""
    with state.unit_of_work() as (session, actor):
        found = nodes.list_nodes(session, actor)
    if as_json:
        echo_json([vars(node) for node in found])
        return
    if not found:
        click.echo("No node has checked in yet: run 'mailadmin node run' on each mail server.")
        return
    rows = [[n.name, n.address, f"{n.domains}/{n.mailboxes}",
             "online" if n.online else "offline",
             str(n.applied_revision_id or "-"),
             "current" if n.current else f"behind ({n.lag_seconds:.0f}s)",
             (n.last_error or "").splitlines()[0] if n.last_error else ""] for n in found]
    click.echo(format_table(["node", "address", "domains/mailboxes", "runner", "revision",
                             "state", "last error"],
                            rows))
