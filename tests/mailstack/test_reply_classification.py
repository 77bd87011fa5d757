"""Issue 6 x issue 4: the reply lines the real servers print are diagnosed by the classifier.

Each reply is produced live by the `stack` fixture's Postfix + Dovecot (rendered by mailadmin)
and fed, exactly as the client received it, to `mailadmin.diagnostics.classify`.
"""

from __future__ import annotations

import contextlib
import typing as t

import pytest

from mailadmin.diagnostics import catalogue
from mailadmin.diagnostics.classify import classify

from .conftest import Stack

pytestmark = pytest.mark.mailstack


def data_before_rcpt(stack: Stack) -> tuple[int, bytes]:
    s = stack.smtp()
    reply = s.docmd("DATA")
    s.quit()
    return reply


def relay_denied(stack: Stack) -> tuple[int, bytes]:
    s = stack.smtp()
    s.mail("alice@example.test")
    reply = s.rcpt("someone@elsewhere.test")
    s.quit()
    return reply


def mailbox_full(stack: Stack) -> tuple[int, bytes]:
    s = stack.smtp()
    s.mail("someone@remote.test", ["SIZE=5000"])
    reply = s.rcpt("small@example.test")
    s.quit()
    return reply


def auth_failed(stack: Stack) -> tuple[int, bytes]:
    s, code, text = stack.submission("alice@example.test", "wrong-password")
    with contextlib.suppress(Exception):
        s.quit()
    return code, text.encode()


def _send_as(stack: Stack, user: str, sender: str) -> tuple[int, bytes]:
    s, code, _ = stack.submission(user)
    assert code == 235
    s.mail(sender)
    reply = s.rcpt("bob@example.test")
    s.quit()
    return reply


def sending_suspended(stack: Stack) -> tuple[int, bytes]:
    return _send_as(stack, "nosend@example.test", "nosend@example.test")


def receiving_suspended(stack: Stack) -> tuple[int, bytes]:
    s = stack.smtp()
    s.mail("someone@remote.test")
    reply = s.rcpt("noreceive@example.test")
    s.quit()
    return reply


def sender_not_owned(stack: Stack) -> tuple[int, bytes]:
    return _send_as(stack, "alice@example.test", "carol@other.test")


CASES: list[tuple[str, t.Callable[[Stack], tuple[int, bytes]], int, str]] = [
    ("data-before-rcpt", data_before_rcpt, 503, "rcpt_before_data"),
    ("relay-denied", relay_denied, 554, "relay_denied"),
    ("mailbox-full", mailbox_full, 552, "quota_full"),
    ("auth-failed", auth_failed, 535, "auth_failed"),
    ("sending-suspended", sending_suspended, 550, "account_suspended"),
    ("receiving-suspended", receiving_suspended, 550, "account_suspended"),
    ("sender-not-owned", sender_not_owned, 553, "sender_not_owned"),
]


@pytest.mark.parametrize(
    ("produce", "code", "family"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_real_reply_is_classified(stack: Stack, produce: t.Callable[[Stack], tuple[int, bytes]],
                                  code: int, family: str) -> None:
    assert family in catalogue.load_catalogue().families
    got_code, text = produce(stack)
    assert got_code == code, (got_code, text)
    line = f"{got_code} {text.decode(errors='replace')}"
    findings = classify(line)
    assert findings, f"not recognised: {line!r}"
    assert findings[0].family == family, (line, findings[0])
    print(f"{line!r} -> {findings[0].family} ({findings[0].rule})")
