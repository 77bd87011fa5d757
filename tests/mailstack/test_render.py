"""Renderers without servers: golden files, shape, hostile names, registry, snapshot queries.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/mailstack/test_render.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from mailadmin.mailstack import (
    AppPasswordSnap,
    AutoresponderSnap,
    DomainSnap,
    ForwarderSnap,
    MailboxSnap,
    StackPorts,
    StackSettings,
    StackSnapshot,
    UnsafeName,
    build_snapshot,
    render,
    render_release,
    settings_from_server_settings,
    write_render,
)
from mailadmin.mailstack.render import RenderError, postfix_maps
from mailadmin.mailstack.render.sql import POSTFIX_QUERIES
from mailadmin.models import Base, ServerSettings

from .conftest import populate, require_stack

GOLDEN = Path(__file__).parent / "golden"
ROOT = "/etc/mailadmin/stack/releases/golden"
HASH = "{SHA512-CRYPT}$6$saltsalt$" + "A" * 86
APP_HASH = "{SHA512-CRYPT}$6$appsalt$" + "B" * 86

SETTINGS = StackSettings(
    hostname="mail.example.net",
    postmaster_address="postmaster@example.net",
    config_dir="/etc/mailadmin/stack",
    run_dir="/run/mailadmin",
    state_dir="/var/lib/mailadmin",
    queue_dir="/var/spool/postfix",
    mail_root="/var/vmail",
    log_dir=None,
    ports=StackPorts(),
)


def mailbox(address: str, **kw: object) -> MailboxSnap:
    local, _, dom = address.partition("@")
    values: dict[str, object] = {
        "password_hash": HASH, "quota": 0, "imap": True, "pop3": True, "smtp": True,
        "suspend_login": False, "suspend_incoming": False, "suspend_outgoing": False,
    }
    values.update(kw)
    return MailboxSnap(local, dom, **values)  # type: ignore[arg-type]


SNAPSHOT = StackSnapshot(
    settings=SETTINGS,
    domains=(
        DomainSnap("example.com", "reject", "No such user here", None),
        DomainSnap("xn--bcher-kva.example", "deliver", None, "info@xn--bcher-kva.example"),
        DomainSnap("void.example", "discard", None, None),
    ),
    mailboxes=(
        mailbox("alice@example.com", quota=10 * 1024**2, app_passwords_only=True),
        mailbox("bob@example.com", pop3=False),
        mailbox("carol@example.com", smtp=False, suspend_outgoing=True),
        mailbox("dave@example.com", suspend_login=True, suspend_incoming=True),
        mailbox("info@xn--bcher-kva.example", imap=False),
        mailbox("x.y+z_w-v@void.example"),
    ),
    forwarders=(
        ForwarderSnap("alice", "example.com", True, ("ext@elsewhere.example",)),
        ForwarderSnap("sales", "example.com", False,
                      ("alice@example.com", "bob@example.com", "dave@example.com")),
        ForwarderSnap("to-dave", "example.com", False, ("dave@example.com",)),
    ),
    autoresponders=(
        AutoresponderSnap("bob@example.com", "Away", "Back on Monday.",
                          dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                          dt.datetime(2026, 12, 24, 18, 0, tzinfo=dt.UTC), 7),
    ),
    app_passwords=(
        AppPasswordSnap("alice", "example.com", 1, APP_HASH, imap=True, pop3=False, smtp=True),
        AppPasswordSnap("alice", "example.com", 2, APP_HASH, imap=False, pop3=True, smtp=False),
        AppPasswordSnap("bob", "example.com", 8, APP_HASH, imap=True, pop3=False, smtp=True),
    ),
)


#: config_dir in the golden SQL renders (the test's own folder is replaced by it)
GOLDEN_CONFIG_DIR = "/etc/mailadmin/stack"
SQL_ACCESS = {
    "sqlite": {"backend": "sqlite", "path": "/var/lib/mailadmin/panel.sqlite"},
    "postgresql": {"backend": "postgresql", "host": "127.0.0.1", "port": 5432,
                   "dbname": "mailadmin", "user": "mailsrv"},
    "mysql": {"backend": "mysql", "host": "db.example.net", "port": 3306,
              "dbname": "mailadmin", "user": "mailsrv"},
}
GOLDEN_VARIANTS = [(d, "-") for d in ("files-2.3", "files-2.4")] + [
    (d, backend) for d in ("sql-2.3", "sql-2.4") for backend in SQL_ACCESS]


def render_dialect(dialect: str, backend: str, config_dir: Path,
                   snapshot: StackSnapshot = SNAPSHOT) -> dict[str, str]:
    """`snapshot` rendered in `dialect` ("files-2.4", "sql-2.3", ...); SQL mode reads its
    access from `config_dir`, which the output then names as GOLDEN_CONFIG_DIR."""
    mode, version = dialect.split("-")
    settings = dataclasses.replace(snapshot.settings, mode=mode, dovecot_version=version)
    if mode == "sql":
        access = config_dir / "sql-access"
        (access / "postfix").mkdir(parents=True, exist_ok=True)
        (access / "access.json").write_text(json.dumps(SQL_ACCESS[backend]))
        for name in POSTFIX_QUERIES:  # MariaDB's tables live outside the release
            (access / "postfix" / f"{name}.cf").write_text("# written by sql-access grant\n")
        settings = dataclasses.replace(settings, config_dir=str(config_dir))
    files = render(dataclasses.replace(snapshot, settings=settings), ROOT)
    return {rel: text.replace(str(config_dir), GOLDEN_CONFIG_DIR) for rel, text in files.items()}


@pytest.mark.parametrize(("dialect", "backend"), GOLDEN_VARIANTS)
def test_golden_files(dialect: str, backend: str, tmp_path: Path) -> None:
    files = render_dialect(dialect, backend, tmp_path)
    golden = GOLDEN / dialect / ("" if backend == "-" else backend)
    if os.environ.get("UPDATE_GOLDEN"):
        for rel, text in files.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    expected = {p.relative_to(golden).as_posix(): p.read_text()
                for p in sorted(golden.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected)
    for rel, text in files.items():
        assert text == expected[rel], rel


def test_dialects_share_what_does_not_depend_on_them(tmp_path: Path) -> None:
    """Postfix's master.cf and the Sieve scripts are one text in every dialect; the Postfix
    maps and Dovecot's deny lists are one text in both files-mode versions."""
    renders = {(d, b): render_dialect(d, b, tmp_path / f"{d}-{b}") for d, b in GOLDEN_VARIANTS}
    for rel in ("postfix/master.cf", "dovecot/sieve/bob@example.com.sieve"):
        assert len({files[rel] for files in renders.values()}) == 1, rel
    f23, f24 = renders[("files-2.3", "-")], renders[("files-2.4", "-")]
    assert sorted(f23) == sorted(f24)
    assert [rel for rel in f23 if f23[rel] != f24[rel]] == [
        "dovecot/dovecot.conf", "dovecot/users"]
    # the SQL main.cf differs from the files one only in its lookup tables
    main_files = f23["postfix/main.cf"].splitlines()
    main_sql = renders[("sql-2.4", "postgresql")]["postfix/main.cf"].splitlines()
    changed = [a for a, b in zip(main_files, main_sql, strict=True) if a != b]
    assert changed and all("hash:" in line for line in changed)


