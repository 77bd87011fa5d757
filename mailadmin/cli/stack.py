"""The mail servers' configuration from the command line: render, apply (also as a
coalescing watcher), revisions, rollback and diff. The sandbox commands are in `cli.lab`.
"""

from __future__ import annotations

import json
import sys
import typing as t
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..services import stack as stack_service
from ..services.context import Actor
from ..services.stack import Progress
from ..workers import apply_watcher
from .common import CliState, pass_state


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
@click.option("--node", default=None, metavar="NODE",
              help="Render what this mail node runs (it proxies the other nodes' domains).")
@pass_state
def render_command(state: CliState, out_dir: Path, node: str | None) -> None:
    """Write the configuration for the database as it is now; nothing live changes."""
    with state.unit_of_work() as (session, actor):
        files = stack_service.render_to(session, actor, out_dir, node=node)
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
        result = apply_watcher.watch(
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


__all__ = ["apply_command", "config_group", "render_command", "revisions_command",
           "rollback_command"]
