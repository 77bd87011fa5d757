"""The "Diagnose a problem" page, driven through its real form with CSRF tokens."""

from __future__ import annotations

import html
import io
import re
import typing as t
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailadmin.diagnostics import family
from mailadmin.diagnostics.present import CLIENT_LABELS

from .databases import unavailable
from .web import csrf_token, sign_in

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".." / "shared" / "corpus"
URL = "/diagnose/"

RCPT_BEFORE_DATA = "503 valid RCPT command must precede DATA"


@pytest.fixture
def app(app: t.Any) -> t.Any:
    # Until create_app registers the blueprint itself.
    if "diagnostics" not in app.blueprints:
        from panel.diagnostics import bp

        app.register_blueprint(bp)
    return app


@pytest.fixture
def alice(client: t.Any, make_user: t.Any) -> t.Any:
    make_user("alice", "customer")
    assert sign_in(client, "alice", "correct horse 9").status_code == 302
    return client


def diagnose(client: t.Any, data: dict[str, t.Any]) -> t.Any:
    """GET the page, then POST its form (multipart, as the browser does) with the CSRF token."""
    page = client.get(URL)
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    return client.post(URL, data={"client": "", "text": "", **data, "csrf_token": token},
                       content_type="multipart/form-data")


def text_of(response: t.Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def marked(response: t.Any) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>",
                                                 response.get_data(as_text=True), re.S)]


def test_anonymous_is_sent_to_sign_in(client: t.Any, app: t.Any) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_page_shows_paste_box_upload_and_client_choice_and_is_in_navigation(alice: t.Any) -> None:
    page = alice.get("/dashboard", follow_redirects=True).get_data(as_text=True)
    assert 'href="/diagnose/"' in page and "Diagnose a problem" in page
    body = alice.get(URL).get_data(as_text=True)
    assert "<textarea" in body and 'maxlength="2000000"' in body
    assert 'type="file"' in body and 'enctype="multipart/form-data"' in body
    for label in CLIENT_LABELS.values():
        assert html.escape(label) in body
    assert "style=" not in body and "<script>" not in body


def test_pasted_503_shows_cause_fix_codes_and_the_deciding_line(alice: t.Any) -> None:
    response = diagnose(alice, {"text": RCPT_BEFORE_DATA})
    assert response.status_code == 200
    body = text_of(response)
    entry = family("rcpt_before_data")
    assert entry.title in body
    assert entry.cause in body and entry.fix in body
    assert 'data-family="rcpt_before_data"' in body
    assert re.search(r'data-testid="replycode">503<', body)
    assert "Permanent (hard) failure" in body
    assert marked(response) == [RCPT_BEFORE_DATA]


def test_client_choice_changes_the_fix(alice: t.Any) -> None:
    entry = family("rcpt_before_data")
    texts = {}
    for client in ("thunderbird", "outlook"):
        body = text_of(diagnose(alice, {"text": RCPT_BEFORE_DATA, "client": client}))
        assert entry.clients[client] in body
        assert f"In {CLIENT_LABELS[client]}" in body
        texts[client] = body
    assert entry.clients["outlook"] not in texts["thunderbird"]
    assert entry.clients["thunderbird"] not in texts["outlook"]
    # Without a choice the settings of every program are offered, folded away.
    body = text_of(diagnose(alice, {"text": RCPT_BEFORE_DATA}))
    assert "<details" in body and entry.clients["thunderbird"] in body
    assert 'data-testid="client-fix"' not in body


def test_uploaded_bounce_eml_from_the_corpus(alice: t.Any) -> None:
    path = CORPUS / "bounces" / "eml" / "lhost-postfix-13.eml"
    if not path.exists():
        unavailable(f"bounce corpus not found at {path}")
    data = path.read_bytes()
    response = diagnose(alice, {"upload": (io.BytesIO(data), "bounce.eml"),
                                "client": "apple_mail"})
    assert response.status_code == 200
    body = text_of(response)
    # Two recipients: one unknown, one with a full mailbox.
    assert body.count('data-testid="finding"') == 2
    assert 'data-family="user_unknown"' in body and 'data-family="quota_full"' in body
    assert "kijitora@example.jp" in body and "noraneko@example.jp" in body
    assert family("quota_full").cause in body
    for line in marked(response):
        assert line.strip() in data.decode()
    assert any("Mailbox Full" in line for line in marked(response))


def test_excerpt_is_escaped(alice: t.Any) -> None:
    paste = ('<script>alert(1)</script>\n550 5.1.1 <bob@example.org>: Recipient address '
             'rejected: User unknown in virtual mailbox table\n<img src=x onerror=alert(2)>')
    response = diagnose(alice, {"text": paste})
    raw = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)" not in raw and "<img src=x" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "<mark>550 5.1.1 &lt;bob@example.org&gt;: Recipient address" in raw
    assert 'data-family="user_unknown"' in raw


