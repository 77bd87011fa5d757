"""Read an unpacked cPanel account backup (``cpmove-USER``) or a cPanel home folder.

Where cPanel keeps an account's mail settings, and what each becomes here:

* ``homedir/etc/<domain>/passwd`` and ``shadow``: the mailboxes. A shadow hash is a
  ``crypt()`` string, which Dovecot verifies as it is under the matching scheme: ``$6$`` →
  ``{SHA512-CRYPT}``, ``$5$`` → ``{SHA256-CRYPT}``, ``$1$`` → ``{MD5-CRYPT}``, ``$2a$/$2b$/$2y$``
  → ``{BLF-CRYPT}``, 13 characters → ``{DES-CRYPT}``. cPanel suspends a mailbox's login by
  putting ``!`` in front of the hash; that becomes the login suspension.
* ``homedir/etc/<domain>/quota``: ``user:bytes`` (0 = unlimited).
* ``va/<domain>`` (the server's ``/etc/valiases/<domain>``): ``local@domain: dest, dest`` is a
  forwarder (at a mailbox's address cPanel delivers to the mailbox too, so it keeps a copy);
  ``*: …`` is the default address: ``:fail: message`` refuses with that message,
  ``:blackhole:`` discards, an address delivers there. A pipe to cPanel's ``autorespond``
  marks an autoresponder, which is read from ``homedir/.autorespond/``.
* ``vad/<domain>`` (``/etc/vdomainaliases/<domain>``): a domain forwarder, mail for every
  name of the domain without a mailbox or forwarder to the same name at another domain,
  becomes the default address ``@other.example``.
* ``homedir/.autorespond/<address>`` (headers, a blank line, the body) and
  ``<address>.json`` (``interval`` in hours, ``start``/``stop`` as Unix times).

A line that cannot be read is `Malformed` with its file and line: its domain is then not
imported at all. Something readable that has no counterpart here is `Skipped` with the reason.
Symbolic links are not followed (a backup is untrusted input).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from pathlib import Path

from ..names import split_loosely
from .records import (
    AutoresponderRecord,
    DefaultAddressRecord,
    DomainImport,
    ForwarderRecord,
    MailboxRecord,
    Malformed,
    Origin,
    Skipped,
)

#: A file larger than this is not a mail settings file.
MAX_FILE_BYTES = 64 * 1024 * 1024

_CRYPT_SCHEMES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("$6$",), "SHA512-CRYPT"),
    (("$5$",), "SHA256-CRYPT"),
    (("$1$",), "MD5-CRYPT"),
    (("$2a$", "$2b$", "$2y$"), "BLF-CRYPT"),
)
_DES_CRYPT = re.compile(r"[./0-9A-Za-z]{13}")
_DOMAIN_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+")


class BackupError(Exception):
    """The folder is not a cPanel backup or home folder at all."""


def dovecot_hash(crypt_hash: str) -> str | None:
    """The Dovecot form of a ``crypt()`` hash from a shadow file; None for an unknown format."""
    for prefixes, scheme in _CRYPT_SCHEMES:
        if crypt_hash.startswith(prefixes):
            return f"{{{scheme}}}{crypt_hash}"
    if _DES_CRYPT.fullmatch(crypt_hash):
        return f"{{DES-CRYPT}}{crypt_hash}"
    return None


class _Reader:
    """Reads files below `root`, refusing symbolic links, naming files relative to `base`."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base))
        except ValueError:
            return str(path)

    def lines(self, path: Path, problems: list[Malformed]) -> list[tuple[Origin, str]] | None:
        """The file's lines with their origins; None (and a problem) when it cannot be read."""
        name = self.name(path)
        if path.is_symlink():
            problems.append(Malformed(Origin(name, 0), "is a symbolic link; not followed"))
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            problems.append(Malformed(Origin(name, 0), f"cannot be read: {exc.strerror}"))
            return None
        if len(data) > MAX_FILE_BYTES:
            problems.append(Malformed(Origin(name, 0), "is too large for a mail settings file"))
            return None
        result: list[tuple[Origin, str]] = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError:
                problems.append(Malformed(Origin(name, number), "is not UTF-8 text"))
                continue
            result.append((Origin(name, number), text))
        return result


