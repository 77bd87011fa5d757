"""The Dovecot 2.4 render checked by Debian 13's real doveconf / doveadm, its traps, and
version detection ("auto").

The matrix (test_matrix_24.py) proves behaviour end to end; these tests pin what the 2.4
syntax needs and what `doveconf -n` alone would not catch (lab section 3b.4).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.lab.chroot24 import Chroot
from mailadmin.mailstack import StackSnapshot, render, settings_from_server_settings
from mailadmin.mailstack.render import FILES_24, RENDERERS, DialectRenderer
from mailadmin.mailstack.version import (
    DovecotVersionError,
    detect_dovecot_version,
    parse_dovecot_version,
)
from mailadmin.models import ServerSettings
from mailadmin.services import settings as settings_service
from tests.mailstack.conftest import PASSWORD
from tests.mailstack.test_render import ROOT, SETTINGS, SNAPSHOT

from .conftest import Stack24

pytestmark = pytest.mark.mailstack

SNAPSHOT_24 = dataclasses.replace(
    SNAPSHOT, settings=dataclasses.replace(SETTINGS, dovecot_version="2.4"))

#: 2.3 spellings that 2.4.1's doveconf accepts or rejects, but that break 2.4 at run time
#: or at load: variables without braces, $mail_plugins, the plugin { } block, old names.
_23_FORMS = [
    re.compile(r"%(?!\{)[A-Za-z]*"),  # %u %d %n %s %Lu %% ... (2.4 only has %{...})
    re.compile(r"\$mail_plugins"),
    re.compile(r"^\s*plugin \{", re.M),
    re.compile(r"^\s*(mail_location|disable_plaintext_auth|args|address|quota_rule|"
               r"quota_grace|default_pass_scheme|sieve_before)\s*=", re.M),
    re.compile(r"^\s*(passdb|userdb) \{", re.M),  # 2.4 needs a name
    re.compile(r"userdb_quota_rule="),
]


def _offending(text: str) -> list[str]:
    return [m.group(0) for rx in _23_FORMS for m in rx.finditer(text)]


@pytest.fixture
def shared_dir(chroot24: Chroot) -> Iterator[Path]:
    """A scratch folder seen at the same path on the host and inside the chroot."""
    d = Path(tempfile.mkdtemp(prefix="cfg24-", dir="/tmp"))
    d.chmod(0o755)
    chroot24.share(d)
    try:
        yield d
    finally:
        chroot24.unshare(d)
        shutil.rmtree(d, ignore_errors=True)


def _write(files: dict[str, str], root: Path) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


# --------------------------------------------------------------------------- render


def test_registered_and_23_untouched() -> None:
    assert RENDERERS[FILES_24] == DialectRenderer(FILES_24)
    files_23 = render(SNAPSHOT, ROOT)
    files_24 = render(SNAPSHOT_24, ROOT)
    assert set(files_23) == set(files_24)
    # Postfix, the deny lists and Sieve scripts are shared byte for byte
    for rel in files_23:
        if rel not in ("dovecot/dovecot.conf", "dovecot/users"):
            assert files_23[rel] == files_24[rel], rel
    assert "dovecot_config_version" not in files_23["dovecot/dovecot.conf"]
    # "2.4.x" strings select the same renderer
    assert render(dataclasses.replace(SNAPSHOT, settings=dataclasses.replace(
        SETTINGS, dovecot_version="2.4.1")), ROOT) == files_24


def test_trap_no_23_variables_or_settings_in_the_24_render() -> None:
    files = render(SNAPSHOT_24, ROOT)
    conf = files["dovecot/dovecot.conf"]
    assert _offending(conf) == [], _offending(conf)
    assert _offending(files["dovecot/users"]) == []
    # the check is not vacuous: the 2.3 render is full of them
    assert {"%s", "%Lu", "$mail_plugins", "plugin {"} <= {
        o.strip() for o in _offending(render(SNAPSHOT, ROOT)["dovecot/dovecot.conf"])}
    # the first *setting* is dovecot_config_version, and the trap settings are there
    first = next(line for line in conf.splitlines() if line and not line.startswith("#"))
    assert first == "dovecot_config_version = 2.4.0"
    assert 'quota_status_toolarge = "552 5.2.2 Mailbox is full"' in conf
    assert "quota_storage_grace = 0\n" in conf
    assert "deny.%{protocol}" in conf and "auth_username_format = %{user | lower}" in conf
    # the default limit is global, never inside the quota block (it would beat the userdb)
    block = conf[conf.index('quota "User quota" {'):]
    assert "storage_size" not in block[:block.index("}")]


def test_users_file_quota_in_24_units() -> None:
    users = render(SNAPSHOT_24, ROOT)["dovecot/users"]
    lines = {line.split(":")[0]: line for line in users.splitlines() if "@" in line}
    assert lines["alice@example.com"].endswith(
        f"::userdb_quota_storage_size={10 * 1024**2}")
    assert lines["bob@example.com"].endswith("::userdb_quota_storage_size=unlimited")


def test_real_doveconf_accepts_the_24_render_with_tls(chroot24: Chroot,
                                                      shared_dir: Path) -> None:
    cert, key = shared_dir / "cert.pem", shared_dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mail.example.net", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    root = shared_dir / "release"
    for tls in (False, True):
        settings = dataclasses.replace(SNAPSHOT_24.settings, tls_cert_file=str(cert),
                                       tls_key_file=str(key)) if tls else SNAPSHOT_24.settings
        _write(render(dataclasses.replace(SNAPSHOT_24, settings=settings), str(root)), root)
        conf = str(root / "dovecot" / "dovecot.conf")
        n = chroot24.run("doveconf", "-n", "-c", conf)
        assert n.returncode == 0, n.stderr
        assert n.stdout.startswith("# 2.4."), n.stdout[:80]
        assert "port = 143" in n.stdout and "port = 110" in n.stdout
        assert "quota_status_toolarge = 552 5.2.2 Mailbox is full" in n.stdout
        # -x opens the "<file" / *_file values: the certificate and key must be readable
        x = chroot24.run("doveconf", "-x", "-c", conf)
        assert x.returncode == 0, x.stderr
        # doveconf -n prints what differs from 2.4's defaults (ssl = yes, no cleartext)
        assert ("ssl = no" in n.stdout) is not tls
        assert ("auth_allow_cleartext = yes" in n.stdout) is not tls
        assert (f"cert_file = {cert}" in n.stdout) is tls


def test_trap_doveconf_alone_misses_23_variables(chroot24: Chroot, shared_dir: Path) -> None:
    """Why the grep above exists: a 2.3 variable left in passes 2.4's doveconf -n."""
    root = shared_dir / "release"
    files = render(SNAPSHOT_24, str(root))
    files["dovecot/dovecot.conf"] = files["dovecot/dovecot.conf"].replace(
        "deny.%{protocol}", "deny.%s")
    _write(files, root)
    n = chroot24.run("doveconf", "-n", "-c", str(root / "dovecot" / "dovecot.conf"))
    assert n.returncode == 0 and "deny.%s" in n.stdout, n.stderr
    assert _offending(files["dovecot/dovecot.conf"]) == ["%s"]


