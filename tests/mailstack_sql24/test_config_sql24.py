"""What the real Dovecot 2.4.1 in the chroot makes of the SQL-mode release, per backend:
its own tools (doveconf, doveadm user / auth test) answer from the panel's database, the
release holds no credential, and only 2.4 variables are used (2.3 ones pass doveconf but
fail at run time, lab 3b.4)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest

from mailadmin.mailstack.render.sql import DOVECOT24_CONNECT, access_dir, load_access
from tests.mailstack.conftest import PASSWORD, eventually

from .conftest import SqlStack24

pytestmark = pytest.mark.mailstack

DRIVER = {"sqlite": "sqlite", "postgresql": "pgsql", "mariadb": "mysql"}


def _release(stack: SqlStack24) -> Path:
    return Path(os.path.realpath(f"{stack.settings.config_dir}/current"))


def _fields(out: str) -> dict[str, str]:
    rows = [line.split("\t", 1) for line in out.splitlines()[1:] if "\t" in line]
    return {k: v for k, v in rows}


def test_release_is_sql_mode_in_24_syntax(stack: SqlStack24) -> None:
    release = _release(stack)
    conf = (release / "dovecot" / "dovecot.conf").read_text()
    assert conf.splitlines()[2] == "dovecot_config_version = 2.4.0"
    assert f"sql_driver = {DRIVER[stack.backend]}" in conf
    assert "passdb sql-deny {" in conf and "userdb sql {" in conf
    assert "passwd_file_path" not in conf and "passdb passwd-file" not in conf
    # no mailbox data in the release: no passwd-file, no deny lists, no Postfix hash data
    assert sorted(p.name for p in (release / "dovecot").iterdir() if p.is_file()
                  ) == ["dovecot.conf"]
    # 2.3 variables (%u %n %d %s %Lu) would silently match nobody on 2.4
    assert not re.findall(r"%[A-Za-z]", conf), re.findall(r".*%[A-Za-z].*", conf)
    assert stack.chroot is not None
    proc = stack.chroot.run("doveconf", "-n", "-c", stack.dovecot_conf)
    assert proc.returncode == 0, proc.stderr
    assert "userdb sql {" in proc.stdout


def test_credentials_outside_the_release(stack: SqlStack24) -> None:
    folder = access_dir(stack.settings.config_dir)
    conf = (_release(stack) / "dovecot" / "dovecot.conf").read_text()
    access = load_access(stack.settings.config_dir)
    if stack.backend == "sqlite":
        assert f"sqlite_path = {access.path}\n" in conf
        assert "!include" not in conf
        return
    assert f"!include {folder}/{DOVECOT24_CONNECT}\n" in conf
    st = os.stat(folder / DOVECOT24_CONNECT)
    assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            st.st_mode & 0o777) == ("root", "dovecot", 0o640)
    secret = re.search(r"password = (\S+)", (folder / DOVECOT24_CONNECT).read_text())
    assert secret is not None and len(secret.group(1)) >= 20
    found = subprocess.run(["grep", "-rl", secret.group(1), str(_release(stack))],
                           capture_output=True, text=True, check=False).stdout
    assert found == "", f"password inside the release: {found}"


def test_doveadm_user_answers_from_the_database(stack: SqlStack24) -> None:
    out = stack.doveadm("user", "small@example.test")
    assert out.returncode == 0, out.stdout + out.stderr
    fields = _fields(out.stdout)
    assert fields["home"] == f"{stack.settings.mail_root}/example.test/small"
    assert fields["uid"] == str(stack.settings.vmail_uid)
    assert fields["quota_storage_size"] == "2048"  # bytes
    assert _fields(stack.doveadm("user", "alice@example.test").stdout
                   )["quota_storage_size"] == "unlimited"
    missing = stack.doveadm("user", "nobody@example.test")
    assert missing.returncode == 67, missing  # EX_NOUSER
    # a quota change in the panel is the next lookup's answer (no apply)
    user = "known@discard.test"
    with stack.session() as s:
        stack.mailbox(s, user).quota = 5 * 1024 * 1024
        s.commit()
    try:
        assert eventually(lambda: _fields(stack.doveadm("user", user).stdout)
                          .get("quota_storage_size") == str(5 * 1024 * 1024))
        quota = stack.doveadm("quota", "get", "-u", user)
        assert quota.returncode == 0 and re.search(r"STORAGE\s+\d+\s+5120\b", quota.stdout), quota
    finally:
        with stack.session() as s:
            stack.mailbox(s, user).quota = 0
            s.commit()


def test_doveadm_auth_test_follows_the_deny_query(stack: SqlStack24) -> None:
    def auth(user: str, protocol: str, password: str = PASSWORD) -> int:
        return stack.doveadm("auth", "test", "-x", f"protocol={protocol}", user,
                             password).returncode

    assert auth("alice@example.test", "imap") == 0
    assert auth("alice@example.test", "imap", "wrong") == 77
    assert auth("noimap@example.test", "imap") == 77
    assert auth("noimap@example.test", "pop3") == 0
    assert auth("nosmtp@example.test", "smtp") == 77
    assert auth("suspended@example.test", "pop3") == 77
    # user names are case-insensitive (auth_username_format = %{user | lower})
    assert auth("Alice@Example.TEST", "imap") == 0


def test_no_sql_errors_in_dovecot_log(stack: SqlStack24) -> None:
    stack.imap_login("alice@example.test")
    log = (stack.log_dir / "dovecot.log").read_text(errors="replace")
    bad = [line for line in log.splitlines()
           if ("Error:" in line or "Fatal:" in line or "Warning:" in line)
           and ("sql" in line.lower() or "auth" in line.lower())]
    assert not bad, "\n".join(bad[-20:])
    assert "Unknown setting" not in log
