"""Read mailbox usage back from Dovecot with ``doveadm quota`` (no database, no Flask).

Dovecot is asked through the configuration in force (``<config_dir>/current/dovecot/
dovecot.conf``), so the answer is the quota the servers enforce: the "User quota" root the
generated config sets up (``quota = maildir:User quota``). Dovecot reports the STORAGE
resource in KiB (rounded up) and MESSAGE as a count; bytes here are therefore KiB x 1024.

``doveadm -f tab quota get -A`` lists every user the userdb can iterate (the passwd-file),
two lines per user; ``-u ADDRESS`` asks for one, ``-u '*@DOMAIN'`` for a domain's.
``doveadm quota recalc -u ADDRESS`` recounts the mailbox from its files (mail copied into
the Maildir by hand, a damaged ``maildirsize``).

With several mail nodes, `node` names the doveadm server of the node that holds the
mailboxes: the same command then runs there (``-S HOST:PORT``, see `doveadm`), answered from
that node's configuration and mail; the local configuration only supplies the password.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..errors import MailadminError, NotFound
from ..names import domain_of, safe_address, safe_domain
from .doveadm import Endpoint, remote_args

#: The quota root name in the generated dovecot.conf (``quota = maildir:User quota``).
QUOTA_ROOT = "User quota"
#: doveadm's exit code for "user doesn't exist" (EX_NOUSER).
EX_NOUSER = 67
_TIMEOUT = 600


class UsageUnavailable(MailadminError):
    """doveadm could not be run or did not answer; nothing was stored."""

    code = "usage_unavailable"


@dataclasses.dataclass(frozen=True)
class Usage:
    address: str
    #: KiB reported by Dovecot x 1024.
    bytes: int
    messages: int
    #: The limits Dovecot enforces (None: unlimited), for comparing with the panel's quota.
    storage_limit: int | None
    message_limit: int | None


def dovecot_conf(config_dir: str | Path) -> Path:
    """The dovecot.conf of the release in force (what the running Dovecot reads)."""
    return Path(config_dir) / "current" / "dovecot" / "dovecot.conf"


def _doveadm(
    config_dir: str | Path, args: list[str], doveadm: str, node: Endpoint | None = None
) -> subprocess.CompletedProcess[str]:
    conf = dovecot_conf(config_dir)
    if not conf.exists():
        raise UsageUnavailable(
            f"No configuration is in force under {config_dir} yet; apply it first."
        )
    cmd = [doveadm, "-c", str(conf), *remote_args(args, node)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except FileNotFoundError:
        raise UsageUnavailable(f"{doveadm} is not installed.") from None
    except subprocess.TimeoutExpired:
        raise UsageUnavailable(f"doveadm {' '.join(args)} timed out after {_TIMEOUT}s.") from None


def _limit(text: str, scale: int) -> int | None:
    text = text.strip()
    if text in ("", "-", "0"):
        return None
    return int(text) * scale


def parse_quota_get(text: str, address: str | None = None) -> dict[str, Usage]:
    """Parse ``doveadm -f tab quota get`` output (with a Username column for ``-A``).

    Only the generated "User quota" root counts. `address` names the user for output without
    a Username column (``-u``).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    header = [h.strip().lower() for h in lines[0].split("\t")]
    try:
        col = {name: header.index(name) for name in ("quota name", "type", "value", "limit")}
    except ValueError:
        raise UsageUnavailable(f"Unexpected doveadm quota output: {lines[0]!r}") from None
    user_col = header.index("username") if "username" in header else None
    if user_col is None and address is None:
        raise UsageUnavailable("doveadm quota output names no user.")
    found: dict[str, dict[str, tuple[int, int | None]]] = {}
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) < len(header):
            continue
        if cells[col["quota name"]] != QUOTA_ROOT:
            continue
        user = cells[user_col] if user_col is not None else str(address)
        kind = cells[col["type"]].upper()
        try:
            value = int(cells[col["value"]])
        except ValueError:
            raise UsageUnavailable(f"Unexpected doveadm quota value in {line!r}") from None
        scale = 1024 if kind == "STORAGE" else 1
        found.setdefault(user.lower(), {})[kind] = (value * scale,
                                                    _limit(cells[col["limit"]], scale))
    result = {}
    for user, kinds in found.items():
        storage, storage_limit = kinds.get("STORAGE", (0, None))
        messages, message_limit = kinds.get("MESSAGE", (0, None))
        result[user] = Usage(user, storage, messages, storage_limit, message_limit)
    return result


