"""`mailadmin resolve ADDRESS`: the path Postfix and Dovecot take for an address.

One transaction calling `mailadmin.services.resolver.resolve_address`.
"""

from __future__ import annotations

import click

from ..services import resolver
from .common import CliState, echo_json, json_option, pass_state, work


@click.command("resolve")
@click.argument("address")
@json_option
@pass_state
def resolve_command(state: CliState, address: str, as_json: bool) -> None:
    """Show the path Postfix and Dovecot take for ADDRESS."""
    with work(state, as_json) as (session, actor):
        answer = resolver.resolve_address(session, actor, address)
    if as_json:
        echo_json(answer.as_dict())
        return
    click.echo(f"{answer.address}: {answer.kind.replace('_', ' ')}")
    click.echo("  receiving: " + ("accepted" if answer.accepted
                                  else f"refused ({answer.rcpt_reply or 'not hosted'})"))
    for d in answer.deliveries:
        click.echo(f"  -> {d.address}: {d.detail}")
    if answer.logins:
        click.echo("  login: " + ", ".join(
            f"{lg.protocol.upper()} {'yes' if lg.allowed else 'no (' + str(lg.reason) + ')'}"
            for lg in answer.logins))
    if answer.sending_reply:
        click.echo(f"  sending: refused ({answer.sending_reply})")
    click.echo("")
    for step in answer.steps:
        click.echo(f"  * {step}")
