"""doveadm between mail nodes: the shared password, dsync pulls and asking another node.

With several mail nodes every node's Dovecot runs the doveadm server on its node address
(``service doveadm { inet_listener ... }``, rendered when `StackSettings.doveadm_address`
is set). A client authenticates with ``doveadm_password``, which every node reads from the
same small file outside the release (`ensure_secret`): never in a revision, 0640
root:dovecot.

Moving a mailbox (`pull_mailbox`) runs on the TARGET node, as Dovecot 2.3 supports it,
asked from wherever the panel runs (``-S``: the target's doveadm server runs it)::

    doveadm -c LOCAL.conf sync -S TARGET:PORT -1 [-f] -R -u ADDRESS tcp:SOURCE:PORT

``sync`` with ``-R`` reverses the direction (the remote end is the source) and ``-1`` makes it
one-way: the source is never modified, and mail that arrived on the target is kept, which
the final pass after the switch depends on (``backup -R`` would delete it). A pass copies
only what the target lacks: flags, keywords and folders come along. The first and the last
pass are full (``-f``): without it dsync skips a folder whose summary (UID validity, next
UID, highest modseq) is the same on both sides, and after the switch both sides can have
taken one new message each - the source's would then never be copied (seen with 2.3.19:
"Mailboxes are equal"; the two-node test has this case); a target left with an old copy
(a domain moved back) is the same case. In between, only the source changes, and the quick
check is right (and several times faster). Run on the target, the local side is the user's
new home and the remote side is the source's doveadm server answering as that user.

Asking another node (`remote_args`): a mail command run with ``-S HOST:PORT`` is executed by
that node's doveadm server (doveadm(1): "-S socket_path ... or a hostname and port").
"""

from __future__ import annotations

import dataclasses
import grp
import os
import secrets
import subprocess
from pathlib import Path

from ..errors import MailadminError
from ..names import safe_address
from . import names
from .render.common import doveadm_secret_file
from .snapshot import StackSettings

_TIMEOUT = 3600


class DoveadmFailed(MailadminError):
    """doveadm between nodes failed (the message says for which mailbox and why)."""

    code = "doveadm_failed"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A node's doveadm server."""

    address: str
    port: int

    def __post_init__(self) -> None:
        names.node_address(self.address)
        names.port(self.port)

    @property
    def socket(self) -> str:
        """``HOST:PORT`` as ``-S`` takes it."""
        return f"{self.address}:{self.port}"

    @property
    def dsync(self) -> str:
        """``tcp:HOST:PORT``, the remote end of a dsync."""
        return f"tcp:{self.address}:{self.port}"


def new_secret() -> str:
    """43 characters of [A-Za-z0-9_-]: nothing Dovecot's config parser treats specially."""
    return secrets.token_urlsafe(32)


