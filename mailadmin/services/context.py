"""Who is acting: passed explicitly to every service (no request globals)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import PanelUser, Role, utcnow

OPERATOR_NAME = "operator"


@dataclass(frozen=True)
class Actor:
    """The person or program behind a change.

    `user_id` is None for the machine's operator (the CLI without `--as`), who has server-admin
    rights. `customer_id` is set when a customer acts, or when a reseller or admin acts as one.
    """

    name: str
    role: Role
    channel: str
    user_id: int | None = None
    source: str | None = None
    acting_as: str | None = None
    customer_id: int | None = None
    clock: Callable[[], dt.datetime] = field(default=utcnow, compare=False)

    @classmethod
    def operator(cls, channel: str = "cli", source: str | None = "local") -> Actor:
        return cls(name=OPERATOR_NAME, role=Role.ADMIN, channel=channel, source=source)

    @classmethod
    def for_user(cls, user: PanelUser, channel: str, source: str | None = None) -> Actor:
        role = Role(user.role)
        return cls(
            name=user.username,
            role=role,
            channel=channel,
            user_id=user.id,
            source=source,
            customer_id=user.id if role is Role.CUSTOMER else None,
        )

    def acting_for(self, customer: PanelUser) -> Actor:
        """This reseller or admin acting as `customer`: a customer's rights over that customer
        only, with changes audited under this actor's name and `acting_as` the customer's.

        Callers check first that the customer is this actor's (`resellers.start_acting_as`).
        """
        return Actor(
            name=self.name,
            role=Role.CUSTOMER,
            channel=self.channel,
            user_id=self.user_id,
            source=self.source,
            acting_as=customer.username,
            customer_id=customer.id,
            clock=self.clock,
        )

    @property
    def customer_name(self) -> str:
        """The customer whose mail a customer actor manages (itself, or the one acted as)."""
        return self.acting_as or self.name

    def now(self) -> dt.datetime:
        return self.clock()

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
