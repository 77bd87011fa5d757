"""POST /api/v1/diagnose: the bounce and error classifier over the API."""

from __future__ import annotations

import typing as t

from pydantic import Field

from mailadmin.diagnostics.account import check_account
from mailadmin.diagnostics.present import diagnose

from .. import db
from .blueprint import bp
from .routing import current_api_actor, operation
from .schemas import Body, Output

ClientName = t.Literal["outlook", "thunderbird", "apple_mail", "ios", "android"]


class DiagnoseRequest(Body):
    text: str = Field(
        max_length=2 * 1024 * 1024, description="A bounce, transcript, log line or error text"
    )
    client: ClientName | None = Field(default=None, description="Mail program to give the fix for")
    address: str | None = Field(
        default=None, max_length=320,
        description="The mailbox that logged in or sent; its state is checked against the findings",
    )


class ExcerptLineOut(Output):
    number: int
    text: str
    decisive: bool


class ExcerptOut(Output):
    source: str
    lines: list[ExcerptLineOut]


class DiagnosisOut(Output):
    family: str
    reason: str
    title: str
    cause: str
    fix: str
    client: str | None
    client_fix: str | None
    line: str | None
    replycode: str | None
    status: str | None
    recipient: str | None
    remote_host: str | None
    hard: bool | None
    confidence: float
    excerpt: ExcerptOut


class AccountCheckOut(Output):
    cause: str
    address: str | None
    title: str
    detail: str
    next_step: str
    account_caused: bool
    family: str | None


class AccountReportOut(Output):
    address: str | None
    account_fine: bool
    summary: str
    checks: list[AccountCheckOut]


class DiagnoseResponse(Output):
    recognised: bool
    findings: list[DiagnosisOut]
    account: AccountReportOut | None = Field(
        default=None,
        description="The findings held against the account (present when something was found)",
    )

    def model_dump(self, **kwargs: t.Any) -> dict[str, t.Any]:
        data = super().model_dump(**kwargs)
        if data.get("account") is None:
            data.pop("account", None)  # nothing recognised: the response stays as it was
        return data


@operation(
    bp,
    "/diagnose",
    "POST",
    summary="Explain a mail error",
    tag="diagnostics",
    body=DiagnoseRequest,
    response=DiagnoseResponse,
)
def diagnose_text(body: DiagnoseRequest) -> DiagnoseResponse:
    """Classifies the text (a whole bounce, a reply line, a client's error) into findings, one
    per failed recipient, each with the cause, the fix and the line that decided it."""
    presented = diagnose(body.text, body.client)
    findings = []
    for item in presented:
        data = item.as_dict()
        findings.append(
            DiagnosisOut.model_validate({key: data.get(key) for key in DiagnosisOut.model_fields})
        )
    account = None
    if presented:
        report = check_account(db.session(), current_api_actor(),
                               [item.finding for item in presented], address=body.address)
        account = AccountReportOut.model_validate(report.as_dict())
    return DiagnoseResponse(recognised=bool(findings), findings=findings, account=account)