def _layout(path: Path, valiases: Path | None) -> tuple[Path, Path | None, Path | None]:
    """(home folder, valiases folder, vdomainaliases folder) of a backup or a home folder."""
    if not path.is_dir() or path.is_symlink():
        raise BackupError(f"{path} is not a folder.")
    home = path / "homedir"
    if home.is_dir() and not home.is_symlink():
        va = valiases or (path / "va")
        vad = path / "vad"
        return home, va if va.is_dir() else None, vad if vad.is_dir() else None
    if not (path / "etc").is_dir():
        raise BackupError(
            f"{path} is neither a cPanel account backup (cpmove-USER with homedir/) nor a "
            "cPanel home folder (with etc/)."
        )
    return path, valiases, None


def _domain_names(folder: Path | None, *, files: bool) -> set[str]:
    if folder is None:
        return set()
    names = set()
    for entry in folder.iterdir():
        if entry.is_symlink() or not _DOMAIN_FILE.fullmatch(entry.name):
            continue
        if (entry.is_file() if files else entry.is_dir()):
            names.add(entry.name.lower())
    return names


def read_cpanel_account(path: Path, *, valiases: Path | None = None) -> list[DomainImport]:
    """Every mail domain of the account, in name order.

    With a cpmove folder the domains are those under ``homedir/etc`` and in ``va``/``vad``;
    with a home folder (and `valiases`, the server's ``/etc/valiases``) those under ``etc``
    only, since the server's folder holds every account's domains.

    :raises BackupError: when `path` is neither kind of folder.
    """
    home, va, vad = _layout(path, valiases)
    reader = _Reader(path)
    etc = home / "etc"
    names = _domain_names(etc, files=False)
    if home != path:  # a cpmove backup: va and vad hold only this account's domains
        names |= _domain_names(va, files=True) | _domain_names(vad, files=True)
    plans = []
    for name in sorted(names):
        plan = DomainImport(name=name)
        _read_mailboxes(reader, etc / name, plan)
        if va is not None and (va / name).exists():
            _read_valiases(reader, va / name, plan, home)
        if vad is not None and (vad / name).exists():
            _read_domain_forwarders(reader, vad / name, plan)
        plans.append(plan)
    return plans


def _fields(
    reader: _Reader, path: Path, plan: DomainImport, minimum: int
) -> list[tuple[Origin, list[str]]]:
    if not path.exists() and not path.is_symlink():
        return []
    lines = reader.lines(path, plan.malformed)
    rows = []
    for origin, text in lines or []:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        parts = text.split(":")
        if len(parts) < minimum or not parts[0].strip():
            plan.malformed.append(
                Malformed(origin, f"expected at least {minimum} fields separated by ':'")
            )
            continue
        rows.append((origin, parts))
    return rows


