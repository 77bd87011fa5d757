"""Copy a Maildir from another server into a mailbox with Dovecot's ``doveadm sync``.

``doveadm sync -1 -R -u ADDRESS maildir:SOURCE`` pulls the messages and folders of SOURCE into
the mailbox one way: the source is not modified, and messages already copied (recognised by
their GUIDs, which for a Maildir are its file names) are not copied again, so running it twice
copies nothing the second time. The source's index is kept in memory and its UID list in a
scratch folder of the mail user's, so the backup itself is only read. Dovecot reads it as the
mail user (vmail), which must be able to read it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import MailadminError
from ..names import safe_address
from .usage import dovecot_conf

_TIMEOUT = 3600
#: Characters that would end or extend a Dovecot mail location.
_UNSAFE_PATH = frozenset(":\n\r\t =")


class MailCopyFailed(MailadminError):
    code = "mail_copy_failed"


def sync_maildir(config_dir: str | Path, address: str, source: Path, *, uid: int, gid: int,
                 doveadm: str = "doveadm") -> None:
    """Pull `source` (a Maildir) into the mailbox `address`, as the mail user `uid`:`gid`;
    raise MailCopyFailed when doveadm fails."""
    address = safe_address(address)
    source = source.resolve()
    if _UNSAFE_PATH & set(str(source)):
        raise MailCopyFailed(f"{source}: a mail folder path may not contain ':', '=' or spaces.")
    conf = dovecot_conf(config_dir)
    if not conf.exists():
        raise MailCopyFailed(f"No configuration is in force under {config_dir}; apply it first.")
    control = Path(tempfile.mkdtemp(prefix="mailadmin-copy-"))
    try:
        if os.geteuid() == 0:
            os.chown(control, uid, gid)
        cmd = [doveadm, "-c", str(conf), "sync", "-1", "-R", "-u", address,
               f"maildir:{source}:INDEX=MEMORY:CONTROL={control}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except FileNotFoundError:
        raise MailCopyFailed(f"{doveadm} is not installed.") from None
    except subprocess.TimeoutExpired:
        raise MailCopyFailed(f"copying the mail of {address} timed out") from None
    finally:
        shutil.rmtree(control, ignore_errors=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MailCopyFailed(
            f"doveadm sync for {address} exited {done.returncode}: {detail[0][:300]}")
