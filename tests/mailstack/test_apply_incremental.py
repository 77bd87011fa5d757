"""An apply links what did not change from the release in force, and stays whole.

One change at 100,000 mailboxes alters a file or two of a thousand; the rest (with postmap's
and sievec's output) is hard-linked from the release in force. These tests check that only
byte-equal files are shared, that a change to a governing file (dovecot.conf, main.cf,
master.cf) or to one Sieve script compiles afresh, and that the older release stays
byte-for-byte what it was, so a rollback to it is whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.mailstack import (
    apply_files,
    apply_snapshot,
    build_snapshot,
    render_release,
    render_release_incremental,
    rollback,
)
from mailadmin.mailstack.snapshot import StackSnapshot

from .conftest import Stack, dovecot_hash

pytestmark = pytest.mark.mailstack


@pytest.fixture
def private(stack: Stack) -> Iterator[StackSnapshot]:
    """The stack's data, applied (without reload) into a config folder of the test's own."""
    directory = Path(tempfile.mkdtemp(prefix="msi-", dir="/tmp"))
    directory.chmod(0o755)
    with stack.session() as s:
        snapshot = build_snapshot(s, stack.settings)
    settings = dataclasses.replace(stack.settings, config_dir=str(directory / "config"))
    try:
        yield dataclasses.replace(snapshot, settings=settings)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def tree(release: Path) -> dict[str, tuple[int, str]]:
    """Every file of a release: (inode, sha256)."""
    return {
        str(p.relative_to(release)): (p.stat().st_ino,
                                      hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(release.rglob("*")) if p.is_file()
    }


def shared(a: dict[str, tuple[int, str]], b: dict[str, tuple[int, str]]) -> set[str]:
    return {rel for rel in a.keys() & b.keys() if a[rel][0] == b[rel][0]}


def with_password(snapshot: StackSnapshot, local_part: str, password: str) -> StackSnapshot:
    return dataclasses.replace(snapshot, mailboxes=tuple(
        dataclasses.replace(m, password_hash=dovecot_hash(password))
        if m.local_part == local_part else m
        for m in snapshot.mailboxes))


def test_one_changed_mailbox_links_every_other_file(private: StackSnapshot) -> None:
    first = apply_snapshot(private, reload=False)
    before = tree(first.release_dir)
    second = apply_snapshot(with_password(private, "alice", "a new password 1"), reload=False)
    after = tree(second.release_dir)
    assert after.keys() == before.keys()
    same = shared(before, after)
    # the passwd-file changed and is new; the maps, their .db files, the deny lists and
    # every compiled Sieve script are the very same files
    assert "dovecot/users" not in same
    assert {"dovecot/dovecot.conf", "postfix/main.cf", "postfix/master.cf"}.isdisjoint(same)
    assert any(rel.endswith(".db") for rel in same)
    assert any(rel.endswith(".svbin") for rel in same)
    assert same == {rel for rel in before if before[rel][1] == after[rel][1]} - {
        "dovecot/dovecot.conf", "postfix/main.cf", "postfix/master.cf"}
    assert "linked from the release in force" in second.validation_output
    # the older release is untouched: rolling back to it puts exactly its bytes in force
    assert tree(first.release_dir) == before
    back = rollback(private.settings.config_dir, first.checksum, reload=False)
    assert back.changed and tree(back.release_dir) == before


def test_a_changed_governing_file_shares_nothing(private: StackSnapshot) -> None:
    first = apply_snapshot(private, reload=False)
    settings = dataclasses.replace(private.settings,
                                   message_size_limit=private.settings.message_size_limit + 1)
    second = apply_snapshot(dataclasses.replace(private, settings=settings), reload=False)
    assert not shared(tree(first.release_dir), tree(second.release_dir))


def test_one_changed_sieve_script_recompiles_them_all(private: StackSnapshot) -> None:
    assert private.autoresponders, "the stack's data has an autoresponder"
    first = apply_snapshot(private, reload=False)
    changed = dataclasses.replace(private, autoresponders=(
        dataclasses.replace(private.autoresponders[0], subject="Changed subject"),
        *private.autoresponders[1:]))
    second = apply_snapshot(changed, reload=False)
    before, after = tree(first.release_dir), tree(second.release_dir)
    sieve = {rel for rel in after if rel.endswith((".sieve", ".svbin"))}
    assert sieve and not (shared(before, after) & sieve)
    for rel in sieve:
        if rel.endswith(".sieve"):
            assert rel.removesuffix(".sieve") + ".svbin" in after
    assert tree(first.release_dir) == before


def test_an_untrusted_folder_is_never_linked_from(private: StackSnapshot) -> None:
    first = apply_snapshot(private, reload=False)
    second = apply_snapshot(with_password(private, "alice", "another password 2"),
                            reload=False, reuse_release=False)
    assert not shared(tree(first.release_dir), tree(second.release_dir))
    assert os.path.samefile(Path(private.settings.config_dir) / "current", second.release_dir)


def partial(snapshot: StackSnapshot, domain: str) -> StackSnapshot:
    """The partial snapshot of one domain, as `build_snapshot(..., domains=...)` makes it."""
    return dataclasses.replace(
        snapshot,
        domains=tuple(d for d in snapshot.domains if d.name == domain),
        mailboxes=tuple(m for m in snapshot.mailboxes if m.domain == domain),
        forwarders=tuple(f for f in snapshot.forwarders if f.domain == domain),
        autoresponders=tuple(a for a in snapshot.autoresponders
                             if a.address.endswith(f"@{domain}")),
        app_passwords=tuple(a for a in snapshot.app_passwords if a.domain == domain),
        only=frozenset({domain}), domain_names=snapshot.all_domain_names,
        incoming_suspended=snapshot.refuses_incoming())


def test_incremental_release_links_what_it_kept_and_rolls_back_whole(
        private: StackSnapshot) -> None:
    """The incremental render's unchanged files are linked without being read again; the
    release is the full render's, validated by the real tools, and the older one stays whole."""
    first = apply_snapshot(private, reload=False)
    before = tree(first.release_dir)
    changed = with_password(private, "alice", "a new password 3")
    domain = next(m.domain for m in changed.mailboxes if m.local_part == "alice")
    inc = render_release_incremental(partial(changed, domain))
    assert inc is not None and inc.base == first.checksum
    assert (inc.checksum, inc.files) == render_release(changed)
    second = apply_files(private.settings.config_dir, inc.checksum, inc.files, reload=False,
                         base=inc.base, unchanged=inc.unchanged)
    after = tree(second.release_dir)
    assert after.keys() == before.keys()
    assert shared(before, after) == {
        *inc.unchanged, *(rel + ".db" for rel in inc.unchanged if rel + ".db" in after),
        *(rel.removesuffix(".sieve") + ".svbin" for rel in inc.unchanged
          if rel.endswith(".sieve"))}
    assert "dovecot/users" not in inc.unchanged and "postfix/vmailbox" in inc.unchanged
    assert "main.cf and master.cf as in the release in force" in second.validation_output
    assert tree(first.release_dir) == before
    back = rollback(private.settings.config_dir, first.checksum, reload=False)
    assert back.changed and tree(back.release_dir) == before