def _read_mailboxes(reader: _Reader, folder: Path, plan: DomainImport) -> None:
    if folder.is_symlink():
        plan.malformed.append(Malformed(Origin(reader.name(folder), 0), "is a symbolic link"))
        return
    users: dict[str, Origin] = {}
    for origin, parts in _fields(reader, folder / "passwd", plan, 2):
        local = parts[0].strip().lower()
        if local in users:
            plan.malformed.append(Malformed(origin, f"{local} is listed twice"))
            continue
        users[local] = origin
    hashes: dict[str, tuple[Origin, str]] = {}
    for origin, parts in _fields(reader, folder / "shadow", plan, 2):
        local = parts[0].strip().lower()
        if local in hashes:
            plan.malformed.append(Malformed(origin, f"{local} is listed twice"))
            continue
        hashes[local] = (origin, parts[1].strip())
    quotas: dict[str, int] = {}
    for origin, parts in _fields(reader, folder / "quota", plan, 2):
        local, value = parts[0].strip().lower(), parts[1].strip()
        if not value.isdigit():
            plan.malformed.append(
                Malformed(origin, f"the quota {value!r} is not a number of bytes"))
            continue
        quotas[local] = int(value)
    for local, origin in users.items():
        if local not in hashes:
            plan.skipped.append(Skipped(f"mailbox {local}@{plan.name}",
                                        "it has no line in the shadow file", origin))
            continue
        shadow_origin, crypt_hash = hashes[local]
        locked = crypt_hash.startswith("!")
        crypt_hash = crypt_hash.lstrip("!")
        if crypt_hash in ("", "*", "x"):
            plan.skipped.append(Skipped(f"mailbox {local}@{plan.name}",
                                        "it has no password (locked)", shadow_origin))
            continue
        stored = dovecot_hash(crypt_hash)
        if stored is None:
            plan.malformed.append(Malformed(
                shadow_origin,
                f"the password hash of {local} is in no crypt() format Dovecot verifies "
                "($6$, $5$, $1$, $2y$ or DES)",
            ))
            continue
        plan.mailboxes.append(MailboxRecord(
            local_part=local, origin=origin, password_hash=stored, quota=quotas.get(local),
            suspend_login=True if locked else None,
        ))
    for local in sorted(set(hashes) - set(users)):
        plan.skipped.append(Skipped(f"mailbox {local}@{plan.name}",
                                    "it is in the shadow file but not in passwd",
                                    hashes[local][0]))


def _split_destinations(value: str) -> list[str]:
    """Comma-separated destinations; a double-quoted one may contain commas."""
    found: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
            continue
        if ch == "," and not quoted:
            found.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    found.append("".join(current).strip())
    return [d for d in found if d]


def _read_valiases(reader: _Reader, path: Path, plan: DomainImport, home: Path) -> None:
    lines = reader.lines(path, plan.malformed)
    seen: set[str] = set()
    responders: dict[str, Origin] = {}
    mailbox_locals = {m.local_part for m in plan.mailboxes}
    for origin, text in lines or []:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        key, colon, value = text.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not colon or not key or not value:
            plan.malformed.append(Malformed(origin, "expected 'address: destination, ...'"))
            continue
        if key in seen:
            plan.malformed.append(Malformed(origin, f"{key} is listed twice"))
            continue
        seen.add(key)
        if key == "*":
            _default_address(origin, value, plan)
            continue
        local, domain = split_loosely(key)
        if not local or domain != plan.name:
            plan.malformed.append(Malformed(origin, f"{key} is not an address of {plan.name}"))
            continue
        if value.startswith((":fail:", ":blackhole:")):
            plan.skipped.append(Skipped(
                f"{value.split(':')[1]} for {key}",
                "this panel refuses or discards mail per domain (default address), not per "
                "address; mail for it follows the default address",
                origin,
            ))
            continue
        destinations = []
        for dest in _split_destinations(value):
            if dest.startswith("|") and "autorespond" in dest:
                responders[local] = origin
            elif dest.startswith(("|", "/")) or dest.startswith(":"):
                plan.skipped.append(Skipped(
                    f"destination {dest!r} of {key}",
                    "delivery to a program or file has no counterpart here", origin,
                ))
            elif "@" not in dest:
                plan.skipped.append(Skipped(
                    f"destination {dest!r} of {key}",
                    "a system user of the cPanel server, not an address", origin,
                ))
            else:
                destinations.append(dest.lower())
        if destinations:
            plan.forwarders.append(ForwarderRecord(
                local_part=local, destinations=tuple(destinations), origin=origin,
                keep_copy=True if local in mailbox_locals else None,
            ))
    for local, origin in responders.items():
        _read_autoresponder(reader, home / ".autorespond", f"{local}@{plan.name}", origin, plan)


