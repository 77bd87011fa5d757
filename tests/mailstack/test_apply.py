"""Apply against the running servers: refused configs, a crash before the switch, rollback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailadmin.lab.sandbox import prepare_dirs, sandbox_settings
from mailadmin.mailstack import (
    ApplyError,
    apply_snapshot,
    build_snapshot,
    current_release,
    diff_releases,
    rollback,
)
from mailadmin.mailstack.apply import Tools
from mailadmin.mailstack.render import sieve_vacation
from mailadmin.mailstack.snapshot import AutoresponderSnap, StackSnapshot

from .conftest import PASSWORD, Stack, dovecot_hash, eventually, require_stack

pytestmark = pytest.mark.mailstack


def tree_digest(config_dir: str) -> dict[str, str]:
    """Every byte the servers currently read: the link target and the release's files."""
    root = Path(config_dir)
    out = {"current ->": os.readlink(root / "current")}
    current = (root / "current").resolve()
    for p in sorted(current.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(current))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def snapshot_now(stack: Stack) -> StackSnapshot:
    with stack.session() as s:
        return build_snapshot(s, stack.settings)


@pytest.mark.parametrize(
    ("overrides", "tool", "says"),
    [
        # doveconf opens "ssl_cert = <file" and refuses a missing one
        ({"tls_cert_file": "/nonexistent/mailadmin/cert.pem",
          "tls_key_file": "/nonexistent/mailadmin/key.pem"}, "doveconf", "cert.pem"),
        # postfix check cannot chdir into a missing queue directory (the error is in its log)
        ({"queue_dir": "/nonexistent/mailadmin/spool"}, "postfix check", "/nonexistent"),
    ],
)
def test_refused_setting_fails_apply_and_leaves_files_untouched(
    stack: Stack, overrides: dict[str, object], tool: str, says: str
) -> None:
    before = tree_digest(stack.settings.config_dir)
    bad = dataclasses.replace(snapshot_now(stack),
                              settings=dataclasses.replace(stack.settings, **overrides))
    with pytest.raises(ApplyError) as err:
        apply_snapshot(bad)
    assert err.value.stage == "validate"
    assert tool in str(err.value) and says in err.value.output, str(err.value)
    assert tree_digest(stack.settings.config_dir) == before
    assert stack.imap_login("alice@example.test")[0]


CRASH_SCRIPT = textwrap.dedent("""
    import dataclasses, os, signal, sys
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from mailadmin.mailstack import apply_snapshot, build_snapshot
    from mailadmin.lab.sandbox import sandbox_settings
    directory, port_base, new_hash = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = sandbox_settings(directory, port_base, message_size_limit=int(sys.argv[4]))
    with Session(create_engine(f"sqlite:///{directory}/panel.sqlite")) as s:
        snap = build_snapshot(s, settings)
    snap = dataclasses.replace(snap, mailboxes=tuple(
        dataclasses.replace(m, password_hash=new_hash) if m.local_part == "crash" else m
        for m in snap.mailboxes))
    def crash(release):
        print("staged", release.name, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # as hard as a power cut for this process
    apply_snapshot(snap, before_switch=crash)
    print("not reached", flush=True)
""")


def test_crash_between_writing_and_switching_keeps_old_config(stack: Stack) -> None:
    user = "crash@example.test"
    before = tree_digest(stack.settings.config_dir)
    new_hash = dovecot_hash("after-crash-pw")
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(stack.info.dir), str(stack.ports.smtp - 25),
         new_hash, str(stack.settings.message_size_limit)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == -9, proc.stderr
    staged = proc.stdout.split()[1]
    assert (Path(stack.settings.config_dir) / "releases" / staged / "dovecot" / "users").exists()
    # the written, validated release is on disk but not in force
    assert current_release(stack.settings.config_dir) != staged
    assert tree_digest(stack.settings.config_dir) == before
    assert stack.imap_login(user, PASSWORD)[0]
    assert not stack.imap_login(user, "after-crash-pw")[0]


def test_rollback_and_diff(stack: Stack) -> None:
    first = current_release(stack.settings.config_dir)
    assert first is not None
    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").imap = False
        s.commit()
    changed = stack.reapply()
    assert changed.changed and changed.previous == first
    diff = diff_releases(stack.settings.config_dir, first, changed.checksum)
    # the only change is one deny line; release paths do not show up as changes
    assert [line for line in diff.splitlines() if line[:1] in "+-"
            and not line.startswith(("+++", "---"))] == ["+bob@example.test:::::::nodelay"]
    assert eventually(lambda: not stack.imap_login("bob@example.test")[0])

    back = rollback(stack.settings.config_dir, first)
    assert back.changed and current_release(stack.settings.config_dir) == first
    assert eventually(lambda: stack.imap_login("bob@example.test")[0])

    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").imap = True
        s.commit()
    # the database now says what the rolled-back release says: same checksum, no switch
    again = stack.reapply()
    assert again.checksum == first and not again.changed


