"""The mail servers' configuration from the command line: render, apply (also as a
coalescing watcher), revisions, rollback, diff, and a private sandbox of both servers.

`panel.cli` imports this module so that its commands are registered on `mailadmin.cli.main`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .cli import CliState, main, pass_state
from .errors import MailadminError
from .mailstack.sandbox import (
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
from .mailstack.snapshot import StackPorts
from .services import stack as stack_service
from .services.context import Actor
from .services.stack import Progress

DEFAULT_PORT_BASE = 10000


def _revision_line(rev: t.Any) -> str:
    extra = f"  rollback of {rev.rollback_of_id}" if rev.rollback_of_id else ""
    when = rev.created_at.strftime("%Y-%m-%d %H:%M:%S") if rev.created_at else "-"
    return (f"{rev.id:>5}  {rev.state:<11}  {when}  {(rev.checksum or '-')[:12]:<12}  "
            f"{rev.created_by}{extra}")


@contextmanager
def _steps(label: str) -> Iterator[Progress]:
    """A click progress bar over the apply steps; yields the callback that advances it."""
    steps = stack_service.APPLY_STEPS
    def shown(name: str | None) -> str | None:
        return name

    bar: t.Any = click.progressbar(length=len(steps), label=label, show_eta=False,
                                   item_show_func=shown, file=sys.stderr)
    with bar:
        reached = 0

        def advance(name: str) -> None:
            nonlocal reached
            if name in steps and steps.index(name) + 1 > reached:
                bar.update(steps.index(name) + 1 - reached, name)
                reached = steps.index(name) + 1

        yield advance
        bar.update(len(steps) - reached, "done")


@click.command("render")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the files into (created if missing).")
@pass_state
def render_command(state: CliState, out_dir: Path) -> None:
    """Write the configuration for the database as it is now; nothing live changes."""
    with state.unit_of_work() as (session, actor):
        files = stack_service.render_to(session, actor, out_dir)
    click.echo(f"Wrote {len(files)} files to {out_dir}")


@click.command("apply")
@click.option("--watch", is_flag=True,
              help="Keep running: apply whenever changes are pending and have settled.")
@click.option("--quiet-seconds", default=5.0, show_default=True, type=float,
              help="With --watch: apply once no change came for this long.")
@click.option("--interval", default=1.0, show_default=True, type=float,
              help="With --watch: seconds between checks.")
@click.option("--once", is_flag=True,
              help="With --watch: apply the pending burst once, then exit (exit at once when "
                   "nothing is pending).")
@pass_state
def apply_command(
    state: CliState, watch: bool, quiet_seconds: float, interval: float, once: bool
) -> None:
    """Render, validate with the real tools, switch and reload; record a revision."""
    if watch:
        _watch(state, quiet_seconds, interval, once)
        return
    with state.unit_of_work() as (session, actor), _steps("Applying") as advance:
        report = stack_service.apply_config_report(session, actor, progress=advance)
        rev = report.revision
        output = rev.validation_output or ""
    if rev.state == "failed":
        raise click.ClickException(
            f"Apply failed (revision {rev.id} recorded as failed); the configuration in force "
            f"is unchanged.\n{output}")
    if report.already_applied:
        click.echo(f"Already applied: revision {rev.id} ({rev.checksum[:12]}) is in force.")
        return
    click.echo(f"Applied revision {rev.id} ({rev.checksum[:12]}).")
    click.echo(output)


def _watch(state: CliState, quiet_seconds: float, interval: float, once: bool) -> None:
    with state.unit_of_work() as (session, actor):
        stack_service.list_revisions(session, actor, 1, 1)  # admin only, checked up front
    if state.acting_user is None:
        actor = Actor.operator(source="watch")

    def report(r: stack_service.ApplyReport) -> None:
        rev = r.revision
        if rev.state == "failed":
            click.echo(f"revision {rev.id} failed:\n{rev.validation_output}", err=True)
        elif r.already_applied:
            click.echo(f"already applied: revision {rev.id}")
        else:
            click.echo(f"applied revision {rev.id} ({rev.checksum[:12]})")

    if not once:
        click.echo(f"Watching for changes (apply after {quiet_seconds:g}s without one); "
                   "Ctrl+C stops.")
    try:
        result = stack_service.watch(
            state.session_factory, quiet_seconds=quiet_seconds, interval=interval, once=once,
            actor=actor, on_apply=report,
        )
    except KeyboardInterrupt:
        return
    if once and result.applies == 0:
        click.echo("Nothing to apply: the servers have every change.")
    if result.failures:
        raise click.ClickException("The last apply failed; the configuration in force is "
                                   "unchanged.")


@click.command("revisions")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--page", default=1, show_default=True, type=int)
@pass_state
def revisions_command(state: CliState, as_json: bool, page: int) -> None:
    """The configuration revisions, newest first."""
    with state.unit_of_work() as (session, actor):
        result = stack_service.list_revisions(session, actor, page)
        status = stack_service.config_status(session)
    if as_json:
        click.echo(json.dumps({
            "revisions": [{
                "id": r.id, "state": r.state, "checksum": r.checksum,
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "created_by": r.created_by, "applied_at":
                    r.applied_at.isoformat() if r.applied_at else None,
                "rollback_of": r.rollback_of_id, "validation_output": r.validation_output,
            } for r in result.items],
            "page": result.page, "pages": result.pages, "total": result.total,
            "changed_at": status.changed_at.isoformat() if status.changed_at else None,
            "applied_at": status.applied_at.isoformat() if status.applied_at else None,
            "caught_up": status.caught_up,
        }))
        return
    for rev in result.items:
        click.echo(_revision_line(rev))
    if not result.items:
        click.echo("No revisions yet: run 'mailadmin apply'.")
    click.echo("The servers have every change." if status.caught_up
               else "The servers do not have every change yet (run 'mailadmin apply').")


@click.command("rollback")
@click.argument("revision", type=int)
@pass_state
def rollback_command(state: CliState, revision: int) -> None:
    """Put the files of an earlier revision back in force (validated again first)."""
    with state.unit_of_work() as (session, actor), _steps("Rolling back") as advance:
        rev = stack_service.rollback_to(session, actor, revision, progress=advance)
        output = rev.validation_output or ""
    if rev.state == "failed":
        raise click.ClickException(
            f"Rollback failed (revision {rev.id} recorded as failed); the configuration in "
            f"force is unchanged.\n{output}")
    click.echo(f"Rolled back to revision {revision}'s files (new revision {rev.id}).")


@click.group("config")
def config_group() -> None:
    """The generated mail server configuration."""


@config_group.command("diff")
@click.argument("rev_a", type=int, required=False)
@click.argument("rev_b", type=int, required=False)
@click.option("--show-secrets", is_flag=True,
              help="Show mailbox password hashes instead of a masked fingerprint.")
@pass_state
def config_diff(state: CliState, rev_a: int | None, rev_b: int | None,
                show_secrets: bool) -> None:
    """Without arguments, what an apply would change; else revision REV_A -> REV_B."""
    if (rev_a is None) != (rev_b is None):
        raise click.UsageError("Give two revisions, or none for the pending changes.")
    with state.unit_of_work() as (session, actor):
        if rev_a is None or rev_b is None:
            diff = stack_service.diff_pending(session, actor, show_secrets=show_secrets)
        else:
            diff = stack_service.diff_revisions(session, actor, rev_a, rev_b,
                                                show_secrets=show_secrets)
    click.echo(diff.rstrip("\n") if diff else "No differences.")


# --------------------------------------------------------------------------- sandbox


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
        # run only what this invocation writes: nothing an earlier run (or anyone) left
        clear_generated(directory)
        ensure_vmail_user(snapshot.settings.vmail_uid, snapshot.settings.vmail_gid)
        prepare_dirs(snapshot.settings)
        result = sandbox_apply(snapshot)
        info = start_sandbox(directory, port_base, release=result.release_dir)
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
    directory = _sandbox_dir(directory, create=False)
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
    """Stop the sandbox's Postfix, then its Dovecot (by signals: no program or file from the
    folder is run)."""
    if not os.path.lexists(directory):
        click.echo(f"No sandbox in {directory}.")
        return
    stop_sandbox(_sandbox_dir(directory, create=False))
    click.echo(f"Sandbox in {directory} stopped.")


for _command in (render_command, apply_command, revisions_command, rollback_command,
                 config_group, sandbox_group):
    main.add_command(_command)

__all__ = ["apply_command", "config_group", "sandbox_group"]