def _default_address(origin: Origin, value: str, plan: DomainImport) -> None:
    if value.startswith(":fail:"):
        reason = value.removeprefix(":fail:").strip()
        plan.default_address = DefaultAddressRecord("reject", origin, reject_reason=reason or None)
    elif value.startswith(":blackhole:"):
        plan.default_address = DefaultAddressRecord("discard", origin)
    else:
        targets = _split_destinations(value)
        if len(targets) != 1:
            plan.skipped.append(Skipped(
                f"default address of {plan.name} ({value})",
                "the default address here delivers to exactly one address", origin,
            ))
        elif "@" not in targets[0]:
            plan.skipped.append(Skipped(
                f"default address of {plan.name} ({targets[0]})",
                "it delivers to the cPanel account's own system mailbox, which has no "
                "counterpart here; the domain keeps refusing unknown addresses",
                origin,
            ))
        else:
            plan.default_address = DefaultAddressRecord("deliver", origin, target=targets[0])


def _read_domain_forwarders(reader: _Reader, path: Path, plan: DomainImport) -> None:
    for origin, text in reader.lines(path, plan.malformed) or []:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        source, colon, target = text.partition(":")
        source, target = source.strip().lower(), target.strip().lower()
        if not colon or not source or not target or source != plan.name:
            plan.malformed.append(Malformed(origin, f"expected '{plan.name}: target domain'"))
            continue
        what = f"domain forwarder {source} → {target}"
        if plan.default_address is not None:
            plan.skipped.append(Skipped(
                what, "the domain's default address (*) is set too, and here a domain has "
                "one default address; the * line is imported", origin))
            continue
        # Addresses with a mailbox or forwarder keep them; every other name is forwarded.
        plan.default_address = DefaultAddressRecord("deliver", origin, target=f"@{target}")


def _read_autoresponder(
    reader: _Reader, folder: Path, address: str, origin: Origin, plan: DomainImport
) -> None:
    path = folder / address
    if not path.exists() and not path.is_symlink():
        plan.skipped.append(Skipped(f"autoresponder of {address}",
                                    f"{reader.name(path)} is missing", origin))
        return
    lines = reader.lines(path, plan.malformed)
    if lines is None:
        return
    headers: dict[str, str] = {}
    body_start = len(lines)
    for index, (line_origin, text) in enumerate(lines):
        if not text.strip():
            body_start = index + 1
            break
        name, colon, value = text.partition(":")
        if not colon:
            plan.malformed.append(
                Malformed(line_origin, "expected 'Header: value' before the body"))
            return
        headers[name.strip().lower()] = value.strip()
    body = "\n".join(text for _, text in lines[body_start:]).strip()
    interval_days, starts_at, ends_at = 1, None, None
    settings_path = folder / f"{address}.json"
    if settings_path.exists() or settings_path.is_symlink():
        text = "\n".join(t for _, t in reader.lines(settings_path, plan.malformed) or [])
        try:
            settings = json.loads(text)
            hours = settings.get("interval")
            if hours is not None:
                interval_days = max(1, math.ceil(float(hours) / 24))
            if settings.get("start"):
                starts_at = dt.datetime.fromtimestamp(int(settings["start"]), dt.UTC).replace(
                    tzinfo=None)
            if settings.get("stop"):
                ends_at = dt.datetime.fromtimestamp(int(settings["stop"]), dt.UTC).replace(
                    tzinfo=None)
        except (ValueError, TypeError, AttributeError, OverflowError):
            plan.malformed.append(Malformed(
                Origin(reader.name(settings_path), 1),
                "expected JSON with interval (hours), start and stop (Unix times)",
            ))
            return
    subject = headers.get("subject", "").strip()
    if not subject or not body:
        plan.skipped.append(Skipped(f"autoresponder of {address}",
                                    "it has no subject or no text", origin))
        return
    plan.autoresponders.append(AutoresponderRecord(
        local_part=split_loosely(address)[0], subject=subject,
        body=body, origin=origin, interval_days=interval_days, starts_at=starts_at,
        ends_at=ends_at,
    ))
