"""`mailadmin import cpanel|csv` and `mailadmin export csv`: moving mail accounts in and out.

An import runs `workers.importer.run_import`, which gives each domain one transaction of its
own through `services.imports.import_domain`; the export is one transaction calling
`services.imports.export_rows`. Formats: `mailadmin.imports.cpanel`, `mailadmin.imports.csvfile`.
"""

from __future__ import annotations

import dataclasses
import sys
import typing as t
from pathlib import Path

import click

from ..imports.records import DomainImport
from .common import CliState, echo_json, fail, format_table, json_option, pass_state, work

if t.TYPE_CHECKING:
    from ..workers.importer import ImportReport

#: A CSV file larger than this is refused (about 200,000 rows with hashes).
MAX_CSV_BYTES = 64 * 1024 * 1024


@click.group("import")
def import_group() -> None:
    """Bring mailboxes, forwarders and settings from another server."""


@click.group("export")
def export_group() -> None:
    """Write your mailboxes and forwarders out."""


def _dry_run_option(f: t.Any) -> t.Any:
    return click.option("--dry-run", is_flag=True,
                        help="Check everything and show what would change; change nothing.")(f)


def _run(state: CliState, plans: list[DomainImport], *, customer: str | None,
         create_domains: bool, dry_run: bool, as_json: bool,
         processes: int | None) -> ImportReport:
    from ..errors import MailadminError
    from ..workers.importer import run_import, total_records

    total = total_records(plans)
    bar: t.Any = None
    if not as_json and total:
        bar = click.progressbar(length=total, label="importing", file=sys.stderr)
        bar.__enter__()
    try:
        report = run_import(
            state.session_factory, state.actor, plans, customer=customer,
            create_domains=create_domains, dry_run=dry_run,
            progress=bar.update if bar is not None else None, processes=processes)
    except MailadminError as exc:  # the --as user is unknown or suspended
        fail(as_json, exc.message, code=exc.code, usage=False)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    return report


def _print(report: ImportReport, as_json: bool) -> None:
    if as_json:
        echo_json({
            "dry_run": report.dry_run,
            "domains": [dataclasses.asdict(r) for r in report.results],
        })
    else:
        verb = "would" if report.dry_run else "did"
        changes = [(verb + " " + c.action, c.kind, c.target, c.detail)
                   for r in report.results for c in r.changes]
        if changes:
            click.echo(format_table(("change", "what", "address", "detail"), changes))
        else:
            click.echo("Nothing to change.")
        skipped = [s for r in report.results for s in r.skipped]
        if skipped:
            click.echo("\nNot imported:")
            for s in skipped:
                where = f" ({s.origin})" if s.origin else ""
                click.echo(f"  {s.what}: {s.reason}{where}")
        for r in report.failed:
            click.echo(f"\n{r.domain}: nothing of this domain was imported:", err=True)
            for line in (r.error or "").splitlines():
                click.echo(f"  {line}", err=True)
        done = len(report.imported)
        click.echo(f"\n{done} domain(s) {'checked' if report.dry_run else 'imported'}, "
                   f"{len(report.failed)} refused.")


def _exit_status(report: ImportReport) -> None:
    if report.failed:
        raise click.exceptions.Exit(1)


_processes_option = click.option(
    "--processes", type=click.IntRange(1, 256), default=None,
    help="Processes that hash plaintext passwords (default: one per core).")


@import_group.command("cpanel")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--customer", default=None, metavar="NAME",
              help="The customer the domains belong to (resellers and the server admin).")
@click.option("--valiases", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The server's /etc/valiases, for a plain home folder.")
@click.option("--mail-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The account's mail folder (homedir/mail): copy the messages.")
@_dry_run_option
@_processes_option
@json_option
@pass_state
def import_cpanel(state: CliState, path: Path, customer: str | None, valiases: Path | None,
                  mail_dir: Path | None, dry_run: bool, processes: int | None,
                  as_json: bool) -> None:
    """Import an unpacked cPanel account backup (cpmove-USER) or a cPanel home folder.

    Domains, mailboxes with their password hashes (users keep their passwords), quotas,
    forwarders, the default address and autoresponders. Each domain is imported completely
    or not at all; what has no counterpart here is listed with the reason.
    """
    from ..imports.cpanel import BackupError, read_cpanel_account

    try:
        plans = read_cpanel_account(path, valiases=valiases)
    except BackupError as exc:
        fail(as_json, str(exc), code="invalid", usage=False)
    report = _run(state, plans, customer=customer, create_domains=True, dry_run=dry_run,
                  as_json=as_json, processes=processes)
    _print(report, as_json)
    if mail_dir is not None and not dry_run:
        _copy_mail(state, plans, report, mail_dir, as_json)
    _exit_status(report)


def _copy_mail(state: CliState, plans: list[DomainImport], report: ImportReport,
               mail_dir: Path, as_json: bool) -> None:
    from ..services.mailcopy import copy_cpanel_mail

    for plan, result in zip(plans, report.results, strict=True):
        if result.error is not None or not plan.mailboxes:
            continue
        addresses = [f"{m.local_part}@{result.domain}" for m in plan.mailboxes]
        with work(state, as_json) as (session, actor):
            copied = copy_cpanel_mail(session, actor, mail_dir / result.domain, addresses)
        for line in copied:
            if not as_json:
                click.echo(line, err=True)


@import_group.command("csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_dry_run_option
@_processes_option
@json_option
@pass_state
def import_csv(state: CliState, file: Path, dry_run: bool, processes: int | None,
               as_json: bool) -> None:
    """Import mailboxes and forwarders from a CSV file into your existing domains.

    Columns (header line, any order): address, password or password_hash, quota, imap,
    pop3, smtp, suspend_login, suspend_incoming, suspend_outgoing, forwarders, keep_copy.
    Importing the same file again changes nothing.
    """
    from ..imports.csvfile import read_csv

    if file.stat().st_size > MAX_CSV_BYTES:
        fail(as_json, f"{file} is larger than {MAX_CSV_BYTES // 1024 // 1024} MiB.",
             code="invalid", usage=False)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(as_json, f"{file} is not UTF-8 text.", code="invalid", usage=False)
    plans = read_csv(text, file.name)
    report = _run(state, plans, customer=None, create_domains=False, dry_run=dry_run,
                  as_json=as_json, processes=processes)
    _print(report, as_json)
    _exit_status(report)


@export_group.command("csv")
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (created 0600) instead of standard output.")
@pass_state
def export_csv(state: CliState, domain: str | None, output: Path | None) -> None:
    """Write mailboxes (with password hashes) and forwarders as CSV, for `import csv`."""
    import os

    from ..imports.csvfile import write_csv
    from ..services.imports import export_rows

    with work(state, False) as (session, actor):
        text = "".join(write_csv(export_rows(session, actor, domain=domain)))
    if output is None:
        click.echo(text, nl=False)
        return
    # the file holds password hashes: only its owner may read it
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"Wrote {text.count(chr(10)) - 1} row(s) to {output}.", err=True)
