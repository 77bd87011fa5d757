"""Render a rich set of snapshots in every dialect and write the files under OUT.

Used to prove a renderer refactoring changes no output:
``python scripts/render_snapshots.py /tmp/before`` on the old code, then on the new code into
another folder, then ``diff -r``. Deterministic: fixed paths, fixed data.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from mailadmin.mailstack import StackPorts, StackSnapshot, build_snapshot, render
from mailadmin.models import Base
from tests.mailstack.conftest import populate
from tests.mailstack.test_render import HASH, ROOT, SETTINGS, SNAPSHOT

BASE = Path("/tmp/mailadmin-render-snapshots")  # noqa: S108 - fixed on purpose: it is rendered
BACKENDS = {
    "sqlite": {"backend": "sqlite", "path": "/var/lib/mailadmin/panel.sqlite"},
    "postgresql": {"backend": "postgresql", "host": "127.0.0.1", "port": 5432,
                   "dbname": "mailadmin", "user": "mailsrv"},
    "mysql": {"backend": "mysql", "host": "db.example.net", "port": 3306,
              "dbname": "mailadmin", "user": "mailsrv"},
}
TABLES = ("domains", "mailboxes", "aliases", "catchall", "recipient_access", "sender_login",
          "sasl_access")


def config_dir(backend: str) -> str:
    d = BASE / backend
    access = d / "sql-access"
    (access / "postfix").mkdir(parents=True, exist_ok=True)
    (access / "access.json").write_text(json.dumps(BACKENDS[backend]))
    for t in TABLES:
        (access / "postfix" / f"{t}.cf").write_text("x\n")
    return str(d)


def snapshots() -> dict[str, StackSnapshot]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        populate(s)
        s.flush()
        db = build_snapshot(s, SETTINGS)
    # populate() hashes with a random salt: fix the hashes so renders compare
    db = dataclasses.replace(db, mailboxes=tuple(
        dataclasses.replace(m, password_hash=HASH) for m in db.mailboxes))
    rich = dataclasses.replace(
        SETTINGS, log_dir="/var/log/mailadmin", tls_cert_file="/etc/ssl/mail.pem",
        tls_key_file="/etc/ssl/mail.key", auth_failure_delay=0, deliver_outbound=False,
        reveal_deny_reason=True, listen_address="127.0.0.1", ports=StackPorts.from_base(45000),
        vmail_uid=6000, vmail_gid=6001, message_size_limit=2048, instance_name="lab-1")
    return {
        "golden": SNAPSHOT,
        "rich": dataclasses.replace(SNAPSHOT, settings=rich),
        "db": db,
        "db-rich": dataclasses.replace(db, settings=rich),
        "empty": StackSnapshot(SETTINGS, (), (), (), ()),
    }


def main(out: Path) -> None:
    for name, snap in snapshots().items():
        for mode, version in (("files", "2.3"), ("files", "2.4"), ("sql", "2.3"), ("sql", "2.4")):
            backends = ["-"] if mode == "files" else list(BACKENDS)
            for backend in backends:
                settings = dataclasses.replace(snap.settings, mode=mode, dovecot_version=version)
                if backend != "-":
                    settings = dataclasses.replace(settings, config_dir=config_dir(backend))
                files = render(dataclasses.replace(snap, settings=settings), ROOT)
                target = out / name / f"{mode}-{version}" / backend
                for rel, text in files.items():
                    (target / rel).parent.mkdir(parents=True, exist_ok=True)
                    (target / rel).write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
