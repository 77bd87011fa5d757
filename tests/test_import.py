"""`mailadmin import cpanel|csv` and `export csv`: what is imported, what is refused and why,
nothing half-imported, re-runs that change nothing, and tenant boundaries."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from passlib.hash import sha512_crypt
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.hashing import verify_mailbox_password
from mailadmin.imports.cpanel import dovecot_hash
from mailadmin.models import AuditEvent, Autoresponder, Domain, Forwarder, Mailbox
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.resolver import resolve_address

from .cpanel_backup import FAIL_MESSAGE, OLD_PASSWORDS, QUOTAS, build_backup
from .factories import small_package_world

Run = t.Callable[..., Result]
BOX_PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture
def run(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str) -> Result:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    return _run


def snapshot(factory: sessionmaker[Session]) -> dict[str, t.Any]:
    """Everything an import can touch, comparable across runs."""
    with factory() as s:
        return {
            "domains": sorted((d.name, d.owner_id, d.catchall_action, d.catchall_reject_reason,
                               d.catchall_target) for d in s.scalars(select(Domain))),
            "mailboxes": sorted((m.address, m.password_hash, m.quota, m.imap, m.pop3, m.smtp,
                                 m.suspend_login) for m in s.scalars(select(Mailbox))),
            "forwarders": sorted((f.local_part, f.domain.name, f.keep_copy,
                                  tuple(d.address for d in f.destinations))
                                 for f in s.scalars(select(Forwarder))),
            "autoresponders": sorted((a.mailbox.address, a.subject, a.body, a.interval_days)
                                     for a in s.scalars(select(Autoresponder))),
        }


def test_cpanel_backup_is_imported_as_cpanel_would_serve_it(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    backup = build_backup(tmp_path)
    result = run("import", "cpanel", str(backup.path), "--customer", "shopcust")
    assert result.exit_code == 0, result.output
    assert "did create  domain" in result.output
    assert "Not imported" not in result.output  # everything has a counterpart here

    with session_factory() as s:
        names = set(s.scalars(select(Domain.name)))
        assert names == {"shop.test", "blog.test", "old-shop.test"}
        for address, password in OLD_PASSWORDS.items():
            local, _, dom = address.partition("@")
            box = s.scalars(select(Mailbox).join(Domain).where(
                Mailbox.local_part == local, Domain.name == dom)).one()
            assert verify_mailbox_password(password, box.password_hash), address
            assert box.quota == QUOTAS[address]
        ben = s.scalars(select(Mailbox).where(Mailbox.local_part == "ben")).one()
        assert ben.password_hash.startswith("{MD5-CRYPT}$1$")
        anna_reply = s.scalars(select(Autoresponder)).one()
        assert (anna_reply.subject, anna_reply.interval_days) == ("Away this week", 2)
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "mailbox.create")) == 3

        op = Actor.operator()
        sales = resolve_address(s, op, "sales@shop.test")
        assert sales.kind == "forwarder"
        assert [(d.address, d.how) for d in sales.deliveries] == [
            ("anna@shop.test", "mailbox"), ("partner@elsewhere.test", "remote")]
        # a forwarder at a mailbox's address: cPanel delivers to the mailbox too
        ben_route = resolve_address(s, op, "ben@shop.test")
        assert ben_route.kind == "mailbox_forwarding" and ben_route.keep_copy
        assert {d.address for d in ben_route.deliveries} == {"ben@shop.test", "anna@shop.test"}
        # *: :fail: message -> refused at RCPT with that message
        nobody = resolve_address(s, op, "nobody@shop.test")
        assert not nobody.accepted
        assert nobody.rcpt_reply is not None and FAIL_MESSAGE in nobody.rcpt_reply
        assert nobody.rcpt_reply.startswith("550 5.1.1")
        # *: address -> delivered there
        stray = resolve_address(s, op, "stray@blog.test")
        assert stray.accepted and [(d.address, d.how) for d in stray.deliveries] == [
            ("carl@blog.test", "mailbox")]
        info = resolve_address(s, op, "info@blog.test")
        assert [d.address for d in info.deliveries] == ["carl@blog.test"]
        # the domain forwarder: the same name at shop.test, where its rules apply
        moved = resolve_address(s, op, "anna@old-shop.test")
        assert moved.accepted and moved.default_applies
        assert [(d.address, d.how) for d in moved.deliveries] == [("anna@shop.test", "mailbox")]
        assert [(d.address, d.how) for d in resolve_address(
            s, op, "sales@old-shop.test").deliveries] == [
            ("anna@shop.test", "mailbox"), ("partner@elsewhere.test", "remote")]
        assert [d.how for d in resolve_address(s, op, "nobody@old-shop.test").deliveries] \
            == ["bounce"]

    before = snapshot(session_factory)
    again = run("import", "cpanel", str(backup.path), "--customer", "shopcust")
    assert again.exit_code == 0, again.output
    assert "Nothing to change." in again.output
    assert snapshot(session_factory) == before


def test_dry_run_shows_the_changes_and_makes_none(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    backup = build_backup(tmp_path)
    before = snapshot(session_factory)
    result = run("import", "cpanel", str(backup.path), "--customer", "shopcust", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["change", "what", "address", "detail"]
    assert any(line.split()[:4] == ["would", "create", "mailbox", "anna@shop.test"]
               for line in lines)
    assert any("would update  default address  shop.test" in line for line in lines)
    assert snapshot(session_factory) == before


def test_a_malformed_line_is_reported_and_nothing_of_its_domain_imported(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    backup = build_backup(tmp_path)
    shop_va = backup.files["va/shop.test"]
    backup.write("va/shop.test", shop_va.replace("ben@shop.test: anna@shop.test\n",
                                                 "ben@shop.test anna@shop.test\n"))
    result = run("import", "cpanel", str(backup.path), "--customer", "shopcust")
    assert result.exit_code == 1, result.output
    assert "shop.test: nothing of this domain was imported" in result.output
    assert "va/shop.test:2: expected 'address: destination, ...'" in result.output
    with session_factory() as s:
        # the other domains went in whole; nothing at all of shop.test
        assert set(s.scalars(select(Domain.name))) == {"blog.test", "old-shop.test"}
        assert {m.address for m in s.scalars(select(Mailbox))} == {"carl@blog.test"}


def test_a_bad_quota_and_an_unknown_hash_name_their_lines(tmp_path: Path) -> None:
    from mailadmin.imports.cpanel import read_cpanel_account

    backup = build_backup(tmp_path)
    backup.write("homedir/etc/blog.test/quota", "carl:lots\n")
    backup.write("homedir/etc/shop.test/shadow",
                 backup.files["homedir/etc/shop.test/shadow"].replace("$1$", "$9$"))
    plans = {p.name: p for p in read_cpanel_account(backup.path)}
    assert [str(m) for m in plans["blog.test"].malformed] == [
        "homedir/etc/blog.test/quota:1: the quota 'lots' is not a number of bytes"]
    assert [str(m).split(":")[:2] for m in plans["shop.test"].malformed] == [
        ["homedir/etc/shop.test/shadow", "2"]]


def test_package_limits_refuse_the_whole_domain(
    run: Run, tmp_path: Path, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    # alice's small package: 2 GiB per mailbox, 5 GiB in total, no SMTP
    small_package_world(session_factory, make_user)
    backup = build_backup(tmp_path)
    backup.write("homedir/etc/shop.test/quota", f"anna:{3 * 1024**3}\nben:1000\n")
    (backup.path / "vad" / "old-shop.test").unlink()  # the package allows two domains
    result = run("--as", "alice", "import", "cpanel", str(backup.path))
    assert result.exit_code == 1, result.output
    assert "anna@shop.test: Package allows at most 2 GiB per mailbox" in result.output
    with session_factory() as s:
        assert not s.scalars(select(Domain).where(Domain.name == "shop.test")).all()


def test_a_customer_cannot_import_into_another_customers_domain(
    run: Run, tmp_path: Path, session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    small_package_world(session_factory, make_user)  # alice, bert (rita's), carl (rob's)
    op = Actor.operator()
    with transaction(session_factory) as s:
        domains.add_domain(s, op, "shop.test", customer="bert")
        mailboxes.create_mailbox(s, op, "anna@shop.test", BOX_PASSWORD)
    before = snapshot(session_factory)
    backup = build_backup(tmp_path)
    (backup.path / "vad" / "old-shop.test").unlink()

    as_alice = run("--as", "alice", "import", "cpanel", str(backup.path))
    assert as_alice.exit_code == 1
    assert "shop.test: nothing of this domain was imported" in as_alice.output
    assert "already hosted" in as_alice.output
    # a reseller cannot put it under another reseller's customer either
    as_rita = run("--as", "rita", "import", "cpanel", str(backup.path), "--customer", "carl")
    assert "There is no customer 'carl'" in as_rita.output
    # nor the server admin under a customer that does not own it
    as_op = run("import", "cpanel", str(backup.path), "--customer", "alice")
    assert "The domain shop.test belongs to another customer." in as_op.output
    csv_file = tmp_path / "x.csv"
    csv_file.write_text(f"address,password\nanna@shop.test,{BOX_PASSWORD}-changed\n")
    via_csv = run("--as", "alice", "import", "csv", str(csv_file))
    assert via_csv.exit_code == 1
    assert "There is no domain 'shop.test' in your account." in via_csv.output
    exported = run("--as", "alice", "export", "csv", "--domain", "shop.test")
    assert exported.exit_code == 1 and "There is no domain 'shop.test'" in exported.output
    def shop(world: dict[str, t.Any]) -> list[t.Any]:
        return [row for rows in world.values() for row in rows if "shop.test" in str(row)]

    # alice may have imported blog.test, which is nobody's; shop.test is as it was
    assert shop(snapshot(session_factory)) == shop(before)


def test_csv_export_then_import_changes_nothing_and_plaintext_is_hashed(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    run("import", "cpanel", str(build_backup(tmp_path).path), "--customer", "shopcust")
    out = tmp_path / "export.csv"
    exported = run("export", "csv", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text()
    assert text.splitlines()[0] == ("address,password_hash,quota,imap,pop3,smtp,suspend_login,"
                                    "suspend_incoming,suspend_outgoing,forwarders,keep_copy")
    assert "sales@shop.test,,,,,,,,,anna@shop.test partner@elsewhere.test," in text
    before = snapshot(session_factory)
    again = run("import", "csv", str(out))
    assert again.exit_code == 0, again.output
    assert "Nothing to change." in again.output
    assert snapshot(session_factory) == before

    new = tmp_path / "new.csv"
    new.write_text(
        "address,password,quota,imap,pop3,smtp,forwarders\n"
        f"dora@shop.test,{BOX_PASSWORD},200M,yes,no,yes,\n"
        "team@blog.test,,,,,,carl@blog.test dora@shop.test\n"
    )
    first = run("import", "csv", str(new))
    assert first.exit_code == 0, first.output
    with session_factory() as s:
        dora = s.scalars(select(Mailbox).where(Mailbox.local_part == "dora")).one()
        assert verify_mailbox_password(BOX_PASSWORD, dora.password_hash)
        assert (dora.quota, dora.imap, dora.pop3, dora.smtp) == (200 * 1024**2, True, False, True)
    second = run("import", "csv", str(new), "--json")
    assert second.exit_code == 0, second.output
    assert all(not d["changes"] for d in json.loads(second.stdout)["domains"])


def test_csv_bad_rows_name_their_lines_and_hold_back_only_their_domain(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    op = Actor.operator()
    with transaction(session_factory) as s:
        domains.add_domain(s, op, "shop.test", customer="shopcust")
        domains.add_domain(s, op, "blog.test", customer="shopcust")
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(BOX_PASSWORD)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "address,password_hash,imap\n"
        f"anna@shop.test,{hashed},yes\n"
        f"ben@shop.test,{hashed},maybe\n"
        "carl@blog.test,{PLAIN}secret,\n"
        f"dora@blog.test,{hashed},\n"
    )
    result = run("import", "csv", str(bad))
    assert result.exit_code == 1
    assert "bad.csv:3: imap must be yes or no, not 'maybe'" in result.output
    assert "carl@blog.test: Passwords in the cleartext scheme PLAIN are not stored" \
        in result.output
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Mailbox)) == 0


def test_crypt_formats_become_dovecot_schemes() -> None:
    assert dovecot_hash("$6$salt$abc") == "{SHA512-CRYPT}$6$salt$abc"
    assert dovecot_hash("$5$salt$abc") == "{SHA256-CRYPT}$5$salt$abc"
    assert dovecot_hash("$1$salt$abc") == "{MD5-CRYPT}$1$salt$abc"
    assert dovecot_hash("$2y$10$" + "a" * 53) == "{BLF-CRYPT}$2y$10$" + "a" * 53
    assert dovecot_hash("abcdefghijklm") == "{DES-CRYPT}abcdefghijklm"
    assert dovecot_hash("$9$what") is None


def test_hostile_input_never_reaches_the_stored_data(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    make_user("shopcust")
    backup = build_backup(tmp_path)
    # a refusal text Postfix could not carry safely: imported with the default text, and said
    backup.write("va/blog.test", 'info@blog.test: carl@blog.test\n*: :fail: <b>"go away"</b>\n')
    # a local part with a character that means something in a passwd file or a shell
    backup.write("homedir/etc/shop.test/passwd",
                 backup.files["homedir/etc/shop.test/passwd"].replace("ben:", "b$en:"))
    backup.write("homedir/etc/shop.test/shadow",
                 backup.files["homedir/etc/shop.test/shadow"].replace("ben:", "b$en:"))
    result = run("import", "cpanel", str(backup.path), "--customer", "shopcust")
    assert result.exit_code == 1
    assert "b$en@shop.test:" in result.output and "shop.test: nothing of this domain" \
        in result.output
    assert "unknown addresses are refused with 'No such user here' instead (va/blog.test:2)" \
        in result.output
    with session_factory() as s:
        blog = s.scalars(select(Domain).where(Domain.name == "blog.test")).one()
        assert (blog.catchall_action, blog.catchall_reject_reason) == (
            "reject", "No such user here")
        assert not s.scalars(select(Domain).where(Domain.name == "shop.test")).all()
    # a hash smuggling a second passwd line through a quoted CSV cell
    with transaction(session_factory) as s:
        domains.add_domain(s, Actor.operator(), "csv.test", customer="shopcust")
    evil = tmp_path / "evil.csv"
    evil.write_text('address,password_hash\nx@csv.test,"{SHA512-CRYPT}$6$a$b\nroot::0:0::/:"\n')
    smuggled = run("import", "csv", str(evil))
    assert smuggled.exit_code == 1
    assert "x@csv.test: The password hash contains characters" in smuggled.output
    with session_factory() as s:
        assert s.scalars(select(Mailbox).join(Domain).where(Domain.name == "csv.test")).all() \
            == []


def test_a_home_folder_with_the_servers_valiases_imports_only_its_own_domains(
    tmp_path: Path,
) -> None:
    from mailadmin.imports.cpanel import read_cpanel_account

    backup = build_backup(tmp_path)
    home = backup.path / "homedir"
    valiases = tmp_path / "etc-valiases"
    valiases.mkdir()
    for name in ("shop.test", "blog.test"):
        (valiases / name).write_text(backup.files[f"va/{name}"])
    (valiases / "someone-else.test").write_text("*: :blackhole:\n")
    # a login suspended in cPanel ("!" before the hash) stays suspended
    backup.write("homedir/etc/blog.test/shadow",
                 "carl:!" + backup.files["homedir/etc/blog.test/shadow"].split(":", 1)[1])
    plans = {p.name: p for p in read_cpanel_account(home, valiases=valiases)}
    assert set(plans) == {"shop.test", "blog.test"}
    assert plans["shop.test"].default_address is not None
    assert plans["shop.test"].default_address.reject_reason == FAIL_MESSAGE
    carl = plans["blog.test"].mailboxes[0]
    assert carl.suspend_login is True and carl.password_hash is not None
    assert carl.password_hash.startswith("{SHA512-CRYPT}$6$")


def test_plaintext_passwords_are_hashed_in_a_process_pool() -> None:
    from mailadmin.imports.pool import POOL_THRESHOLD, PasswordPool

    told: list[int] = []
    pool = PasswordPool(2, progress=told.append)
    passwords = [f"pool-Passw0rd-{i}" for i in range(POOL_THRESHOLD + 2)]
    hashed = pool.hash_many(passwords, "BLF-CRYPT")
    assert sum(told) == len(passwords)
    assert all(h.startswith("{BLF-CRYPT}$2y$10$") for h in hashed)
    assert pool.verify_many(list(zip(passwords, hashed, strict=True))) == [True] * len(hashed)
    assert pool.verify_many([(p + "x", h) for p, h in zip(passwords, hashed, strict=True)]) \
        == [False] * len(hashed)


def test_a_bulk_import_marks_the_configuration_changed(
    run: Run, tmp_path: Path, make_user: t.Any, session_factory: sessionmaker[Session]
) -> None:
    from mailadmin.services.server import get_server_settings

    make_user("shopcust")
    with transaction(session_factory) as s:
        domains.add_domain(s, Actor.operator(), "csv.test", customer="shopcust")
    with session_factory() as s:
        before = get_server_settings(s).config_changed_at
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(BOX_PASSWORD)
    rows = tmp_path / "rows.csv"
    rows.write_text(f"address,password_hash\na@csv.test,{hashed}\nb@csv.test,{hashed}\n")
    assert run("import", "csv", str(rows)).exit_code == 0
    with session_factory() as s:
        after = get_server_settings(s).config_changed_at
    assert after is not None and (before is None or after > before)


def test_an_import_and_its_rerun_on_every_database(
    backend_session_factory: sessionmaker[Session],
) -> None:
    """The bulk insert (INSERT ... RETURNING for many rows) and the comparison of a re-run, on
    SQLite, PostgreSQL and MariaDB."""
    from mailadmin.imports.csvfile import read_csv
    from mailadmin.models import PanelUser, Role
    from mailadmin.services import accounts
    from mailadmin.workers.importer import run_import

    factory = backend_session_factory
    op = Actor.operator()
    with transaction(factory) as s:
        accounts.create_panel_user(s, op, "dbcust", "correct horse 9", Role.CUSTOMER)
        domains.add_domain(s, op, "db-import.test", customer="dbcust")
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(BOX_PASSWORD)
    text = "address,password_hash,quota,forwarders\n" + "".join(
        f"u{i}@db-import.test,{hashed},{i + 1}M,\n" for i in range(50)
    ) + "team@db-import.test,,,u1@db-import.test u2@db-import.test\n"
    first = run_import(factory, lambda _s: op, read_csv(text))
    assert not first.failed, first.failed
    assert len(first.results[0].changes) == 51
    second = run_import(factory, lambda _s: op, read_csv(text))
    assert not second.failed and second.results[0].changes == []
    with factory() as s:
        boxes = {m.local_part: m for m in s.scalars(select(Mailbox))
                 if m.domain.name == "db-import.test"}
        assert len(boxes) == 50 and boxes["u9"].quota == 10 * 1024**2
        events = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "mailbox.create",
            AuditEvent.object_label.like("%@db-import.test"))).all()
        assert {e.object_id for e in events} == {m.id for m in boxes.values()}
        owner = s.scalars(select(PanelUser).where(PanelUser.username == "dbcust")).one()
        assert {e.customer_id for e in events} == {owner.id}


def test_a_domain_forward_cannot_point_at_itself_or_back(
    session_factory: sessionmaker[Session], make_user: t.Any
) -> None:
    from mailadmin.errors import Conflict, ValidationError

    make_user("shopcust")
    op = Actor.operator()
    with transaction(session_factory) as s:
        domains.add_domain(s, op, "a.test", customer="shopcust")
        domains.add_domain(s, op, "b.test", customer="shopcust")
        domains.set_catchall(s, op, "a.test", "deliver", target="@B.test")
    with session_factory() as s:
        assert s.scalars(select(Domain.catchall_target).where(Domain.name == "a.test")).one() \
            == "@b.test"
        with pytest.raises(ValidationError, match="cannot forward to itself"):
            domains.set_catchall(s, op, "b.test", "deliver", target="@b.test")
        with pytest.raises(Conflict, match="that would be a loop"):
            domains.set_catchall(s, op, "b.test", "deliver", target="@a.test")
        with pytest.raises(ValidationError):
            domains.set_catchall(s, op, "b.test", "deliver", target="@bad domain")