def test_hostile_autoresponder_text_compiles_with_sievec(stack: Stack, tmp_path: Path) -> None:
    script = sieve_vacation(AutoresponderSnap(
        address="alice@example.test",
        subject='quote " backslash \\ dollar ${x} "; discard;',
        body='.\n..\n"; discard; vacation "x";\n\\\n.\ntext:\nend',
        starts_at=None, ends_at=None, interval_days=3,
    ))
    path = tmp_path / "v.sieve"
    path.write_text(script)
    conf = Path(stack.settings.config_dir) / "current" / "dovecot" / "dovecot.conf"
    proc = subprocess.run(["sievec", "-c", str(conf), str(path), str(tmp_path / "v.svbin")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    dump = subprocess.run(["sieve-dump", "-c", str(conf), str(tmp_path / "v.svbin")],
                          capture_output=True, text=True, check=False).stdout
    # one vacation action and no injected discard
    assert dump.count("VACATION") == 1 and "DISCARD" not in dump, dump


@pytest.mark.parametrize(("starts", "ends", "answers"), [
    (None, None, True),
    ("2000-01-01", "2999-01-01", True),
    ("2999-01-01", None, False),   # not started yet
    (None, "2000-01-01", False),   # over
])
def test_autoresponder_period_is_enforced_by_pigeonhole(
    stack: Stack, starts: str | None, ends: str | None, answers: bool
) -> None:
    def when(day: str | None) -> dt.datetime | None:
        return None if day is None else dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)

    # sieve-test drops to the vmail user: pytest's 0700 tmp_path is unreadable for it
    work = stack.info.dir / f"sieve-test-{starts}-{ends}"
    work.mkdir(mode=0o755)
    script = work / "v.sieve"
    script.write_text(sieve_vacation(AutoresponderSnap(
        "alice@example.test", "Away", "Back soon.", when(starts), when(ends), 1)))
    mail = work / "m.eml"
    mail.write_text("From: x@remote.test\nTo: alice@example.test\nSubject: hi\n\nbody\n")
    conf = Path(stack.settings.config_dir) / "current" / "dovecot" / "dovecot.conf"
    proc = subprocess.run(["sieve-test", "-c", str(conf), str(script), str(mail)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert ("send vacation message" in proc.stdout) is answers, proc.stdout


def test_failed_reload_puts_the_previous_release_back(stack: Stack) -> None:
    before = tree_digest(stack.settings.config_dir)
    work = stack.info.dir / "fake-tools"
    work.mkdir(exist_ok=True)
    fake = work / "doveadm"
    # fails once (the reload of the new release), then behaves like the real doveadm
    fake.write_text(f"#!/bin/sh\nif [ ! -e {work}/failed ]; then touch {work}/failed; "
                    "echo 'doveadm: simulated reload failure' >&2; exit 75; fi\n"
                    'exec doveadm "$@"\n')
    fake.chmod(0o755)
    snap = snapshot_now(stack)
    changed = dataclasses.replace(snap, mailboxes=tuple(
        dataclasses.replace(m, imap=False) if m.local_part == "alice" else m
        for m in snap.mailboxes))
    with pytest.raises(ApplyError) as err:
        apply_snapshot(changed, tools=Tools(doveadm=str(fake)))
    assert err.value.stage == "reload" and "simulated reload failure" in err.value.output
    assert tree_digest(stack.settings.config_dir) == before
    assert stack.imap_login("alice@example.test")[0]


def test_tls_settings_validate_with_the_real_tools(tmp_path: Path) -> None:
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mst-tls-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        cert, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=mail.sandbox.test", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True)
        settings = sandbox_settings(directory, 20000, tls_cert_file=str(cert),
                                    tls_key_file=str(key))
        prepare_dirs(settings)
        snap = StackSnapshot(settings, (), (), (), ())
        result = apply_snapshot(snap, reload=False)
        conf = (result.release_dir / "dovecot" / "dovecot.conf").read_text()
        assert "ssl = yes" in conf and f"ssl_cert = <{cert}" in conf
        assert "smtpd_tls_security_level=encrypt" in (
            result.release_dir / "postfix" / "master.cf").read_text()
        # the private key never lands in the validation output
        assert "PRIVATE KEY" not in result.validation_output
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_concurrent_applies_are_serialised(tmp_path: Path) -> None:
    require_stack()
    directory = Path(tempfile.mkdtemp(prefix="mst-conc-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        settings = sandbox_settings(directory, 20000)
        prepare_dirs(settings)
        snaps = [StackSnapshot(dataclasses.replace(settings, message_size_limit=2**20 + i),
                               (), (), (), ()) for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda sn: apply_snapshot(sn, reload=False), snaps))
        assert len({r.checksum for r in results}) == 4
        assert current_release(settings.config_dir) in {r.checksum for r in results}
        assert not list((directory / "config" / "releases").glob(".staging-*"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_sandbox_apply_with_restart(stack: Stack) -> None:
    state = stack.info.dir / "sandbox.json"
    pid_before = json.loads(state.read_text())["dovecot_pid"]
    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").pop3 = False
        s.commit()
    t0 = time.monotonic()
    result = stack.reapply(restart=True)
    # restarted, so the very next connection sees the change; no polling needed
    assert result.changed and not stack.pop3_login("bob@example.test")[0]
    elapsed = time.monotonic() - t0
    assert json.loads(state.read_text())["dovecot_pid"] != pid_before
    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").pop3 = True
        s.commit()
    stack.reapply(restart=True)
    assert stack.pop3_login("bob@example.test")[0]
    print(f"apply + restart until visible: {elapsed:.2f}s")
