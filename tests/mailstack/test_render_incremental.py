"""The incremental render equals the full render of the same database, byte for byte.

Random changes are committed through a change-tracked session (so the per-domain stamps of
`services.changes` decide which domains are redone, as in production); after each commit the
release made from the release in force and the changed domains (`render_release_incremental`)
is compared file by file with a full render. No servers: releases are written as files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.db import make_session_factory
from mailadmin.mailstack import (
    build_snapshot,
    incremental_release,
    render_release,
    render_release_incremental,
)
from mailadmin.mailstack.render import incremental as render_incremental
from mailadmin.mailstack.snapshot import StackSettings, changed_domains
from mailadmin.models import (
    AppPassword,
    Autoresponder,
    Base,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    PanelUser,
    ServerSettings,
)
from mailadmin.services import changes
from tests.databases import throwaway_database

HASH = "{SHA512-CRYPT}$6$rounds=5000$saltsaltsaltsalt$" + "h" * 86


def settings_for(tmp_path: Path, version: str) -> StackSettings:
    return StackSettings(
        hostname="mail.example.net", postmaster_address="postmaster@example.net",
        config_dir=str(tmp_path / "config"), run_dir="/run/mi", state_dir="/var/lib/mi",
        queue_dir="/var/spool/mi", mail_root="/var/mail/mi", log_dir=None,
        dovecot_version=version)


def install(settings: StackSettings, checksum: str, files: dict[str, str]) -> None:
    """Write a release and point ``current`` at it (what apply does, minus the tools)."""
    config = Path(settings.config_dir)
    release = config / "releases" / checksum
    for rel, text in files.items():
        (release / rel).parent.mkdir(parents=True, exist_ok=True)
        (release / rel).write_text(text)
    link = config / "current.new"
    link.symlink_to(f"releases/{checksum}")
    os.replace(link, config / "current")


def seed(s: Session, rng: random.Random) -> None:
    s.add(ServerSettings(id=1))
    s.flush()
    owners = [PanelUser(username=f"c{i}", role="customer", password_hash="x") for i in range(3)]
    s.add_all(owners)
    s.flush()
    for d in range(8):
        dom = Domain(name=f"d{d}.test", owner_id=owners[d % 3].id, catchall_action="reject")
        s.add(dom)
        s.flush()
        for i in range(6):
            s.add(Mailbox(domain_id=dom.id, local_part=f"u{i}", password_hash=HASH,
                          quota=i * 1024, imap=i != 1, suspend_incoming=i == 2))
    s.flush()
    for _ in range(10):
        add_forwarder(s, rng)
    for _ in range(4):
        add_autoresponder(s, rng)


def mailboxes(s: Session) -> list[Mailbox]:
    return list(s.scalars(select(Mailbox).order_by(Mailbox.id)))


def domains(s: Session) -> list[Domain]:
    return list(s.scalars(select(Domain).order_by(Domain.id)))


def address(m: Mailbox) -> str:
    return f"{m.local_part}@{m.domain.name}"


def add_forwarder(s: Session, rng: random.Random) -> None:
    dom = rng.choice(domains(s))
    local = f"f{rng.randrange(10**6)}"
    targets = {address(m) for m in rng.sample(mailboxes(s), 2)} | {"out@remote.example"}
    f = Forwarder(domain_id=dom.id, local_part=local, keep_copy=rng.random() < 0.3)
    f.destinations = [ForwarderDestination(address=a, position=i)
                      for i, a in enumerate(sorted(targets))]
    s.add(f)


def add_autoresponder(s: Session, rng: random.Random) -> None:
    m = rng.choice(mailboxes(s))
    if s.scalar(select(Autoresponder).where(Autoresponder.mailbox_id == m.id)) is None:
        s.add(Autoresponder(mailbox_id=m.id, subject="Away", body=f"Back {rng.random()}",
                            interval_days=1))


def delete_mailbox(s: Session, m: Mailbox) -> None:
    for child in (*s.scalars(select(Autoresponder).where(Autoresponder.mailbox_id == m.id)),
                  *s.scalars(select(AppPassword).where(AppPassword.mailbox_id == m.id))):
        s.delete(child)
    s.flush()
    s.delete(m)


def delete_domain(s: Session, dom: Domain) -> None:
    for m in s.scalars(select(Mailbox).where(Mailbox.domain_id == dom.id)):
        delete_mailbox(s, m)
    for f in s.scalars(select(Forwarder).where(Forwarder.domain_id == dom.id)):
        s.delete(f)
    s.flush()
    s.delete(dom)


def random_change(s: Session, rng: random.Random, step: int) -> str:
    kind = rng.choice(["password", "flag", "flag", "quota", "add_mailbox", "delete_mailbox",
                       "forwarder", "delete_forwarder", "catchall", "autoresponder",
                       "app_password", "customer", "add_domain", "delete_domain",
                       "pending", "rename"])
    m = rng.choice(mailboxes(s))
    dom = rng.choice(domains(s))
    if kind == "password":
        m.password_hash = HASH.replace("h" * 8, f"{step:08d}", 1)
    elif kind == "flag":
        name = rng.choice(["imap", "pop3", "smtp", "suspend_login", "suspend_incoming",
                           "suspend_outgoing", "app_passwords_only"])
        setattr(m, name, not getattr(m, name))
    elif kind == "quota":
        m.quota = rng.randrange(10) * 2**20
    elif kind == "add_mailbox":
        s.add(Mailbox(domain_id=dom.id, local_part=f"n{step}", password_hash=HASH,
                      suspend_incoming=rng.random() < 0.3))
    elif kind == "delete_mailbox":
        delete_mailbox(s, m)
    elif kind == "forwarder":
        add_forwarder(s, rng)
    elif kind == "delete_forwarder":
        f = s.scalar(select(Forwarder).order_by(Forwarder.id).limit(1))
        if f is not None:
            s.delete(f)
    elif kind == "catchall":
        action = rng.choice(["reject", "discard", "deliver"])
        dom.catchall_action = action
        dom.catchall_target = address(m) if action == "deliver" else None
        dom.catchall_reject_reason = f"Nobody at {address(m)} here" if action == "reject" \
            and rng.random() < 0.5 else None
    elif kind == "autoresponder":
        add_autoresponder(s, rng)
    elif kind == "app_password":
        used = set(s.scalars(select(AppPassword.slot).where(AppPassword.mailbox_id == m.id)))
        free = [slot for slot in range(1, 9) if slot not in used]
        if free:
            s.add(AppPassword(mailbox_id=m.id, slot=free[0], label=f"l{step}",
                              password_hash=HASH, imap=True, smtp=rng.random() < 0.5))
    elif kind == "customer":
        owner = s.get(PanelUser, dom.owner_id)
        assert owner is not None
        owner.is_suspended = not owner.is_suspended
    elif kind == "add_domain":
        new = Domain(name=f"new{step}.test", owner_id=dom.owner_id, catchall_action="discard")
        s.add(new)
        s.flush()
        s.add(Mailbox(domain_id=new.id, local_part="first", password_hash=HASH))
    elif kind == "delete_domain":
        if len(domains(s)) > 3:
            delete_domain(s, dom)
    elif kind == "pending":
        dom.pending = not dom.pending
    elif kind == "rename":
        dom.name = f"renamed{step}.test"
    return kind


@pytest.mark.parametrize(("backend", "version", "search"), [
    ("sqlite", "2.3", False), ("sqlite", "2.4", False), ("sqlite", "2.3", True),
    ("sqlite", "2.4", True),
    # the domain order is the database's collation: the splice must follow it
    ("postgresql", "2.3", True), ("mariadb", "2.4", True)])
def test_incremental_equals_full_render(tmp_path: Path, backend: str, version: str,
                                        search: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if search:  # every keyed file takes the text-search path meant for big files
        monkeypatch.setattr(render_incremental, "_SMALL", 0)
    rng = random.Random(f"{version}-{search}")
    with throwaway_database(backend, tmp_path) as url:
        engine = create_engine(url)
        try:
            check_random_changes(engine, tmp_path, version, rng)
        finally:
            engine.dispose()


def check_random_changes(engine: Engine, tmp_path: Path, version: str,
                         rng: random.Random) -> None:
    if engine.dialect.name == "postgresql":
        # the model's search index needs pg_trgm (migration 0017 creates it the same way)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    Base.metadata.create_all(engine)
    factory: sessionmaker[Session] = make_session_factory(engine)
    settings = settings_for(tmp_path, version)
    with factory() as s:
        seed(s, rng)
        s.commit()
        checksum, files = render_release(build_snapshot(s, settings))
    install(settings, checksum, files)
    kinds = []
    partial_steps = 0
    for step in range(60):
        with factory() as s:
            watermark = s.scalar(select(ServerSettings.config_changed_at))
            assert watermark is not None
            for sub in range(rng.randint(1, 3)):
                kinds.append(random_change(s, rng, step * 10 + sub))
                s.flush()
            s.commit()
        with factory() as s:
            inc = incremental_release(s, settings, watermark)
            full_snapshot = build_snapshot(s, settings)
            full_sum, full = render_release(full_snapshot)
        assert inc is not None, kinds[-3:]
        assert sorted(inc.files) == sorted(full), kinds[-3:]
        for rel, text in full.items():  # the folder name aside, to name the first culprit
            assert inc.files[rel].replace(inc.checksum, "<release>") == text.replace(
                full_sum, "<release>"), (rel, kinds[-3:])
        assert inc.checksum == full_sum
        partial_steps += len(inc.domains) < len(full_snapshot.domains)
        install(settings, full_sum, full)
    assert len(set(kinds)) >= 12
    assert partial_steps >= 20  # most steps did redo a part only


def test_a_change_redoes_only_its_domain(tmp_path: Path) -> None:
    """One password: one domain rendered, every file but the passwd-file reused as is."""
    engine = create_engine(f"sqlite:///{tmp_path / 'panel.sqlite'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    settings = settings_for(tmp_path, "2.4")
    with factory() as s:
        seed(s, random.Random(1))
        s.commit()
        install(settings, *render_release(build_snapshot(s, settings)))
        watermark = s.scalar(select(ServerSettings.config_changed_at))
        assert watermark is not None
        m = s.scalar(select(Mailbox).where(Mailbox.local_part == "u3").limit(1))
        assert m is not None
        m.password_hash = HASH.replace("h", "k")
        s.commit()
        changed = changed_domains(s, watermark)
        # and the domains forwarding to it (whether a mailbox there takes mail matters)
        assert m.domain.name in changed and len(changed) < 8
        inc = render_release_incremental(build_snapshot(s, settings, domains=changed))
    assert inc is not None
    assert sorted(set(inc.files) - inc.unchanged) == ["dovecot/dovecot.conf",
                                                       "dovecot/users", "postfix/main.cf",
                                                       "postfix/master.cf"]


def test_declines_when_settings_differ(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'panel.sqlite'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    settings = settings_for(tmp_path, "2.3")
    with factory() as s:
        seed(s, random.Random(2))
        s.commit()
        install(settings, *render_release(build_snapshot(s, settings)))
        other = dataclasses.replace(settings, mail_root="/srv/mail")
        assert render_release_incremental(build_snapshot(s, other, domains=set())) is None
        assert render_release_incremental(build_snapshot(s, settings)) is None  # full one
        same = render_release_incremental(build_snapshot(s, settings, domains=set()))
    assert same is not None and same.checksum == Path(
        os.readlink(Path(settings.config_dir) / "current")).name


def test_stamps_follow_the_commit(tmp_path: Path) -> None:
    """A domain is stamped with its commit's config_changed_at; untouched ones are not."""
    engine = create_engine(f"sqlite:///{tmp_path / 'panel.sqlite'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as s:
        seed(s, random.Random(3))
        s.commit()
        before = s.scalar(select(ServerSettings.config_changed_at))
        assert before is not None
        f = s.scalar(select(ForwarderDestination).limit(1))
        assert f is not None
        f.address = "moved@remote.example"
        s.commit()
        stamp = s.scalar(select(ServerSettings.config_changed_at))
        stamped = {d.name for d in domains(s) if d.config_changed_at is not None
                   and d.config_changed_at > before}
        assert stamped == {f.forwarder.domain.name}
        assert s.scalar(select(Domain.config_changed_at).where(
            Domain.name.in_(stamped))) == stamp
        assert stamp is not None and stamp > before - dt.timedelta(0)


def test_bulk_statements_stamp_what_they_name(tmp_path: Path) -> None:
    """`mark_changed` (after a bulk statement) stamps the domains it names, or every one."""
    engine = create_engine(f"sqlite:///{tmp_path / 'panel.sqlite'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as s:
        seed(s, random.Random(4))
        s.commit()
        one = domains(s)[1]
        before = s.scalar(select(ServerSettings.config_changed_at))
        assert before is not None
        changes.mark_changed(s, [one.id])
        s.commit()
        assert changed_domains(s, before) >= {one.name}
        assert len(changed_domains(s, before)) < len(domains(s))
        middle = s.scalar(select(ServerSettings.config_changed_at))
        assert middle is not None
        changes.mark_changed(s)
        s.commit()
        assert changed_domains(s, middle) == {d.name for d in domains(s)}
