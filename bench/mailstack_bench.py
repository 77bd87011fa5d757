"""Time to render and apply the files-mode config for 100,000 mailboxes, and one change.

Run as root (apply validates with the real doveconf / postfix / postmap / sievec, and the
optional servers run as root):

    .venv/bin/python bench/mailstack_bench.py [--mailboxes 100000] [--servers]

Steps timed: database fill (setup, not part of the figures), snapshot (bulk queries),
render (pure), first apply (write + postmap + sievec + doveconf/postfix check + switch),
then one changed password: snapshot + render + apply (incremental: only the changed domain
is read and rendered, `--full` does it the old way: everything). With --servers, Dovecot and Postfix
run from the release and the one-change apply reloads them; the figure then includes the
time until an IMAP login with the new password succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from passlib.hash import sha512_crypt
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailadmin.db import make_session_factory
from mailadmin.lab.sandbox import (
    ensure_vmail_user,
    free_port_base,
    prepare_dirs,
    sandbox_settings,
    start_sandbox,
    stop_sandbox,
)
from mailadmin.mailstack import (
    apply_files,
    build_snapshot,
    render_release,
    render_release_incremental,
)
from mailadmin.mailstack.snapshot import changed_domains
from mailadmin.models import (
    Autoresponder,
    Base,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
    PanelUser,
    ServerSettings,
)
from mailadmin.models.base import utcnow


class _SourcedIMAP(imaplib.IMAP4):
    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def dovecot_hash(pw: str) -> str:
    return "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(pw)


def fill(session: Session, mailboxes: int, per_domain: int) -> None:
    """Bulk inserts: one shared hash (100,000 SHA-crypt hashes would take minutes)."""
    pw = dovecot_hash("bench-password")
    session.execute(insert(ServerSettings), [{"id": 1, "config_changed_at": utcnow()}])
    session.execute(insert(PanelUser), [{"id": 1, "username": "c", "role": "customer",
                                         "password_hash": "x"}])
    n_domains = max(1, mailboxes // per_domain)
    actions = ("reject", "discard", "deliver")
    session.execute(insert(Domain), [
        {"id": d + 1, "name": f"d{d}.example", "owner_id": 1,
         "catchall_action": actions[d % 3],
         "catchall_target": f"u0@d{d}.example" if d % 3 == 2 else None}
        for d in range(n_domains)
    ])
    session.execute(insert(Mailbox), [
        {"id": i + 1, "domain_id": i // per_domain + 1, "local_part": f"u{i % per_domain}",
         "password_hash": pw, "quota": (i % 5) * 1024**3, "imap": i % 7 != 0,
         "pop3": i % 11 != 0, "smtp": i % 13 != 0, "suspend_login": i % 101 == 0,
         "suspend_incoming": i % 103 == 0, "suspend_outgoing": i % 107 == 0}
        for i in range(mailboxes)
    ])
    forwarders = mailboxes // 10
    session.execute(insert(Forwarder), [
        {"id": f + 1, "domain_id": f % n_domains + 1, "local_part": f"alias{f}",
         "keep_copy": False}
        for f in range(forwarders)
    ])
    session.execute(insert(ForwarderDestination), [
        {"forwarder_id": f + 1, "address": addr, "position": k}
        for f in range(forwarders)
        for k, addr in enumerate((f"u0@d{f % n_domains}.example", f"ext{f}@remote.example"))
    ])
    session.execute(insert(Autoresponder), [
        {"mailbox_id": i + 1, "subject": "Away", "body": "Back soon.", "interval_days": 1}
        for i in range(0, mailboxes, 100)
    ])
    session.commit()


def timed(label: str, results: dict[str, float]) -> _Timer:
    return _Timer(label, results)


class _Timer:
    def __init__(self, label: str, results: dict[str, float]) -> None:
        self.label, self.results = label, results

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.results[self.label] = time.perf_counter() - self.t0
        print(f"{self.label:<44} {self.results[self.label]:8.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--per-domain", type=int, default=100)
    parser.add_argument("--servers", action="store_true",
                        help="run Dovecot + Postfix and reload them on the change")
    parser.add_argument("--port-base", type=int, default=None,
                        help="default: the first free range from 20000 up")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--full", action="store_true",
                        help="one change by a full snapshot and render (the old way)")
    args = parser.parse_args()

    if args.port_base is None:
        args.port_base = free_port_base()
    directory = Path(tempfile.mkdtemp(prefix="msb-", dir="/tmp"))
    directory.chmod(0o755)
    results: dict[str, float] = {}
    try:
        settings = sandbox_settings(directory, args.port_base)
        ensure_vmail_user(settings.vmail_uid, settings.vmail_gid)
        prepare_dirs(settings)
        engine = create_engine(f"sqlite:///{directory}/panel.sqlite")
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            with timed(f"setup: fill database ({args.mailboxes} mailboxes)", results):
                fill(s, args.mailboxes, args.per_domain)
            with timed("snapshot (bulk queries)", results):
                snap = build_snapshot(s, settings)
        print(f"  {len(snap.domains)} domains, {len(snap.mailboxes)} mailboxes, "
              f"{len(snap.forwarders)} forwarders, {len(snap.autoresponders)} autoresponders")
        with timed("render_release (one render + checksum)", results):
            checksum, files = render_release(snap)
        size = sum(len(t) for t in files.values())
        print(f"  {len(files)} files, {size / 1e6:.1f} MB")
        with timed("first apply: write+postmap+sievec+validate+switch", results):
            first = apply_files(settings.config_dir, checksum, files, reload=False)
        assert first.checksum == checksum
        print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in first.timings.items()))
        if args.servers:
            info = start_sandbox(directory, args.port_base)
            print(f"  servers up in {info.startup_seconds:.2f}s")

        factory = make_session_factory(engine)  # tracks changes: stamps the domain
        with factory() as s:
            watermark = s.scalar(select(ServerSettings.config_changed_at))
            # mailbox id 2 (u1@d0.example) has every protocol allowed and no suspension
            mailbox = s.get(Mailbox, 2)
            assert mailbox is not None
            mailbox.password_hash = dovecot_hash("changed-password")
            s.commit()
            t0 = time.perf_counter()
            if args.full:
                with timed("one change: snapshot (full)", results):
                    snap2 = build_snapshot(s, settings)
            else:
                with timed("one change: snapshot (changed domains)", results):
                    changed = changed_domains(s, watermark)  # type: ignore[arg-type]
                    snap2 = build_snapshot(s, settings, domains=changed)
                print(f"  changed domains: {sorted(changed)}")
        base: str | None = None
        unchanged: frozenset[str] = frozenset()
        if args.full:
            with timed("one change: render (full)", results):
                checksum2, files2 = render_release(snap2)
        else:
            with timed("one change: render (incremental)", results):
                inc = render_release_incremental(snap2)
            assert inc is not None, "the incremental render declined"
            checksum2, files2 = inc.checksum, inc.files
            base, unchanged = inc.base, inc.unchanged
            print(f"  {len(files2) - len(unchanged)} of {len(files2)} files new")
        with timed("one change: apply" + (" + reload" if args.servers else ""), results):
            second = apply_files(settings.config_dir, checksum2, files2, reload=args.servers,
                                 base=base, unchanged=unchanged)
        assert second.changed and second.checksum != first.checksum
        print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in second.timings.items()))
        if args.servers:
            user = "u1@d0.example"
            deadline = time.monotonic() + 30
            for n in range(1, 10_000):
                # a fresh source address per try: a failed login delays the next one from
                # the same address by 4 s or more (Dovecot's auth penalty)
                src = f"127.9.{n // 250}.{n % 250 + 1}"
                c = _SourcedIMAP(src, args.port_base + 143)
                try:
                    c.login(user, "changed-password")
                    c.logout()
                    break
                except imaplib.IMAP4.error:
                    if time.monotonic() > deadline:
                        raise SystemExit("the change never reached IMAP") from None
                    time.sleep(0.05)
                finally:
                    with contextlib.suppress(OSError):
                        c.shutdown()
            results["one change: until IMAP sees it"] = time.perf_counter() - t0
            print(f"{'one change: DB commit -> IMAP login works':<44} "
                  f"{results['one change: until IMAP sees it']:8.2f} s")
        total = sum(v for k, v in results.items() if k.startswith("one change:")
                    and "IMAP" not in k)
        print(f"{'one change: total (snapshot+render+apply)':<44} {total:8.2f} s")
    finally:
        stop_sandbox(directory)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