def test_trap_host_23_tools_cannot_read_a_24_config(shared_dir: Path) -> None:
    root = shared_dir / "release"
    _write(render(SNAPSHOT_24, str(root)), root)
    proc = subprocess.run(["doveconf", "-n", "-c", str(root / "dovecot" / "dovecot.conf")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "dovecot_config_version" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- running 2.4


def test_running_config_is_the_24_release(stack: Stack24) -> None:
    assert stack.chroot is not None
    n = stack.chroot.run("doveconf", "-n", "-c", stack.dovecot_conf)
    assert n.returncode == 0 and n.stdout.startswith("# 2.4.1"), n.stderr
    assert "Dovecot v2.4." in (stack.log_dir / "dovecot.log").read_text()


def test_doveadm_user_shows_the_quota_from_the_passwd_file(stack: Stack24) -> None:
    small = stack.doveadm("user", "small@example.test")
    assert small.returncode == 0, small.stderr
    fields = dict(line.split("\t", 1) for line in small.stdout.splitlines() if "\t" in line)
    assert fields["quota_storage_size"] == "2048"
    assert fields["home"] == f"{stack.settings.mail_root}/example.test/small"
    assert fields["uid"] == str(stack.settings.vmail_uid)
    alice = stack.doveadm("user", "alice@example.test")
    assert "quota_storage_size\tunlimited" in alice.stdout
    quota = stack.doveadm("quota", "get", "-u", "small@example.test")
    assert quota.returncode == 0, quota.stderr
    storage = next(line.split() for line in quota.stdout.splitlines() if "STORAGE" in line)
    assert storage[-2] == "2", quota.stdout  # limit in KiB


def test_doveadm_auth_follows_the_per_protocol_deny_lists(stack: Stack24) -> None:
    def auth(user: str, protocol: str) -> subprocess.CompletedProcess[str]:
        return stack.doveadm("auth", "test", "-x", f"protocol={protocol}", user, PASSWORD)

    denied = auth("noimap@example.test", "imap")
    assert denied.returncode != 0 and "user_disabled" in denied.stdout + denied.stderr
    assert auth("noimap@example.test", "pop3").returncode == 0
    assert auth("nosmtp@example.test", "smtp").returncode != 0
    assert auth("nosmtp@example.test", "imap").returncode == 0
    for protocol in ("imap", "pop3", "smtp"):
        assert auth("suspended@example.test", protocol).returncode != 0


# --------------------------------------------------------------------------- version


@pytest.mark.parametrize(("output", "version"), [
    ("2.3.19.1 (9b53102964)\n", "2.3"),
    ("2.4.1-4 (7d8c0e5759)\n", "2.4"),
    ("2.4.0 (abc)", "2.4"),
    ("2.4.2", "2.4"),
])
def test_parse_dovecot_version(output: str, version: str) -> None:
    assert parse_dovecot_version(output) == version


@pytest.mark.parametrize("output", ["2.2.36 (1f10bfa63)", "3.0.0 (x)", "", "dovecot", "2.34.1"])
def test_parse_dovecot_version_refuses(output: str) -> None:
    with pytest.raises(DovecotVersionError):
        parse_dovecot_version(output)


def test_detect_dovecot_version_on_both_installations(chroot24: Chroot) -> None:
    assert detect_dovecot_version("dovecot") == "2.3"  # Debian 12's package on the host
    assert detect_dovecot_version(chroot24.tool("dovecot")) == "2.4"
    with pytest.raises(DovecotVersionError):
        detect_dovecot_version("/nonexistent/dovecot")


def test_auto_setting_resolves_to_the_installed_version(
    chroot24: Chroot, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = ServerSettings(id=1, dovecot_version="auto", stack_mode="files")
    assert settings_from_server_settings(row).dovecot_version == "2.3"
    # with the chroot's dovecot first on PATH, "auto" picks 2.4 and its renderer
    monkeypatch.setenv("PATH", f"{chroot24.bin_dir}:{os.environ['PATH']}")
    settings = settings_from_server_settings(row)
    assert settings.dovecot_version == "2.4"
    files = render(StackSnapshot(settings, (), (), (), ()), "/etc/ma/releases/x")
    assert files["dovecot/dovecot.conf"].count("dovecot_config_version = 2.4.0") == 1
    # an explicit setting overrides the detection
    row.dovecot_version = "2.3"
    assert settings_from_server_settings(row).dovecot_version == "2.3"


def test_settings_service_accepts_auto() -> None:
    spec = settings_service.SPECS["dovecot_version"]
    assert [spec.parse(v) for v in ("2.3", "2.4", "auto", "AUTO")] == [
        "2.3", "2.4", "auto", "auto"]
    with pytest.raises(Exception, match="Choose one of"):
        spec.parse("2.5")


# --------------------------------------------------------------------------- chroot safety


def test_chroot_removal_refuses_while_a_sandbox_is_bind_mounted(chroot24: Chroot) -> None:
    """`rm -rf --one-file-system` does not stop at a bind mount of the same file system; a
    rebuild must never delete a sandbox folder shared into the chroot."""
    from mailadmin.lab.chroot24 import ChrootError, _remove_root

    base = Path(tempfile.mkdtemp(prefix="rmroot-", dir="/tmp"))
    fake = dataclasses.replace(chroot24, root=base / "root")
    shared = Path(tempfile.mkdtemp(prefix="rmshared-", dir="/tmp"))
    (shared / "mail").write_text("precious")
    fake.share(shared)
    try:
        with pytest.raises(ChrootError, match="is mounted in it"):
            _remove_root(fake.root)
        assert (shared / "mail").read_text() == "precious"
    finally:
        fake.unshare(shared)
    _remove_root(fake.root)
    assert not fake.root.exists() and (shared / "mail").exists()
    shutil.rmtree(base)
    shutil.rmtree(shared)