def test_every_file_has_the_header_and_names_only_its_own_release() -> None:
    files = render(SNAPSHOT, ROOT)
    for rel, text in files.items():
        assert text.startswith("# generated by mailadmin, do not edit"), rel
        assert "/releases/" not in text.replace(ROOT, ""), rel


def test_shape_of_access_rules() -> None:
    maps = postfix_maps(SNAPSHOT)
    valias = dict(line.split(" ", 1) for line in maps["postfix/valias"].splitlines()[1:])
    # keep-copy: the mailbox itself comes first; suspended dave is dropped from "sales"
    assert valias["alice@example.com"] == "alice@example.com,ext@elsewhere.example"
    assert valias["sales@example.com"] == "alice@example.com,bob@example.com"
    assert valias["@void.example"] == "devnull@discard.mailadmin.invalid"
    assert valias["x.y+z_w-v@void.example"] == "x.y+z_w-v@void.example"
    access = maps["postfix/recipient_access"]
    assert "dave@example.com 550 5.2.1" in access and "to-dave@example.com 550 5.2.1" in access
    assert "example.com 550 5.1.1 No such user here" in access
    assert "alice@example.com DUNNO" in access
    assert maps["postfix/sasl_access"].splitlines()[1:] == [
        "carol@example.com 550 5.7.1 Sending is suspended for this mailbox"]
    deny = render(SNAPSHOT, ROOT)
    assert "bob@example.com" in deny["dovecot/deny.pop3"]
    assert "dave@example.com" in deny["dovecot/deny.imap"]
    assert "reason=" not in deny["dovecot/deny.imap"]


def test_quota_rules_and_sieve_link() -> None:
    users = render(SNAPSHOT, ROOT)["dovecot/users"]
    assert f"userdb_quota_rule=*:storage={10 * 1024**2}B" in users
    # the script is found by the user name, so the passwd-file does not name its release
    assert "bob@example.com" in users and ROOT not in users
    assert f"sieve_before = {ROOT}/dovecot/sieve/%u.sieve" in render(SNAPSHOT, ROOT)[
        "dovecot/dovecot.conf"]
    assert users.count("userdb_quota_rule=*:storage=0") == 5