def read_all(config_dir: str | Path, *, doveadm: str = "doveadm",
             node: Endpoint | None = None) -> dict[str, Usage]:
    """Usage of every mailbox the servers know, in one ``doveadm quota get -A``."""
    proc = _doveadm(config_dir, ["-f", "tab", "quota", "get", "-A"], doveadm, node)
    if proc.returncode != 0:
        raise UsageUnavailable(f"doveadm quota get -A exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
    return parse_quota_get(proc.stdout)


def read_one(config_dir: str | Path, address: str, *, doveadm: str = "doveadm",
             node: Endpoint | None = None) -> Usage:
    """Usage of one mailbox. Raises NotFound when Dovecot does not know it (not applied yet)."""
    safe_address(address)
    proc = _doveadm(config_dir, ["-f", "tab", "quota", "get", "-u", address], doveadm, node)
    if proc.returncode == EX_NOUSER:
        raise NotFound(f"The mail server does not know {address} yet; apply the configuration "
                       "first.", field="address")
    if proc.returncode != 0:
        raise UsageUnavailable(f"doveadm quota get -u {address} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
    usage = parse_quota_get(proc.stdout, address).get(address.lower())
    if usage is None:
        raise UsageUnavailable(f"doveadm reported no '{QUOTA_ROOT}' for {address}.")
    return usage


def read_domain(
    config_dir: str | Path, domain: str, *, doveadm: str = "doveadm",
    node: Endpoint | None = None,
) -> dict[str, Usage]:
    """Every mailbox of one domain in one call (``-u '*@domain'``: doveadm iterates the
    userdb and keeps the matching users)."""
    safe_domain(domain)
    proc = _doveadm(config_dir, ["-f", "tab", "quota", "get", "-u", f"*@{domain}"], doveadm,
                    node)
    if proc.returncode != 0:
        raise UsageUnavailable(f"doveadm quota get -u '*@{domain}' exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
    return parse_quota_get(proc.stdout)


def read_many(
    config_dir: str | Path, addresses: Iterable[str], *, doveadm: str = "doveadm",
    node: Endpoint | None = None,
) -> dict[str, Usage]:
    """Usage of the given mailboxes: one call per domain (one ``-u`` call for a single
    address). Addresses the servers do not know yet are left out."""
    wanted = list(dict.fromkeys(addresses))
    if len(wanted) == 1:
        try:
            return {wanted[0]: read_one(config_dir, wanted[0], doveadm=doveadm, node=node)}
        except NotFound:
            return {}
    found: dict[str, Usage] = {}
    for domain in sorted({domain_of(a) for a in wanted}):
        found.update(read_domain(config_dir, domain, doveadm=doveadm, node=node))
    return {a: found[a] for a in wanted if a in found}


def recalc(config_dir: str | Path, address: str, *, doveadm: str = "doveadm",
           node: Endpoint | None = None) -> None:
    """Recount one mailbox's usage from its files (``doveadm quota recalc -u``)."""
    safe_address(address)
    proc = _doveadm(config_dir, ["quota", "recalc", "-u", address], doveadm, node)
    if proc.returncode == EX_NOUSER:
        raise NotFound(f"The mail server does not know {address} yet; apply the configuration "
                       "first.", field="address")
    if proc.returncode != 0:
        raise UsageUnavailable(f"doveadm quota recalc -u {address} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
