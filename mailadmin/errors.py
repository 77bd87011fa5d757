"""Typed refusals raised by services. The web layer, the API and the CLI map them to a form
error, an HTTP status or an exit code; the message is written for the person who asked."""

from __future__ import annotations


class MailadminError(Exception):
    """Base of every refusal a user can be shown. `code` is stable for the JSON API."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The form field the message belongs to, when there is one.
        self.field = field


class ValidationError(MailadminError):
    code = "invalid"


class InvalidFields(ValidationError):
    """Several fields refused at once: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        count = len(errors)
        super().__init__(
            errors[first] if count == 1 else f"{count} fields need correcting: "
            + "; ".join(f"{name}: {message}" for name, message in errors.items()),
            field=first,
        )
        self.errors = dict(errors)


class InvalidName(ValidationError):
    """A local part, domain or address that may not be stored."""

    code = "invalid_name"


class WeakPassword(ValidationError):
    code = "weak_password"


class NotFound(MailadminError):
    code = "not_found"


class PermissionDenied(MailadminError):
    code = "forbidden"


class Conflict(MailadminError):
    """The object exists already, or the change would break a relation (a loop, a duplicate)."""

    code = "conflict"


class LimitReached(MailadminError):
    """A package or allocation limit; the message names the limit and the current use."""

    code = "limit_reached"


class AuthenticationFailed(MailadminError):
    code = "authentication_failed"


class MailboxAddressAtPanelSignIn(AuthenticationFailed):
    """A mail address typed into the panel's sign-in: panel user names never contain "@",
    so this says where mailbox users sign in, whether or not the address exists."""

    code = "use_mailbox_sign_in"


class RateLimited(MailadminError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