def test_checksum_is_stable_and_names_the_release_folder() -> None:
    a_sum, a_files = render_release(SNAPSHOT)
    assert (a_sum, a_files) == render_release(SNAPSHOT)
    # the single placeholder render equals a direct render into the release folder
    assert a_files == render(SNAPSHOT, f"/etc/mailadmin/stack/releases/{a_sum}")
    assert f"/etc/mailadmin/stack/releases/{a_sum}/dovecot/users" in (
        a_files["dovecot/dovecot.conf"])
    changed = dataclasses.replace(SNAPSHOT, mailboxes=SNAPSHOT.mailboxes[:-1])
    assert render_release(changed)[0] != a_sum


@pytest.mark.parametrize("local", [
    "a:b", "a b", "a\nb", "A", "a..b", ".a", "a.", 'a"b', "a\\b", "a,b", "a#b", "a$b",
    "a%b", "", "a@b", "a/b", "a*b", "x" * 65, "é",
])
def test_hostile_local_parts_refused(local: str) -> None:
    bad = dataclasses.replace(SNAPSHOT, mailboxes=(mailbox("ok@example.com"),
                                                   MailboxSnap(local, "example.com", HASH, 0,
                                                               True, True, True, False,
                                                               False, False)))
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


@pytest.mark.parametrize("domain", [
    "example", "-a.com", "a-.com", "a..com", "a.com.", "A.com", "a_b.com", "1.2.3.4",
    "a.com\n", "a com.com", "a" * 64 + ".com", "bücher.example",
])
def test_hostile_domains_refused(domain: str) -> None:
    bad = dataclasses.replace(SNAPSHOT, domains=(DomainSnap(domain, "reject", None, None),),
                              mailboxes=(), forwarders=(), autoresponders=())
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


@pytest.mark.parametrize("value", [
    "{SHA512-CRYPT}$6$a:b", "$6$nocheme", "{SHA512-CRYPT}$6$a\nb", "{SHA512-CRYPT}$6$a b",
    "{SHA512-CRYPT}", "{sha}x", "",
])
def test_hostile_password_hashes_refused(value: str) -> None:
    bad = dataclasses.replace(SNAPSHOT, mailboxes=(mailbox("ok@example.com",
                                                           password_hash=value),))
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


@pytest.mark.parametrize(("field", "value"), [
    ("catchall_reject_reason", "bad\nreason"),
    ("catchall_reject_reason", "non-ascii é"),
    ("catchall_reject_reason", " leading space"),
    ("catchall_target", "a b@example.com"),
])
def test_hostile_domain_settings_refused(field: str, value: str) -> None:
    action = "deliver" if field == "catchall_target" else "reject"
    d = dataclasses.replace(SNAPSHOT.domains[0], catchall_action=action, **{field: value})
    bad = dataclasses.replace(SNAPSHOT, domains=(d, *SNAPSHOT.domains[1:]))
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


@pytest.mark.parametrize(("field", "value"), [
    ("mail_root", "/var/v mail"), ("mail_root", "/var/$vmail"), ("mail_root", "relative"),
    ("mail_root", "/var/../etc"), ("run_dir", "/x/" + "r" * 80), ("hostname", "mail"),
    ("postmaster_address", "root"), ("listen_address", "::1"), ("log_dir", "/var/log/%d"),
    ("tls_cert_file", "/etc/cert.pem"),  # a certificate without a key
    ("vmail_uid", 0),
])
def test_hostile_settings_refused(field: str, value: object) -> None:
    bad = dataclasses.replace(SNAPSHOT, settings=dataclasses.replace(SETTINGS,
                                                                     **{field: value}))
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


def test_forwarder_destination_refused() -> None:
    bad = dataclasses.replace(SNAPSHOT, forwarders=(
        ForwarderSnap("x", "example.com", False, ("o'brien@elsewhere.example",)),))
    with pytest.raises(UnsafeName):
        render(bad, ROOT)


@given(st.text(min_size=1, max_size=20))
def test_any_local_part_is_refused_or_harmless(local: str) -> None:
    snap = dataclasses.replace(SNAPSHOT, mailboxes=(mailbox(f"{local}@example.com"),),
                               forwarders=(), autoresponders=())
    try:
        files = render(snap, ROOT)
    except UnsafeName:
        return
    # accepted: one line per mailbox and nothing a map or passwd-file would split on
    assert files["dovecot/users"].count("\n") == 2
    assert not set(local) & set(":, \t\r\n#\"'\\$%/")


