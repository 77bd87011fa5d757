"""The CSV format of `mailadmin import csv` and `mailadmin export csv`.

One row per address, with a header line naming the columns (any order; only ``address`` is
required, a missing column or an empty cell leaves that value as it is, or to the defaults for
a new mailbox):

=================  ==========================================================================
column             meaning
=================  ==========================================================================
address            the mailbox or forwarder (``local@domain``)
password           a plaintext password: hashed on the way in (never exported)
password_hash      a Dovecot ``{SCHEME}hash`` instead (exported)
quota              bytes, or a size such as ``2G``; 0 is unlimited
imap, pop3, smtp   yes/no: the protocols the mailbox may use
suspend_login,     yes/no: the suspensions
suspend_incoming,
suspend_outgoing
forwarders         destinations separated by spaces (a row without password or hash, for an
                   address without a mailbox, is a forwarder of its own)
keep_copy          yes/no: a mailbox with forwarders keeps a copy too
=================  ==========================================================================

Re-importing an export changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import typing as t
from collections.abc import Iterable

from ..errors import ValidationError
from ..names import domain_of, split_loosely
from ..sizes import parse_size
from .records import DomainImport, ExportRow, ForwarderRecord, MailboxRecord, Malformed, Origin

COLUMNS = (
    "address", "password", "password_hash", "quota", "imap", "pop3", "smtp",
    "suspend_login", "suspend_incoming", "suspend_outgoing", "forwarders", "keep_copy",
)
EXPORT_COLUMNS = tuple(c for c in COLUMNS if c != "password")
_FLAGS = ("imap", "pop3", "smtp", "suspend_login", "suspend_incoming", "suspend_outgoing",
          "keep_copy")
_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}
_DESTINATION_SEPARATORS = re.compile(r"[\s,;]+")
#: Where rows without a domain are reported.
NO_DOMAIN = "(no domain)"


class _BadCell(ValueError):
    pass


def _flag(value: str, column: str) -> bool | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _BadCell(f"{column} must be yes or no, not {value.strip()[:20]!r}")


def read_csv(text: str, name: str = "import.csv") -> list[DomainImport]:
    """The rows of a CSV file, grouped by the domain of their address, in file order.

    A bad header is reported on every domain (nothing is imported); a bad row only on its own.
    """
    plans: dict[str, DomainImport] = {}

    def plan_for(domain: str) -> DomainImport:
        return plans.setdefault(domain, DomainImport(name=domain))

    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        plan_for(NO_DOMAIN).malformed.append(Malformed(Origin(name, 1), f"not CSV: {exc}"))
        return list(plans.values())
    unknown = [h for h in header if h not in COLUMNS]
    header_problem = None
    if "address" not in header:
        header_problem = "the header needs an 'address' column"
    elif unknown:
        header_problem = (f"unknown column {unknown[0][:30]!r}; the columns are: "
                          + ", ".join(COLUMNS))
    elif len(set(header)) != len(header):
        header_problem = "a column is named twice in the header"
    seen: set[str] = set()
    try:
        for row in reader:
            origin = Origin(name, reader.line_num)
            if not any(cell.strip() for cell in row):
                continue
            if header_problem:
                continue
            _read_row(header, row, origin, plan_for, seen)
    except csv.Error as exc:
        plan_for(NO_DOMAIN).malformed.append(
            Malformed(Origin(name, reader.line_num), f"not CSV: {exc}"))
    if header_problem:
        for plan in plans.values() or [plan_for(NO_DOMAIN)]:
            plan.malformed.append(Malformed(Origin(name, 1), header_problem))
    return list(plans.values())


def _read_row(
    header: list[str],
    row: list[str],
    origin: Origin,
    plan_for: t.Callable[[str], DomainImport],
    seen: set[str],
) -> None:
    if len(row) != len(header):
        address = row[0] if row else ""
        domain = domain_of(address).strip().lower() or NO_DOMAIN
        plan_for(domain).malformed.append(
            Malformed(origin, f"{len(row)} cells, but the header has {len(header)}"))
        return
    cells = dict(zip(header, row, strict=True))
    address = cells["address"].strip().lower()
    local, domain = split_loosely(address)
    if not local or not domain:
        plan_for(NO_DOMAIN).malformed.append(
            Malformed(origin, f"{cells['address'].strip()[:80]!r} is not an address"))
        return
    plan = plan_for(domain)
    if address in seen:
        plan.malformed.append(Malformed(origin, f"{address} is listed twice"))
        return
    seen.add(address)
    try:
        flags = {column: _flag(cells.get(column, ""), column) for column in _FLAGS}
        quota_text = cells.get("quota", "").strip()
        quota = parse_size(quota_text) if quota_text else None
    except _BadCell as exc:
        plan.malformed.append(Malformed(origin, str(exc)))
        return
    except ValidationError as exc:
        plan.malformed.append(Malformed(origin, f"quota: {exc.message}"))
        return
    password = cells.get("password", "")
    password_hash = cells.get("password_hash", "").strip()
    if password and password_hash:
        plan.malformed.append(Malformed(origin, "give a password or a password_hash, not both"))
        return
    destinations = tuple(d for d in _DESTINATION_SEPARATORS.split(cells.get("forwarders", ""))
                         if d)
    mailbox_values = [password, password_hash, quota_text,
                      *(flags[c] for c in _FLAGS if c != "keep_copy")]
    if any(v not in ("", None) for v in mailbox_values) or not destinations:
        plan.mailboxes.append(MailboxRecord(
            local_part=local, origin=origin, password=password or None,
            password_hash=password_hash or None, quota=quota, imap=flags["imap"],
            pop3=flags["pop3"], smtp=flags["smtp"], suspend_login=flags["suspend_login"],
            suspend_incoming=flags["suspend_incoming"],
            suspend_outgoing=flags["suspend_outgoing"],
        ))
    if destinations:
        plan.forwarders.append(ForwarderRecord(
            local_part=local, destinations=destinations, origin=origin,
            keep_copy=flags["keep_copy"],
        ))


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def write_csv(rows: Iterable[ExportRow]) -> Iterable[str]:
    """The CSV text, a line at a time (a download streams it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    for row in rows:
        writer.writerow([
            row.address, row.password_hash or "",
            "" if row.quota is None else str(row.quota),
            _yes_no(row.imap), _yes_no(row.pop3), _yes_no(row.smtp),
            _yes_no(row.suspend_login), _yes_no(row.suspend_incoming),
            _yes_no(row.suspend_outgoing), " ".join(row.forwarders), _yes_no(row.keep_copy),
        ])
        yield flush()
