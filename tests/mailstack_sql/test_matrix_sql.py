"""The files-mode matrix, unchanged, against SQL mode on SQLite, PostgreSQL and MariaDB.

Only the two tests that apply after a change are replaced: in SQL mode the servers must see
the change with no apply at all (`SqlStack.reapply` fails if called), and the delay is
measured and printed.
"""

from __future__ import annotations

import time

import pytest

from mailadmin.mailstack import build_snapshot, current_release, render_release
from tests.mailstack.conftest import PASSWORD, dovecot_hash, eventually
from tests.mailstack.test_matrix import *  # noqa: F403
from tests.mailstack.test_matrix import _flip, _observed

from .conftest import SqlStack

pytestmark = pytest.mark.mailstack


def test_password_change_takes_effect_after_apply(stack: SqlStack) -> None:  # type: ignore[no-redef]
    """(Same name as the files-mode test; here: without any apply.)"""
    user = "pwchange@example.test"
    assert stack.imap_login(user)[0]
    release = current_release(stack.settings.config_dir)
    with stack.session() as s:
        stack.mailbox(s, user).password_hash = dovecot_hash("new-password-2")
        s.commit()
    t0 = time.monotonic()
    assert eventually(lambda: stack.imap_login(user, "new-password-2")[0])
    first = time.monotonic() - t0
    assert eventually(lambda: stack.submission_login(user, "new-password-2")[0])
    assert not stack.imap_login(user, PASSWORD)[0]
    assert not stack.submission_login(user, PASSWORD)[0]
    assert current_release(stack.settings.config_dir) == release
    print(f"[{stack.backend}] password change seen by IMAP after {first:.3f}s, no apply")


def test_every_setting_flip_is_followed_by_the_servers(stack: SqlStack) -> None:  # type: ignore[no-redef]
    """Switch each setting off in the panel and back on; the servers follow, no apply."""
    assert all(_observed(stack).values()), _observed(stack)
    release = current_release(stack.settings.config_dir)
    timings: dict[str, float] = {}
    for on in (False, True):
        _flip(stack, on)
        t0 = time.monotonic()
        want = {k: (on or k == "neighbour") for k in _observed(stack)}
        first = time.monotonic() - t0  # one full observation round already ran
        seen = eventually(lambda w=want: _observed(stack) == w, timeout=15)  # type: ignore[misc]
        timings["off" if not on else "on"] = time.monotonic() - t0
        timings[("off" if not on else "on") + " (1 round)"] = first
        assert seen, (_observed(stack), want)
    # nothing was applied, and the data does not reach the files: the same render results
    assert current_release(stack.settings.config_dir) == release
    with stack.session() as s:
        digest, _ = render_release(build_snapshot(s, stack.settings))
    assert digest == release
    print(f"[{stack.backend}] flips followed without apply after: "
          + ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()))


def test_single_flip_delay(stack: SqlStack) -> None:
    """The delay between the commit and the first lookup that sees it, per kind of lookup."""
    user = "nopop@example.test"
    delays = {}
    with stack.session() as s:
        stack.mailbox(s, user).pop3 = True
        s.commit()
    t0 = time.monotonic()
    assert eventually(lambda: stack.pop3_login(user)[0], interval=0.01)
    delays["dovecot passdb"] = time.monotonic() - t0
    with stack.session() as s:
        stack.mailbox(s, user).pop3 = False
        s.commit()
    assert eventually(lambda: not stack.pop3_login(user)[0])

    def rcpt(address: str) -> int:
        s = stack.smtp()
        s.mail("someone@remote.test")
        code, _ = s.rcpt(address)
        s.quit()
        return code

    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").suspend_incoming = True
        s.commit()
    t0 = time.monotonic()
    assert eventually(lambda: rcpt("bob@example.test") == 550, interval=0.01)
    delays["postfix map"] = time.monotonic() - t0
    with stack.session() as s:
        stack.mailbox(s, "bob@example.test").suspend_incoming = False
        s.commit()
    assert eventually(lambda: rcpt("bob@example.test") == 250)
    print(f"[{stack.backend}] commit -> first lookup that sees it: "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in delays.items()))
