"""Sieve vacation scripts (autoresponders): the same in every dialect."""

from __future__ import annotations

import datetime as dt
import re

from ...names import UnsafeName, safe_address
from ..snapshot import AutoresponderSnap, StackSnapshot
from .common import HEADER, Files, RenderError


def sieve_path(root: str, address: str) -> str:
    # One flat folder: sievec compiles a whole folder per run, so apply needs a single run.
    return f"{root}/dovecot/sieve/{address}.sieve"


def _sieve_quoted(value: str) -> str:
    """A Sieve quoted-string (RFC 5228 2.4.2): only backslash and double quote are special.

    Without the "variables" and "encoded-character" extensions nothing else expands, so this
    is a complete encoding rather than an escaping heuristic.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _sieve_text_block(body: str) -> str:
    """A Sieve multi-line string: dot-stuffed lines ending in a line with a single dot."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(body):
        raise UnsafeName("autoresponder text contains control characters")
    out = ["text:\n"]
    for line in body.split("\n"):
        out.append(("." + line if line.startswith(".") else line) + "\n")
    out.append(".\n")
    return "".join(out)


def _sieve_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise RenderError("autoresponder dates must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def sieve_vacation(a: AutoresponderSnap) -> str:
    subject = a.subject
    if "\n" in subject or "\r" in subject or _CONTROL.search(subject) or len(subject) > 200:
        raise UnsafeName("autoresponder subject must be one line of text")
    if not isinstance(a.interval_days, int) or not (1 <= a.interval_days <= 365):
        raise RenderError(f"invalid autoresponder interval {a.interval_days!r}")
    conditions = []
    # Compared as "YYYY-MM-DDTHH:MM:SS" in UTC (i;octet), so the script itself follows the
    # start and end dates without being re-rendered when they pass.
    if a.starts_at is not None:
        conditions.append(
            'currentdate :zone "+0000" :comparator "i;octet" :value "ge" "iso8601" '
            + _sieve_quoted(_sieve_time(a.starts_at))
        )
    if a.ends_at is not None:
        conditions.append(
            'currentdate :zone "+0000" :comparator "i;octet" :value "lt" "iso8601" '
            + _sieve_quoted(_sieve_time(a.ends_at))
        )
    action = (
        f"vacation :days {a.interval_days} :addresses {_sieve_quoted(a.address)}\n"
        f"  :subject {_sieve_quoted(subject)}\n  {_sieve_text_block(a.body)};\n"
    )
    if conditions:
        action = "if allof(" + ",\n         ".join(conditions) + ") {\n" + action + "}\n"
    require = '["vacation", "date", "relational"]' if conditions else '"vacation"'
    return f"# {HEADER}\nrequire {require};\n{action}"


def sieve_files(snapshot: StackSnapshot) -> Files:
    """One script per mailbox with an autoresponder, named after the address."""
    mailbox_addresses = {m.address for m in snapshot.mailboxes}
    files: Files = {}
    for a in snapshot.autoresponders:
        if a.address not in mailbox_addresses:
            raise RenderError(f"autoresponder for unknown mailbox {a.address!r}")
        files[sieve_path("", safe_address(a.address)).lstrip("/")] = sieve_vacation(a)
    return files
