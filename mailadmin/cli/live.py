"""`mailadmin test-login ADDRESS --password-stdin` and `mailadmin log ADDRESS|QUEUEID`.

The live login test and the mail log of `mailadmin.diagnostics` on the command line. The
password of a login test is read from standard input, used for the test and dropped: it is
never printed (the transcript masks it) nor stored.
"""

from __future__ import annotations

import json
import sys

import click

from ..diagnostics.live import LiveReport, run_live_test
from ..diagnostics.maillog import LogSearch, parse_since, search_log
from ..errors import MailadminError
from .common import CliState, pass_state, read_password_from_stdin


def _echo_live(report: LiveReport) -> None:
    click.echo(f"{report.address}: {'all logins work' if report.ok else 'a login failed'}")
    for r in report.results:
        failed = r.failed_step
        verdict = "ok" if r.ok else f"FAILED at {failed.name if failed else '?'}"
        click.echo(f"\n{r.target.protocol} {r.target.host}:{r.target.port}: {verdict}")
        for step in r.steps:
            click.echo(f"  {'+' if step.ok else '-'} {step.name}: {step.detail}")
        for note in r.notes:
            click.echo(f"  note: {note}")
        if r.account is not None:
            click.echo(f"  account: {r.account.summary}")
            for check in r.account.checks:
                click.echo(f"    [{check.cause}] {check.title} — next: {check.next_step}")
        click.echo("  transcript:")
        for line in r.transcript:
            click.echo(f"    {line}")


@click.command("test-login")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the mailbox password from standard input (first line).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_state
def test_login(state: CliState, address: str, password_stdin: bool, as_json: bool) -> None:
    """Log in as the mailbox over SMTP, IMAP and POP3 now, step by step (nothing is sent)."""
    password = read_password_from_stdin()
    with state.unit_of_work() as (session, actor):
        report = run_live_test(session, actor, address, password)
        data = report.as_dict()
    del password
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _echo_live(report)
    if not report.ok:
        sys.exit(1)


def _echo_log(result: LogSearch) -> None:
    if result.note:
        click.echo(result.note)
    for story in result.stories:
        name = "LOGIN" if story.kind == "login" else story.queue_id or "NOQUEUE"
        click.echo(f"\n{name}: {story.outcome} ({' -> '.join(story.steps)})")
        if not story.deliveries:
            for f in story.findings:
                click.echo(f"  diagnosis: {f.family} ({f.reason})")
        for d in story.deliveries:
            via = f" (for {d.orig_to})" if d.orig_to else ""
            click.echo(f"  {d.to}{via}: {d.status}: {d.reply}")
            for f in d.findings:
                click.echo(f"    diagnosis: {f.family} ({f.reason})")
        for line in story.lines:
            click.echo(f"  | {line.text}")


@click.command("log")
@click.argument("query", metavar="ADDRESS|QUEUEID")
@click.option("--since", default="24h", show_default=True,
              help="Only messages seen within this span (30m, 24h, 7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
@pass_state
def log_command(state: CliState, query: str, since: str, as_json: bool) -> None:
    """The mail log for an address or a queue id: one story per message."""
    try:
        span = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        with state.unit_of_work() as (session, actor):
            result = search_log(session, actor, query, since=span)
    except MailadminError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        _echo_log(result)
