"""What the panel says about a mailbox is what the real Dovecot + Postfix do.

Each case talks to the servers the `stack` fixture started from mailadmin's own render.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from sqlalchemy import select

from mailadmin.models import Domain

from .conftest import PASSWORD, Stack, dovecot_hash, eventually

pytestmark = pytest.mark.mailstack


# --------------------------------------------------------------------------- logins


def test_imap_allowed_and_refused(stack: Stack) -> None:
    assert stack.imap_login("alice@example.test")[0]
    ok, text = stack.imap_login("noimap@example.test")
    assert not ok and "AUTHENTICATIONFAILED" in text
    # the other protocols of that mailbox still work
    assert stack.pop3_login("noimap@example.test")[0]
    assert stack.submission_login("noimap@example.test")[0]


def test_pop3_allowed_and_refused(stack: Stack) -> None:
    assert stack.pop3_login("alice@example.test")[0]
    ok, text = stack.pop3_login("nopop@example.test")
    assert not ok and "-ERR" in text
    assert stack.imap_login("nopop@example.test")[0]
    assert stack.submission_login("nopop@example.test")[0]


def test_submission_allowed_and_refused(stack: Stack) -> None:
    ok, text = stack.submission_login("alice@example.test")
    assert ok, text
    ok, text = stack.submission_login("nosmtp@example.test")
    assert not ok and text.startswith("535 5.7.8"), text
    assert stack.imap_login("nosmtp@example.test")[0]
    assert stack.pop3_login("nosmtp@example.test")[0]


def test_wrong_password_refused(stack: Stack) -> None:
    assert not stack.imap_login("alice@example.test", "wrong")[0]
    assert not stack.pop3_login("alice@example.test", "wrong")[0]
    assert not stack.submission_login("alice@example.test", "wrong")[0]


def test_login_suspended_refuses_every_protocol(stack: Stack) -> None:
    user = "suspended@example.test"
    assert not stack.imap_login(user)[0]
    assert not stack.pop3_login(user)[0]
    assert not stack.submission_login(user)[0]


# --------------------------------------------------------------------------- receiving


def test_receiving_suspended_refused_at_rcpt(stack: Stack) -> None:
    for rcpt in ("noreceive@example.test", "to-noreceive@example.test"):
        s = stack.smtp()
        s.mail("someone@remote.test")
        code, text = s.rcpt(rcpt)
        s.quit()
        assert code == 550, (rcpt, code, text)
        assert b"5.2.1" in text and b"suspended and does not accept mail" in text


def test_over_quota_refused_with_552(stack: Stack) -> None:
    s = stack.smtp()
    s.mail("someone@remote.test", ["SIZE=5000"])
    code, text = s.rcpt("small@example.test")
    s.quit()
    assert code == 552 and b"5.2.2" in text and b"Mailbox is full" in text, text
    # a message that fits is accepted
    stack.send("someone@remote.test", ["small@example.test"], subject="fits")
    assert stack.wait_for_subject("small@example.test", "fits")


def test_message_size_limit(stack: Stack) -> None:
    s = stack.smtp()
    code, text = s.mail("someone@remote.test", [f"SIZE={2 * 1024 * 1024}"])
    s.quit()
    assert code == 552 and b"5.3.4" in text, text


def test_forwarder_delivers_to_every_destination(stack: Stack) -> None:
    subject = f"team {time.monotonic()}"
    stack.send("someone@remote.test", ["team@example.test"], subject=subject)
    assert stack.wait_for_subject("alice@example.test", subject)
    assert stack.wait_for_subject("carol@other.test", subject)
    # the remote destination was handed to the outbound transport (discard in the sandbox)
    assert eventually(lambda: "to=<someone@elsewhere.test>, orig_to=<team@example.test>"
                      in stack.postfix_log())


def test_forwarder_keep_copy(stack: Stack) -> None:
    subject = f"keeper {time.monotonic()}"
    stack.send("someone@remote.test", ["keeper@example.test"], subject=subject)
    assert stack.wait_for_subject("keeper@example.test", subject)
    assert stack.wait_for_subject("bob@example.test", subject)


def test_default_address_reject(stack: Stack) -> None:
    s = stack.smtp()
    s.mail("someone@remote.test")
    code, text = s.rcpt("nobody@example.test")
    assert code == 550 and b"5.1.1" in text, text
    code, text = s.rcpt("nobody@reject.test")
    assert code == 550 and b"Nobody by that name at reject.test" in text, text
    code, _ = s.rcpt("known@reject.test")
    assert code == 250
    s.quit()


def test_default_address_discard(stack: Stack) -> None:
    subject = f"discard {time.monotonic()}"
    stack.send("someone@remote.test", ["whoever@discard.test", "known@discard.test"],
               subject=subject)
    assert stack.wait_for_subject("known@discard.test", subject)
    assert eventually(lambda: "to=<devnull@discard.mailadmin.invalid>, "
                      "orig_to=<whoever@discard.test>" in stack.postfix_log())


def test_default_address_deliver(stack: Stack) -> None:
    subject = f"deliver {time.monotonic()}"
    stack.send("someone@remote.test", ["whoever@deliver.test"], subject=subject)
    assert stack.wait_for_subject("catchall@deliver.test", subject)


# --------------------------------------------------------------------------- sending


def test_submission_delivers(stack: Stack) -> None:
    subject = f"submitted {time.monotonic()}"
    s, code, _ = stack.submission("alice@example.test")
    assert code == 235
    message = f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\r\nhi"
    s.sendmail("alice@example.test", ["bob@example.test"], message)
    s.quit()
    assert stack.wait_for_subject("bob@example.test", subject)


def test_sending_suspended(stack: Stack) -> None:
    s, code, _ = stack.submission("nosend@example.test")
    assert code == 235  # may still log in (e.g. to read mail over IMAP with the same client)
    s.mail("nosend@example.test")
    code, text = s.rcpt("bob@example.test")
    s.quit()
    assert code == 550 and b"Sending is suspended for this mailbox" in text, text


def test_sending_as_another_customers_address_refused(stack: Stack) -> None:
    s, code, _ = stack.submission("alice@example.test")
    assert code == 235
    s.mail("carol@other.test")
    code, text = s.rcpt("bob@example.test")
    s.quit()
    assert code == 553 and b"not owned by user alice@example.test" in text, text


def test_unauthenticated_relay_refused(stack: Stack) -> None:
    s = stack.smtp()
    s.mail("alice@example.test")
    code, text = s.rcpt("someone@elsewhere.test")
    s.quit()
    assert code == 554 and b"Relay access denied" in text, text
    # submission without AUTH refuses even local recipients
    s = stack.smtp("submission")
    s.mail("alice@example.test")
    code, text = s.rcpt("bob@example.test")
    s.quit()
    assert code == 554, text


def test_data_before_rcpt_gives_503(stack: Stack) -> None:
    s = stack.smtp()
    code, text = s.docmd("DATA")
    s.quit()
    assert code == 503 and b"5.5.1" in text, text


# --------------------------------------------------------------------------- Sieve


def test_autoresponder_answers_once_per_interval(stack: Stack) -> None:
    tag = f"{time.monotonic()}"
    stack.send("sender@example.test", ["responder@example.test"], subject=f"first {tag}")
    assert stack.wait_for_subject("responder@example.test", f"first {tag}")
    replies = stack.wait_for_subject("sender@example.test", "Out of office")
    assert len(replies) == 1, replies
    stack.send("sender@example.test", ["responder@example.test"], subject=f"second {tag}")
    assert stack.wait_for_subject("responder@example.test", f"second {tag}")
    time.sleep(1.0)  # give a (wrong) second reply time to arrive
    assert len([s for s in stack.inbox_subjects("sender@example.test")
                if "Out of office" in s]) == 1


# --------------------------------------------------------------------------- changes


def test_password_change_takes_effect_after_apply(stack: Stack) -> None:
    user = "pwchange@example.test"
    assert stack.imap_login(user)[0]
    with stack.session() as s:
        stack.mailbox(s, user).password_hash = dovecot_hash("new-password-2")
        s.commit()
    t0 = time.monotonic()
    result = stack.reapply()  # production path: doveadm reload + postfix reload
    assert result.changed and result.reloaded
    assert eventually(lambda: stack.imap_login(user, "new-password-2")[0])
    assert eventually(lambda: stack.submission_login(user, "new-password-2")[0])
    elapsed = time.monotonic() - t0
    assert not stack.imap_login(user, PASSWORD)[0]
    assert not stack.submission_login(user, PASSWORD)[0]
    print(f"password change: apply + servers following took {elapsed:.2f}s")


def _flip(stack: Stack, on: bool) -> None:
    with stack.session() as s:
        for local, field in [("f-imap", "imap"), ("f-pop3", "pop3"), ("f-smtp", "smtp")]:
            setattr(stack.mailbox(s, f"{local}@flip.test"), field, on)
        stack.mailbox(s, "f-login@flip.test").suspend_login = not on
        stack.mailbox(s, "f-in@flip.test").suspend_incoming = not on
        stack.mailbox(s, "f-out@flip.test").suspend_outgoing = not on
        stack.mailbox(s, "f-quota@flip.test").quota = 0 if on else 1024
        flip = s.scalars(select(Domain).where(Domain.name == "flip.test")).one()
        flip.catchall_action = "deliver" if on else "reject"
        s.commit()


def _observed(stack: Stack) -> dict[str, bool]:
    """True where the servers currently allow the thing the flip test switches."""
    def rcpt_ok(rcpt: str, size: int = 0) -> bool:
        s = stack.smtp()
        s.mail("someone@remote.test", [f"SIZE={size}"] if size else [])
        code, _ = s.rcpt(rcpt)
        s.quit()
        return code == 250

    def send_ok(user: str) -> bool:
        s, code, _ = stack.submission(user)
        if code != 235:
            return False
        s.mail(user)
        code, _ = s.rcpt("known@flip.test")
        with contextlib.suppress(Exception):
            s.quit()
        return code == 250

    return {
        "imap": stack.imap_login("f-imap@flip.test")[0],
        "pop3": stack.pop3_login("f-pop3@flip.test")[0],
        "smtp": stack.submission_login("f-smtp@flip.test")[0],
        "login": stack.imap_login("f-login@flip.test")[0],
        "incoming": rcpt_ok("f-in@flip.test"),
        "incoming via forwarder": rcpt_ok("f-fwd@flip.test"),
        "outgoing": send_ok("f-out@flip.test"),
        "quota": rcpt_ok("f-quota@flip.test", size=5000),
        "default address delivers": rcpt_ok("nobody@flip.test"),
        # the neighbours are untouched throughout
        "neighbour": stack.imap_login("known@flip.test")[0],
    }


def test_every_setting_flip_is_followed_by_the_servers(stack: Stack) -> None:
    """Switch each setting off in the panel, apply (reload), see the servers follow; back on."""
    assert all(_observed(stack).values()), _observed(stack)
    timings = {}
    for on in (False, True):
        _flip(stack, on)
        t0 = time.monotonic()
        stack.reapply()
        want = {k: (on or k == "neighbour") for k in _observed(stack)}
        seen = eventually(lambda w=want: _observed(stack) == w, timeout=15)  # type: ignore[misc]
        timings["off" if not on else "on"] = time.monotonic() - t0
        assert seen, (_observed(stack), want)
    print(f"flip followed by the servers after: {timings}")
