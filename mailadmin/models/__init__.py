"""The domain model (see DESIGN.md). Import models from here."""

from .base import MAX_ROW_ID, Base, UTCDateTime, utcnow
from .mail import (
    APP_PASSWORD_SLOTS,
    AppPassword,
    Autoresponder,
    CatchAllAction,
    Domain,
    Forwarder,
    ForwarderDestination,
    Mailbox,
)
from .system import (
    ApiToken,
    AuditEvent,
    ConfigRevision,
    Job,
    KnownSignIn,
    LoginSession,
    LoginThrottle,
    ServerSettings,
)
from .users import Package, PanelUser, ResellerAllocation, Role

__all__ = [
    "APP_PASSWORD_SLOTS",
    "MAX_ROW_ID",
    "ApiToken",
    "AppPassword",
    "AuditEvent",
    "Autoresponder",
    "Base",
    "CatchAllAction",
    "ConfigRevision",
    "Domain",
    "Forwarder",
    "ForwarderDestination",
    "Job",
    "KnownSignIn",
    "LoginSession",
    "LoginThrottle",
    "Mailbox",
    "Package",
    "PanelUser",
    "ResellerAllocation",
    "Role",
    "ServerSettings",
    "UTCDateTime",
    "utcnow",
]
