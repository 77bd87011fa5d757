"""The domain model (see DESIGN.md). Import models from here."""

from .base import MAX_ROW_ID, Base, UTCDateTime, utcnow
from .mail import (
    Autoresponder,
    CatchAllAction,
    DkimKey,
    DkimKeyState,
    DnsHealthCheck,
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
    "MAX_ROW_ID",
    "ApiToken",
    "AuditEvent",
    "Autoresponder",
    "Base",
    "CatchAllAction",
    "ConfigRevision",
    "DkimKey",
    "DkimKeyState",
    "DnsHealthCheck",
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