def test_registry() -> None:
    assert render(dataclasses.replace(SNAPSHOT, settings=dataclasses.replace(
        SETTINGS, dovecot_version="2.3.19.1")), ROOT) == render(SNAPSHOT, ROOT)
    for mode, version in (("nosuch", "2.3"), ("files", "2.5")):  # not registered
        with pytest.raises(RenderError):
            render(dataclasses.replace(SNAPSHOT, settings=dataclasses.replace(
                SETTINGS, mode=mode, dovecot_version=version)), ROOT)


def test_build_snapshot_uses_a_fixed_number_of_queries(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/db.sqlite")
    Base.metadata.create_all(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    with Session(engine) as s:
        populate(s)
        s.commit()
        statements.clear()
        snap = build_snapshot(s, SETTINGS)
    assert len(statements) == 8, statements  # five + app passwords + DKIM keys + mail nodes
    assert len(snap.mailboxes) == 26 and len(snap.forwarders) == 4
    assert snap.forwarders[-1].destinations  # grouped from the bulk destination query
    team = next(f for f in snap.forwarders if f.local_part == "team")
    assert team.destinations == ("alice@example.test", "carol@other.test",
                                 "someone@elsewhere.test")
    assert [a.address for a in snap.autoresponders] == ["responder@example.test"]
    # the render of the fixture database is accepted by the renderer
    render(dataclasses.replace(snap, settings=SETTINGS), ROOT)


def test_settings_from_server_settings() -> None:
    row = ServerSettings(id=1, mail_hostname="mx.example.net", config_output_dir="/etc/ma",
                         mail_root="/srv/vmail", vmail_uid=6000, vmail_gid=6001,
                         stack_mode="files", dovecot_version="2.3", run_dir="/run/ma",
                         state_dir="/var/lib/ma", queue_dir="/var/spool/ma-postfix",
                         log_dir="/var/log/ma", listen_address="127.0.0.1",
                         imap_listen_port=11143, submission_listen_port=11587,
                         message_size_limit=2 * 1024 * 1024,
                         postmaster_address="hostmaster@example.net")
    settings = settings_from_server_settings(row)
    assert (settings.config_dir, settings.mail_root, settings.vmail_uid) == (
        "/etc/ma", "/srv/vmail", 6000)
    assert (settings.hostname, settings.postmaster_address) == (
        "mx.example.net", "hostmaster@example.net")
    assert (settings.run_dir, settings.state_dir, settings.queue_dir, settings.log_dir) == (
        "/run/ma", "/var/lib/ma", "/var/spool/ma-postfix", "/var/log/ma")
    # unset columns fall back to the column defaults (what an INSERT would store)
    assert (settings.ports.imap, settings.ports.pop3, settings.ports.submission,
            settings.ports.smtp) == (11143, 110, 11587, 25)
    assert settings.listen_address == "127.0.0.1"
    assert settings.message_size_limit == 2 * 1024 * 1024
    assert settings.tls_cert_file is None
    files = render(StackSnapshot(settings, (), (), (), ()), "/etc/ma/releases/x")
    assert "mail_uid = 6000" in files["dovecot/dovecot.conf"]
    assert "/run/ma/dovecot" in files["dovecot/dovecot.conf"]
    assert "message_size_limit = 2097152" in files["postfix/main.cf"]
    # overrides still win
    assert settings_from_server_settings(row, log_dir=None, hostname="h.test").log_dir is None


def test_production_render_is_accepted_by_doveconf_and_postconf(tmp_path: Path) -> None:
    """Standard ports, syslog, no scratch folder: parsed by the real tools (not started).

    `postfix check` is left out on purpose: it would create queue folders under /var.
    """
    require_stack()
    root = tmp_path / "release"
    for rel, text in render(SNAPSHOT, str(root)).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    dove = subprocess.run(["doveconf", "-n", "-c", str(root / "dovecot" / "dovecot.conf")],
                          capture_output=True, text=True, check=False)
    assert dove.returncode == 0, dove.stderr
    assert "port = 143" in dove.stdout and "port = 110" in dove.stdout
    post = subprocess.run(["postconf", "-c", str(root / "postfix"), "-n"],
                          capture_output=True, text=True, check=False)
    assert post.returncode == 0 and "warning" not in post.stderr, post.stderr
    master = subprocess.run(["postconf", "-c", str(root / "postfix"), "-M"],
                            capture_output=True, text=True, check=False)
    assert master.returncode == 0, master.stderr
    assert master.stdout.startswith("25 ") and "\n587 " in master.stdout


def test_write_render_for_inspection(tmp_path: Path) -> None:
    files = write_render(SNAPSHOT, tmp_path / "out")
    assert (tmp_path / "out" / "postfix" / "valias").read_text() == files["postfix/valias"]
    assert f"{tmp_path}/out/dovecot/users" in files["dovecot/dovecot.conf"]
    assert oct((tmp_path / "out" / "dovecot" / "users").stat().st_mode & 0o777) in (
        "0o640", "0o600")
