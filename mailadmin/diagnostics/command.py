"""``mailadmin diagnose``: explain bounces and mail errors from files or stdin."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click

from .catalogue import family as family_entry
from .classify import Finding, classify
from .parse import MAX_INPUT


def _read(name: str) -> bytes:
    # Never read more than the classifier looks at: a 10 GB file costs 1 MB.
    if name == "-":
        return sys.stdin.buffer.read(MAX_INPUT)
    with open(name, "rb") as handle:
        return handle.read(MAX_INPUT)


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
def diagnose_command(files: tuple[str, ...], as_json: bool) -> None:
    """Diagnose bounces, SMTP replies, logs or client errors in FILE(s) ("-" or none: stdin)."""
    failed = False
    for name in files or ("-",):
        try:
            data = _read(name)
        except OSError as exc:
            click.echo(f"{name}: cannot read: {exc.strerror or exc}", err=True)
            failed = True
            continue
        for record in _records(name, classify(data)):
            if as_json:
                click.echo(json.dumps(record, ensure_ascii=False))
            else:
                click.echo(_human(record))
    if failed:
        sys.exit(2)
