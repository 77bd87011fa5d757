"""The domain model (see DESIGN.md). Import models from here."""

from .base import MAX_ROW_ID, Base, UTCDateTime, utcnow
from .help import AUDIENCES, HelpArticle, HelpVote
from .mail import (
    APP_PASSWORD_SLOTS,
    AppPassword,
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
from .nodes import MailNode
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
from .twofactor import TwoFactorBrowser, TwoFactorRecoveryCode, TwoFactorSecret
from .users import Package, PanelUser, ResellerAllocation, Role

__all__ = [
    "APP_PASSWORD_SLOTS",
    "AUDIENCES",
    "MAX_ROW_ID",
    "ApiToken",
    "AppPassword",
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
    "HelpArticle",
    "HelpVote",
    "Job",
    "KnownSignIn",
    "LoginSession",
    "LoginThrottle",
    "MailNode",
    "Mailbox",
    "Package",
    "PanelUser",
    "ResellerAllocation",
    "Role",
    "ServerSettings",
    "TwoFactorBrowser",
    "TwoFactorRecoveryCode",
    "TwoFactorSecret",
    "UTCDateTime",
    "utcnow",
]
