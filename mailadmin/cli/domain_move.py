"""`mailadmin domain move DOMAIN --to NODE`: copy a domain's mail to another node, switch it.

Parsing and printing only: the mover (`mailadmin.workers.domain_mover`) owns its
transactions, and `mailadmin.services.domain_move` holds the rules.
"""

from __future__ import annotations

import sys
import typing as t

import click

from .common import CliState, echo_json, fail, json_option, pass_state

if t.TYPE_CHECKING:
    from ..services.domain_move import MovePlan


@click.command("move")
@click.argument("domain")
@click.option("--to", "to", required=True, metavar="NODE", help="The node to move it to.")
@click.option("--from", "source", metavar="NODE",
              help="The node that holds it, for a domain that names none yet.")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=300.0,
              show_default=True, metavar="SECONDS",
              help="How long the last copy waits for the online nodes to apply the switch.")
@json_option
@pass_state
def domain_move(state: CliState, domain: str, to: str, source: str | None,
                wait_seconds: float, as_json: bool) -> None:
    """Move a domain's mail to another node (the server admin): copy every mailbox with
    doveadm sync until a pass copies nothing new, switch the domain over, then copy once more
    what arrived meanwhile. A failed copy switches nothing."""
    from ..errors import MailadminError
    from ..workers.domain_mover import move_domain

    bar: t.Any = None

    def planned(plan: MovePlan) -> None:
        nonlocal bar
        if not as_json and plan.mailboxes:
            click.echo(f"Moving {plan.domain} from {plan.source} to {plan.target} "
                       f"({len(plan.mailboxes)} mailboxes).", err=True)
            bar = click.progressbar(length=2 * len(plan.mailboxes), label="copying",
                                    file=sys.stderr)
            bar.__enter__()

    def progress(_address: str, step: str) -> None:
        if bar is not None:
            bar.label = "copying" if step == "copied" else "after the switch"
            bar.update(1)

    try:
        report = move_domain(state.session_factory, state.actor, domain, to, source=source,
                             mover=None, progress=progress, planned=planned,
                             wait_seconds=wait_seconds)
    except MailadminError as exc:
        fail(as_json, exc.message, code=exc.code, field=exc.field, usage=False)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        echo_json({"domain": report.domain, "from": report.source, "to": report.target,
                   "mailboxes": list(report.mailboxes), "passes": report.passes,
                   "final_errors": [{"mailbox": a, "error": e}
                                    for a, e in report.final_errors],
                   "nodes_behind": list(report.behind)})
    else:
        click.echo(f"Moved {report.domain} from {report.source} to {report.target}: "
                   f"{len(report.mailboxes)} mailboxes, at most {report.passes} passes.")
        for address, error in report.final_errors:
            click.echo(f"  the last copy of {address} failed: {error}", err=True)
        if report.behind:
            click.echo(f"  {', '.join(report.behind)} had not applied the switch when the "
                       f"last copy ran: mail they took for {report.domain} since then is on "
                       f"{report.source}.", err=True)
        if report.final_errors or report.behind:
            click.echo(f"  Copy it over on {report.target} with: doveadm sync -1 -f -R -u "
                       f"ADDRESS tcp:<{report.source}'s address>:<doveadm_port>", err=True)
    if report.final_errors:
        raise SystemExit(1)
