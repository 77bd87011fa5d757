"""The operator's tools trust nothing they did not create: `render --out`, `config diff`."""

from __future__ import annotations

import os
import stat
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from mailadmin.cli import main
from mailadmin.db import transaction
from mailadmin.services import domains, mailboxes
from mailadmin.services.context import Actor
from mailadmin.services.stack import mask_secrets

OP = Actor.operator()
PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture
def run(tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", str(sqlite_engine.url))
    runner = CliRunner()

    def _run(*args: str) -> t.Any:
        return runner.invoke(main, ["--instance", str(tmp_path / "inst"), *args])

    return _run


@pytest.fixture
def mail(make_user: t.Any, session_factory: sessionmaker[t.Any]) -> None:
    make_user("alice", "customer")
    with transaction(session_factory) as s:
        domains.add_domain(s, OP, "tools.example", customer="alice")
        mailboxes.create_mailbox(s, OP, "anna@tools.example", PASSWORD)


def _tree(folder: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirs, names in os.walk(folder):
        for name in (*dirs, *names):
            p = Path(dirpath) / name
            st = p.lstat()
            body: bytes | str = (os.readlink(p) if p.is_symlink()
                                 else p.read_bytes() if p.is_file() else b"")
            out[str(p.relative_to(folder))] = (st.st_mode, body)
    return out


def test_render_replaces_a_folder_and_writes_nothing_through_links(
        run: t.Any, mail: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run("render", "--out", str(out))
    assert first.exit_code == 0, first.output
    assert "anna@tools.example:{SHA512-CRYPT}" in (out / "dovecot" / "users").read_text()
    (out / "stale.txt").write_text("left over")
    again = run("render", "--out", str(out))
    assert again.exit_code == 0, again.output
    assert not (out / "stale.txt").exists()  # a fresh folder replaced the old one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]

    # someone plants links to files the operator (root) must not touch
    target_dir = tmp_path / "precious"
    target_dir.mkdir(mode=0o700)
    target = target_dir / "shadow"
    target.write_text("secret\n")
    target.chmod(0o600)
    (out / "dovecot" / "users").unlink()
    (out / "dovecot" / "users").symlink_to(target)
    before = _tree(out)
    refused = run("render", "--out", str(out))
    assert refused.exit_code != 0
    assert "symbolic link" in refused.output and "dovecot/users" in refused.output
    assert target.read_text() == "secret\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target_dir.stat().st_mode) == 0o700
    assert _tree(out) == before

    # the output folder itself a link
    link = tmp_path / "link-out"
    link.symlink_to(target_dir)
    refused = run("render", "--out", str(link))
    assert refused.exit_code != 0 and "symbolic link" in refused.output
    assert sorted(p.name for p in target_dir.iterdir()) == ["shadow"]
    assert stat.S_IMODE(target_dir.stat().st_mode) == 0o700


def test_render_refuses_a_linked_folder_deep_inside(run: t.Any, mail: None,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "postfix").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (out / "dovecot").symlink_to(elsewhere)
    refused = run("render", "--out", str(out))
    assert refused.exit_code != 0 and "dovecot" in refused.output
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700


def test_config_diff_masks_hashes_unless_asked(run: t.Any, mail: None) -> None:
    masked = run("config", "diff")
    assert masked.exit_code == 0, masked.output
    assert "+anna@tools.example:{SHA512-CRYPT}<hidden " in masked.output
    assert "$6$" not in masked.output
    shown = run("config", "diff", "--show-secrets")
    assert shown.exit_code == 0, shown.output
    assert "+anna@tools.example:{SHA512-CRYPT}$6$" in shown.output


def test_mask_keeps_lines_apart_and_hides_every_scheme() -> None:
    text = ("-a@x.example:{SHA512-CRYPT}$6$salt$abc:5000\n"
            "+a@x.example:{SHA512-CRYPT}$6$salt$abd:5000\n"
            "+b@x.example:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA:5000\n"
            "+c@x.example:{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu5sIFdMZDqKcbxZ9o6:5000\n"
            "connect = host=db user=mail password=s3cr3t-pw\n")
    masked = mask_secrets(text)
    assert "$6$" not in masked and "$argon2id" not in masked and "$2y$" not in masked
    assert "s3cr3t" not in masked
    first, second = masked.splitlines()[:2]
    assert first[1:] != second[1:]  # a changed hash still shows as a changed line
    assert masked.count("<hidden") == 5
