"""``mailadmin diagnose``: explain bounces and mail errors from files or stdin.

Reading files needs no database: only `--account` opens one, so the database layer is imported
inside `_account_report` (a test checks that a plain run never loads SQLAlchemy).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click

from ..diagnostics.batch import Result, classify_files
from ..diagnostics.catalogue import family as family_entry
from ..diagnostics.classify import Finding, classify
from ..diagnostics.parse import MAX_INPUT
from .common import CliState


def _results(names: tuple[str, ...]) -> Iterator[Result]:
    """Findings per input in order; many files are classified on every core."""
    if "-" not in names:
        yield from classify_files(names)
        return
    for name in names:
        if name != "-":
            yield from classify_files([name])
        else:
            # Never read more than the classifier looks at.
            yield name, classify(sys.stdin.buffer.read(MAX_INPUT))


def _records(name: str, findings: list[Finding]) -> Iterator[dict[str, object]]:
    if not findings:
        yield {"file": name, "family": "other", "reason": "undefined", "status": "",
               "replycode": "", "recipient": None, "remote_host": None, "hard": None,
               "confidence": 0.0, "line": ""}
        return
    for finding in findings:
        yield {"file": name, **finding.as_dict()}


def _human(record: dict[str, object]) -> str:
    entry = family_entry(str(record["family"]))
    codes = " ".join(str(c) for c in (record["replycode"], record["status"]) if c)
    who = record["recipient"] or "-"
    lines = [
        f"{record['file']}: {who}: {record['family']} ({record['reason']}) {codes}".rstrip(),
        f"  {entry.title}",
    ]
    if record["line"]:
        lines.append(f"  line:  {record['line']}")
    lines += [f"  cause: {entry.cause}", f"  fix:   {entry.fix}"]
    return "\n".join(lines)


@click.command("diagnose")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines, one object per finding.")
@click.option("--account", "account", metavar="ADDRESS",
              help="Check the findings against this hosted mailbox's state.")
def diagnose_command(files: tuple[str, ...], as_json: bool, account: str | None) -> None:
    """Diagnose bounces, SMTP replies, logs or client errors in FILE(s) ("-" or none: stdin)."""
    failed = False
    collected: list[Finding] = []
    for name, findings in _results(files or ("-",)):
        if isinstance(findings, str):
            click.echo(f"{name}: cannot read: {findings}", err=True)
            failed = True
            continue
        collected.extend(findings)
        for record in _records(name, findings):
            if as_json:
                click.echo(json.dumps(record, ensure_ascii=False))
            else:
                click.echo(_human(record))
    if account is not None:
        _account_report(account, collected, as_json)
    if failed:
        sys.exit(2)


def _account_report(address: str, findings: list[Finding], as_json: bool) -> None:
    """Hold the findings against the account (needs the `mailadmin` group's database)."""
    from ..diagnostics.account import check_account

    state = click.get_current_context().find_object(CliState)
    if state is None:
        raise click.ClickException("--account needs the database: run it as `mailadmin diagnose`.")
    with state.unit_of_work() as (session, actor):
        report = check_account(session, actor, findings, address=address)
        data = report.as_dict()
    if as_json:
        click.echo(json.dumps({"account": data}, ensure_ascii=False))
        return
    click.echo(f"account {report.address}: {report.summary}")
    for check in report.checks:
        click.echo(f"  [{check.cause}] {check.title}")
        click.echo(f"    {check.detail}")
        click.echo(f"    next: {check.next_step}")
