"""`mailadmin usage refresh|recalc|show`: mailbox usage (`mailadmin.services.usage`).

Usage is read from Dovecot (``doveadm quota``) and stored on each mailbox with the time it was
read; `show` prints the stored sums per domain and per customer. Each command is one transaction
calling one service.
"""

from __future__ import annotations

import dataclasses
import sys
import typing as t

import click

from ..services import usage
from ..sizes import format_size
from .common import CliState, echo_json, json_option, pass_state, work


def _bytes(value: int | None) -> str:
    return "0 B" if value == 0 else format_size(value)


def _when(value: t.Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


@click.group("usage")
def usage_group() -> None:
    """Mailbox usage read back from Dovecot."""


@usage_group.command("refresh")
@click.option("--address", default=None, help="Only this mailbox.")
@json_option
@pass_state
def usage_refresh(state: CliState, address: str | None, as_json: bool) -> None:
    """Read usage from Dovecot and store it (all your mailboxes, or one)."""
    bar: t.Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if as_json or total == 0:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="storing usage", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        with work(state, as_json) as (session, actor):
            report = usage.refresh_usage(session, actor, address=address, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        echo_json(dataclasses.asdict(report))
        return
    click.echo(f"Usage of {report.updated} mailbox(es) read at {_when(report.read_at)}.")
    if report.not_known:
        click.echo(f"{len(report.not_known)} mailbox(es) not known to Dovecot yet (apply the "
                   "configuration): " + ", ".join(report.not_known[:10])
                   + (" …" if len(report.not_known) > 10 else ""))


@usage_group.command("recalc")
@click.argument("address")
@json_option
@pass_state
def usage_recalc(state: CliState, address: str, as_json: bool) -> None:
    """Have Dovecot recount a mailbox from its files (doveadm quota recalc), then store it."""
    with work(state, as_json) as (session, actor):
        box = usage.recalculate(session, actor, address)
        out = {"address": box.address, "usage_bytes": box.usage_bytes,
               "usage_messages": box.usage_messages, "usage_read_at": box.usage_read_at}
    if as_json:
        echo_json(out)
        return
    click.echo(f"{out['address']}: {_bytes(box.usage_bytes)} in "
               f"{box.usage_messages} message(s), read {_when(box.usage_read_at)}.")


def _sum_line(row: usage.UsageSum) -> str:
    quota = format_size(row.quota) if row.quota is not None else "unlimited"
    return (f"{row.unicode_name:<40} {row.mailboxes:>6} {row.read:>6} "
            f"{_bytes(row.usage_bytes):>10} {row.usage_messages:>9} {quota:>10}  "
            f"{_when(row.oldest_read_at)}")


@usage_group.command("show")
@click.option("--domain", default=None, help="Only this domain, with its mailboxes.")
@json_option
@pass_state
def usage_show(state: CliState, domain: str | None, as_json: bool) -> None:
    """Stored usage summed per domain and per customer."""
    with work(state, as_json) as (session, actor):
        summary = usage.usage_summary(session, actor, domain=domain)
    if as_json:
        data = dataclasses.asdict(summary)
        for item, box in zip(data["mailboxes"], summary.mailboxes, strict=True):
            item["usage_percent"] = box.usage_percent
            item["level"] = box.level
        echo_json(data)
        return
    header = (f"{'':<40} {'boxes':>6} {'read':>6} {'used':>10} {'messages':>9} "
              f"{'quota':>10}  oldest reading")
    for title, rows in (("Domain", summary.domains), ("Customer", summary.customers)):
        click.echo(title + header[len(title):])
        for row in rows:
            click.echo(_sum_line(row))
        click.echo("")
    if summary.mailboxes:
        click.echo("Mailbox")
        for box in summary.mailboxes:
            used = _bytes(box.usage_bytes) if box.usage_bytes is not None else "-"
            pct = f"{box.usage_percent}%" if box.usage_percent is not None else ""
            flag = {"warning": "  over 80%", "critical": "  over 95%"}.get(box.level or "", "")
            click.echo(f"{box.address:<40} {used:>10} {pct:>5} of "
                       f"{format_size(box.quota) if box.quota else 'unlimited'}  "
                       f"{_when(box.usage_read_at)}{flag}")