@pytest.mark.parametrize(
    "data",
    [
        {"text": ""},
        {"text": "   \n\t "},
        {"text": "hello, my mail does not work"},
        {"upload": (io.BytesIO(bytes(range(256)) * 64), "garbage.eml")},
        {"upload": (io.BytesIO(b""), "empty.txt")},
        {"upload": (io.BytesIO(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\xff" * 5000), "x.txt")},
    ],
    ids=["empty", "blank", "prose", "binary", "empty-file", "png"],
)
def test_odd_input_is_not_recognised_never_an_error(alice: t.Any, data: dict[str, t.Any]) -> None:
    response = diagnose(alice, data)
    assert response.status_code == 200
    body = text_of(response)
    assert "Not recognised" in body
    assert 'data-testid="finding"' not in body


def test_broken_mime_and_large_input_are_answered(alice: t.Any) -> None:
    broken = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: a@example.com\r\n"
              b"Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/report; boundary="zz"\r\n\r\n--zz\r\n'
              b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n--zz\r\n"
              b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; "
              b"bob@remote.example\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 "
              b"user unknown\r\n")
    response = diagnose(alice, {"upload": (io.BytesIO(broken), "broken.eml")})
    assert response.status_code == 200
    assert "bob@remote.example" in text_of(response)
    big = diagnose(alice, {"upload": (io.BytesIO(b"x" * 3_000_000), "big.txt")})
    assert big.status_code == 200
    assert "Only the first 1 MB" in text_of(big)
    # A paste above the form-memory default of Werkzeug (500 kB) is accepted, too.
    long_paste = RCPT_BEFORE_DATA + "\n" + "log noise\n" * 100_000
    pasted = diagnose(alice, {"text": long_paste})
    assert pasted.status_code == 200
    assert 'data-family="rcpt_before_data"' in pasted.get_data(as_text=True)


def test_wrong_file_type_is_refused_beside_the_field(alice: t.Any) -> None:
    response = diagnose(alice, {"upload": (io.BytesIO(b"MZ\x90\0"), "setup.exe")})
    assert response.status_code == 422
    assert "Upload an .eml or a .txt file." in text_of(response)


def test_unknown_client_is_refused(alice: t.Any) -> None:
    response = diagnose(alice, {"text": RCPT_BEFORE_DATA, "client": "lotus-notes"})
    assert response.status_code == 422


def test_post_without_csrf_token_is_refused(alice: t.Any) -> None:
    response = alice.post(URL, data={"text": RCPT_BEFORE_DATA, "client": ""},
                          content_type="multipart/form-data")
    assert response.status_code == 400
    assert family("rcpt_before_data").cause not in text_of(response)


# The pure helper behind the excerpt (mailadmin.diagnostics.present), reused by the API.

def test_wrapped_reply_and_folded_dsn_field_are_highlighted_as_a_whole() -> None:
    from mailadmin.diagnostics.present import excerpt_for

    wrapped = ("Reporting-MTA: dns; mx.example\n\n"
               "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach\n"
               "    550-5.1.1 does not exist. Please try double-checking the recipient's\n"
               "    550 5.1.1 email address for typos. - gsmtp\n"
               "Status: 5.1.1\n")
    decisive = ("550-5.1.1 The email account that you tried to reach does not exist. Please try "
                "double-checking the recipient's email address for typos. - gsmtp")
    shown = excerpt_for(wrapped, decisive)
    assert shown.source == "input"
    assert [line.number for line in shown.lines if line.decisive] == [3, 4, 5]
    assert [line.number for line in shown.lines] == [1, 2, 3, 4, 5, 6]


def test_decisive_line_not_in_the_input_is_shown_alone() -> None:
    from mailadmin.diagnostics.present import excerpt_for

    shown = excerpt_for(b"\xff\xfe binary", "550 user unknown")
    assert shown.source == "line"
    assert [(line.text, line.decisive) for line in shown.lines] == [("550 user unknown", True)]
    assert excerpt_for("anything", "").lines == ()


def test_present_matches_the_cli_findings_and_ignores_unknown_clients() -> None:
    from mailadmin.diagnostics import classify
    from mailadmin.diagnostics.present import diagnose as present_diagnosis

    results = present_diagnosis(RCPT_BEFORE_DATA, "lotus-notes")
    assert [r.finding for r in results] == classify(RCPT_BEFORE_DATA)
    assert results[0].client is None and results[0].client_fix is None
    data = results[0].as_dict()
    assert data["family"] == "rcpt_before_data" and data["client"] is None
    assert data["excerpt"] == {"source": "input", "lines": [
        {"number": 1, "text": RCPT_BEFORE_DATA, "decisive": True}]}


# A "line" never holds a line break itself (any of the characters str.splitlines breaks at).
LINE_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=80,
)


@given(st.lists(LINE_TEXT, max_size=30), st.integers(min_value=0, max_value=29))
@settings(max_examples=200, deadline=None)
def test_excerpt_always_highlights_something_and_finds_lines_that_are_there(
    lines: list[str], pick: int
) -> None:
    from mailadmin.diagnostics.present import excerpt_for

    text = "\n".join(lines)
    decisive = " ".join(lines[pick].split()) if pick < len(lines) else "550 no such user"
    if "\n" in decisive or not decisive:
        return
    shown = excerpt_for(text, decisive)
    assert any(line.decisive for line in shown.lines)
    if shown.source == "input":
        assert all(line.text.rstrip("…") in text.expandtabs(4) for line in shown.lines)
    if pick < len(lines) and "\r" not in text and "\x0b" not in text:
        assert shown.source == "input"
