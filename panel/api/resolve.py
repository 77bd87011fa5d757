"""GET /api/v1/resolve/<address>: the path Postfix and Dovecot take for an address."""

from __future__ import annotations

from pydantic import Field

from mailadmin.services import resolver

from .. import db
from .blueprint import bp
from .routing import current_api_actor, operation
from .schemas import Output


class LoginOut(Output):
    protocol: str = Field(description="imap, pop3 or smtp (submission).")
    allowed: bool
    reason: str | None = Field(description="no_mailbox, login_suspended, customer_suspended or "
                                           "<protocol>_off when refused.")


class DeliveryOut(Output):
    address: str
    how: str = Field(description="mailbox, discard, remote, 'discarded (sandbox)', bounce or "
                                 "outside_account (not followed: not in your account).")
    detail: str


class ResolutionOut(Output):
    address: str
    hosted: bool = Field(description="The domain is hosted here.")
    kind: str = Field(description="mailbox, mailbox_forwarding, forwarder, default_address or "
                                  "not_hosted.")
    accepted: bool = Field(description="Postfix accepts the address at RCPT TO.")
    rcpt_reply: str | None = Field(description="The SMTP refusal a sender gets.")
    deliveries: list[DeliveryOut] = Field(description="Where accepted mail ends up.")
    forward_to: list[str]
    keep_copy: bool | None
    default_action: str | None
    default_reject_reason: str | None
    default_target: str | None
    default_applies: bool = Field(description="The default address handles this address.")
    quota: int | None
    logins: list[LoginOut]
    receiving_suspended: bool | None
    sending_suspended: bool | None
    sending_reply: str | None = Field(description="Postfix's refusal at MAIL FROM on submission.")
    customer_suspended: bool | None
    steps: list[str] = Field(description="The path, one sentence per step.")


@operation(bp, "/resolve/<address>", "GET", summary="Resolve an address", tag="resolver",
           response=ResolutionOut)
def resolve_address(address: str) -> ResolutionOut:
    """Hosted domain? Mailbox, forwarder or default address? Which protocols may log in?
    Receiving or sending suspended? Computed from the lookup tables the servers read. An
    address outside your account is 404 "not hosted in your account", whether or not another
    account hosts it; the server admin gets kind "not_hosted" for a domain nobody hosts."""
    answer = resolver.resolve_address(db.session(), current_api_actor(), address)
    return ResolutionOut.model_validate(answer.as_dict())
