"""A mail address typed into the panel's sign-in points to the mailbox sign-in (issue 15),
without telling whether the address exists, and still counts against the rate limits."""

from __future__ import annotations

import typing as t

from .test_selfservice import mail_app  # noqa: F401  (a fixture used below)
from .web import sign_in


def hint_page(client: t.Any, address: str, password: str = "whatever 12345") -> tuple[int, str]:
    answer = sign_in(client, address, password)
    return answer.status_code, answer.get_data(as_text=True)


def test_a_mail_address_points_to_the_mailbox_sign_in(mail_app: t.Any) -> None:  # noqa: F811
    status, page = hint_page(mail_app.test_client(), "anna@example.org")
    assert status == 401
    assert 'data-testid="use-mailbox-sign-in"' in page
    assert "is wrong" not in page
    assert "/me/login?address=anna@example.org" in page


def test_the_answer_does_not_depend_on_whether_the_address_exists(
    mail_app: t.Any,  # noqa: F811
) -> None:
    hosted = hint_page(mail_app.test_client(), "anna@example.org")
    unknown = hint_page(mail_app.test_client(), "nobody@example.org")
    assert hosted[0] == unknown[0] == 401

    def without_variable_parts(page: str, local: str) -> str:
        import re

        return re.sub(r'value="[^"]*"', "", page.replace(local, "X"))

    assert without_variable_parts(hosted[1], "anna") == without_variable_parts(
        unknown[1], "nobody")


def test_the_mailbox_sign_in_takes_the_address_over(mail_app: t.Any) -> None:  # noqa: F811
    page = mail_app.test_client().get("/me/login?address=anna%40example.org")
    assert 'value="anna@example.org"' in page.get_data(as_text=True)


def test_the_rate_limit_still_applies(mail_app: t.Any) -> None:  # noqa: F811
    client = mail_app.test_client()
    statuses = [hint_page(client, "anna@example.org")[0] for _ in range(6)]
    assert statuses[:4] == [401] * 4 and statuses[-1] == 429


def test_a_wrong_user_name_is_still_just_wrong(mail_app: t.Any) -> None:  # noqa: F811
    status, page = hint_page(mail_app.test_client(), "alice", "not the password 1")
    assert status == 401
    assert "The user name or the password is wrong." in page
    assert 'data-testid="use-mailbox-sign-in"' not in page