def ensure_secret(settings: StackSettings) -> Path:
    """The doveadm password file, created once (``doveadm_password = <random>``) when
    missing; an existing one is kept, so every release of every node keeps working with it.

    Created with no access for anyone, then given to root:dovecot 0640 (0600 when not run
    as root) before the secret is written. With several machines the same file must be on
    every node (copy it, or point `doveadm_secret_file` at a shared secret store).
    """
    path = Path(doveadm_secret_file(settings))
    if path.is_symlink() or (path.exists() and (
            not path.is_file() or path.stat().st_uid not in (0, os.geteuid())
            or path.stat().st_mode & 0o002)):
        # Dovecot (as root) includes this file: one that somebody else could have placed or
        # can rewrite would let them set the password between the nodes, or more
        raise OSError(f"refusing the doveadm password file {path}: a symlink, not a plain "
                      "file, owned by another user or writable by anyone")
    if path.exists():
        return path
    created = not path.parent.exists()
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if os.geteuid() == 0:
            try:
                gid = grp.getgrnam("dovecot").gr_gid
            except KeyError:
                gid = 0
            os.fchown(fd, 0, gid)
            os.fchmod(fd, 0o640)
            if created:  # a folder of its own; never change one that was there
                os.chown(path.parent, 0, gid)
        os.write(fd, f"# written by mailadmin: the doveadm server's password between mail "
                     f"nodes\ndoveadm_password = {new_secret()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _run(config_dir: str | Path, args: list[str], doveadm: str,
         timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
    conf = Path(config_dir) / "current" / "dovecot" / "dovecot.conf"  # usage.dovecot_conf
    if not conf.exists():
        raise DoveadmFailed(f"No configuration is in force under {config_dir}; apply it first.")
    try:
        return subprocess.run([doveadm, "-c", str(conf), *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise DoveadmFailed(f"{doveadm} is not installed.") from None
    except subprocess.TimeoutExpired:
        raise DoveadmFailed(f"doveadm {args[0]} timed out after {timeout:.0f}s") from None


#: What doveadm says when the nodes' doveadm passwords differ.
_AUTH_FAILED = "authentication failed"


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout).strip()
    lines = text.splitlines()
    last = lines[-1][:300] if lines else "no output"
    if _AUTH_FAILED in text:
        last += (" (a node refused the doveadm password: every node must have the same "
                 "doveadm-password.conf.ext)")
    return last


def pull_mailbox(config_dir: str | Path, address: str, source: Endpoint, target: Endpoint,
                 *, full: bool = True, doveadm: str = "doveadm") -> None:
    """One one-way pass, run by the target node's doveadm server: copy into the target's
    mailbox `address` whatever the source's copy has and the target's lacks (see the module
    doc). `full` (``-f``) compares every message; without it a folder whose summary is
    unchanged is skipped, which is right only while the target takes no mail of its own.
    Raises DoveadmFailed."""
    address = safe_address(address)
    args = ["sync", "-1", *(["-f"] if full else []), "-R", "-u", address, source.dsync]
    done = _run(config_dir, remote_args(args, target), doveadm)
    if done.returncode != 0:
        raise DoveadmFailed(f"copying {address} from {source.socket} to {target.socket} "
                            f"failed (doveadm sync exited {done.returncode}): "
                            f"{_last_line(done)}")


def mailbox_state(config_dir: str | Path, address: str, node: Endpoint, *,
                  doveadm: str = "doveadm") -> tuple[tuple[str, ...], ...]:
    """What a pass can change, per folder of `node`'s copy of `address`: name, messages,
    next UID and highest modification sequence (flags and keywords bump it). Equal before
    and after a pass: the pass copied nothing new."""
    address = safe_address(address)
    done = _run(config_dir, remote_args(["-f", "tab", "mailbox", "status", "-u", address,
                                         "messages uidnext highestmodseq", "*"], node),
                doveadm, timeout=600)
    if done.returncode != 0:
        raise DoveadmFailed(f"reading the folders of {address} on {node.socket} failed "
                            f"(doveadm mailbox status exited {done.returncode}): "
                            f"{_last_line(done)}")
    rows = [tuple(line.split("\t")) for line in done.stdout.splitlines()[1:] if line.strip()]
    return tuple(sorted(rows))


@dataclasses.dataclass(frozen=True)
class DoveadmMover:
    """Copies mailboxes between nodes with the local doveadm, whose configuration (under
    `config_dir`) supplies the doveadm password; every command runs on a node's server."""

    config_dir: str
    doveadm: str = "doveadm"

    def pull(self, address: str, source: Endpoint, target: Endpoint, *,
             full: bool = True) -> None:
        pull_mailbox(self.config_dir, address, source, target, full=full,
                     doveadm=self.doveadm)

    def state(self, address: str, node: Endpoint) -> tuple[tuple[str, ...], ...]:
        return mailbox_state(self.config_dir, address, node, doveadm=self.doveadm)


def remote_args(args: list[str], node: Endpoint | None) -> list[str]:
    """A mail command's arguments, run by `node`'s doveadm server (``-S HOST:PORT`` after
    the command's words) or locally (None)."""
    if node is None:
        return args
    # options follow the command words: ["-f", "tab", "quota", "get", ...]
    words = 4 if args[:1] == ["-f"] else 1 if args[:1] == ["sync"] else 2
    return [*args[:words], "-S", node.socket, *args[words:]]
