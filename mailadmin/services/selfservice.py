"""What a mailbox user does for itself: sign in with its address, change its password, read its
quota, set its autoresponder and its forwarding.

A mailbox user is its own principal, described by `MailboxUser` (the mailbox's id and address,
where the request came from, the clock). It is not a panel user and has no `Role`.

Why the changes go through a private customer-scoped `Actor`: the scope checks in
`services/scope.py` know only the panel roles, so they would refuse any actor that is not an admin,
a reseller or a customer. Rather than copy the rules of `autoresponders`, `forwarders` and
`mailboxes` (text limits, loop detection, the password policy and scheme, the audit entry), this
module calls those services with an `Actor` that has the owning customer's scope, named after
the mailbox address and on the channel "mailbox". That actor never leaves this module, and every
call passes the mailbox's *own* stored address, so the wider scope cannot be used on another
mailbox. The audit trail shows the address as the actor and "mailbox" as the channel.

Sign-in failures use the same `throttle` counters as panel sign-in: the account key is the
normalised address (panel user names cannot contain '@', so the two never share a counter) and
the address key is the client's network address, so guessing on both forms adds up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clientsetup import ClientSetup, build_setup, control_character_in
from ..errors import (
    AuthenticationFailed,
    InvalidName,
    NotFound,
    PermissionDenied,
    ValidationError,
    WeakPassword,
)
from ..hashing import (
    StorageScheme,
    hash_mailbox_password,
    needs_rehash,
    verify_mailbox_password,
)
from ..models import Autoresponder, Domain, Forwarder, Mailbox, Role, utcnow
from ..names import address_to_unicode, domain_of, normalize_domain, split_address
from ..protocols import Protocol
from ..timezones import check_time_zone
from . import (
    app_passwords,
    autoresponders,
    forwarders,
    mailboxes,
    sessions,
    throttle,
    twofactor,
)
from .context import Actor
from .server import get_server_settings

CHANNEL = "mailbox"
MAX_PASSWORD_LENGTH = 1024

SUSPENDED_MESSAGE = (
    "The login of this mailbox is suspended, so it cannot sign in here or in a mail program. "
    "Mail may still arrive. Ask whoever manages your mail to resume it."
)


class LoginSuspended(AuthenticationFailed):
    """The password was right, but the mailbox's login is suspended."""

    code = "login_suspended"


@dataclass(frozen=True)
class MailboxUser:
    """A signed-in mailbox user: the principal of every function below."""

    mailbox_id: int
    #: The stored (ASCII) address the user signed in with; a renamed mailbox signs out.
    address: str
    source: str | None = None
    clock: Callable[[], dt.datetime] = field(default=utcnow, compare=False)

    def now(self) -> dt.datetime:
        return self.clock()


@dataclass(frozen=True)
class SelfServicePolicy:
    """What the panel's configuration lets mailbox users change themselves.

    The customer narrows it per domain (Domain.allow_self_forwarding / allow_self_autoresponder);
    a user may change a thing only when both allow it.
    """

    allow_forwarding: bool = True
    allow_autoresponder: bool = True


@dataclass(frozen=True)
class OwnMailbox:
    """What the overview page shows."""

    id: int
    address: str
    unicode_address: str
    display_name: str | None
    quota: int
    usage_bytes: int | None
    usage_messages: int | None
    usage_read_at: dt.datetime | None
    imap: bool
    pop3: bool
    smtp: bool
    suspend_incoming: bool
    suspend_outgoing: bool
    password_changed_at: dt.datetime | None
    last_login_at: dt.datetime | None
    has_autoresponder: bool
    #: Autoresponder.state of the mailbox's reply, None without one; and its period.
    autoresponder_state: str | None
    autoresponder_starts_at: dt.datetime | None
    autoresponder_ends_at: dt.datetime | None
    forwarding: tuple[str, ...]
    keep_copy: bool
    may_forward: bool
    may_autorespond: bool

    @property
    def usage_percent(self) -> int | None:
        """Percent of the quota used (capped at 100); None when unknown or unlimited."""
        if self.usage_bytes is None or not self.quota:
            return None
        return min(100, round(100 * self.usage_bytes / self.quota))

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(
            p.label for p, on in
            ((Protocol.IMAP, self.imap), (Protocol.POP3, self.pop3), (Protocol.SMTP, self.smtp))
            if on
        )


def find_mailbox_by_address(session: Session, address: str) -> Mailbox | None:
    """The mailbox at `address`, whoever owns it (no tenant scope: the mailbox user is its own
    principal). None when there is none or the address is not valid."""
    try:
        local, domain_name = split_address(address, hosted=True)
    except InvalidName:
        return None
    return session.scalars(
        select(Mailbox)
        .join(Domain, Domain.id == Mailbox.domain_id)
        .where(Domain.name == domain_name, Mailbox.local_part == local)
    ).one_or_none()


def _account_key(address: str) -> str:
    try:
        return "@".join(split_address(address, hosted=True))
    except InvalidName:
        return address.strip().lower()[:320]


@functools.cache
def _dummy_hash(scheme: StorageScheme) -> str:
    # Checked when the address is unknown, so that a wrong address costs as long as a wrong
    # password and the timing does not tell which addresses exist.
    return hash_mailbox_password("mailadmin-no-such-mailbox", scheme)


def _scheme(session: Session) -> StorageScheme:
    scheme: StorageScheme = get_server_settings(session).password_scheme  # type: ignore[assignment]
    return scheme


@dataclass(frozen=True)
class MailboxSignIn:
    user: MailboxUser
    #: None while the second step (`second_step` CODE) is still to come.
    outcome: throttle.SignInOutcome | None
    #: The new server-side session's token (see `sessions`), when one was asked for.
    session_token: str | None = None
    #: As `accounts.PanelSignIn.second_step`.
    second_step: twofactor.SecondStep = twofactor.SecondStep.NONE


def sign_in_mailbox_user(
    session: Session,
    address: str,
    password: str,
    *,
    client_address: str,
    policy: throttle.ThrottlePolicy,
    source: str | None = None,
    device_token: str | None = None,
    session_idle_limit: dt.timedelta | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    remembered_browsers: Sequence[str] = (),
) -> MailboxSignIn:
    """Check a mailbox user's sign-in with the full address and the mailbox password.

    The stored hash may be in any scheme `hashing` verifies; after a successful check a hash in
    another scheme than the server's (or with weaker parameters) is replaced. Locks follow
    `throttle` (pair, address and account counters; known addresses and browsers may still
    sign in during an account-wide lock); `device_token` is the browser's "known device" token;
    with `session_idle_limit` a server-side session is started (`MailboxSignIn.session_token`),
    unless a second factor is owed (`MailboxSignIn.second_step`, as for panel users:
    `accounts.sign_in_panel_user`).

    Raises RateLimited while this attempt's way in is locked (and on the failure that locks
    it); AuthenticationFailed for a wrong address or password, and, once the password is right,
    for a suspended login (with a message saying so). Failures are flushed, so the caller must
    commit even when this raises.
    """
    now = clock()
    account_key = _account_key(address)
    throttle.check_sign_in(session, account_key, client_address, device_token, now)
    scheme = _scheme(session)
    mailbox = find_mailbox_by_address(session, address)
    if len(password) > MAX_PASSWORD_LENGTH:
        ok = False
    elif mailbox is None:
        verify_mailbox_password(password, _dummy_hash(scheme))
        ok = False
    else:
        ok = verify_mailbox_password(password, mailbox.password_hash)
    if not ok or mailbox is None or mailbox.suspend_login:
        refusal = throttle.record_sign_in_failure(
            session, account_key, client_address, device_token, now, policy
        )
        if refusal is not None:
            raise refusal
        if ok and mailbox is not None and mailbox.suspend_login:
            raise LoginSuspended(SUSPENDED_MESSAGE)
        raise AuthenticationFailed("The mail address or the password is wrong.")
    if needs_rehash(mailbox.password_hash, scheme):
        # A password some legacy scheme accepted may break the rules for new hashes (it cannot
        # contain NUL, but be safe); the old hash then stays.
        with contextlib.suppress(WeakPassword):
            mailbox.password_hash = hash_mailbox_password(password, scheme)
    user = MailboxUser(mailbox_id=mailbox.id, address=mailbox.address, source=source, clock=clock)
    second_step = twofactor.step_after_password(
        session, twofactor.Owner.mailbox(mailbox.id), remembered_browsers, now
    )
    if second_step is twofactor.SecondStep.CODE:
        session.flush()
        return MailboxSignIn(user=user, outcome=None, second_step=second_step)
    mailbox.last_login_at = now
    outcome = throttle.record_sign_in_success(
        session, account_key, client_address, device_token, now
    )
    session.flush()
    token = None
    if session_idle_limit is not None:
        token = sessions.start_session(
            session, mailbox_id=mailbox.id, client_address=client_address, now=now,
            idle_limit=session_idle_limit,
        )
    return MailboxSignIn(user=user, outcome=outcome, session_token=token, second_step=second_step)


def authenticate_mailbox_user(
    session: Session,
    address: str,
    password: str,
    *,
    client_address: str,
    policy: throttle.ThrottlePolicy,
    source: str | None = None,
    device_token: str | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> MailboxUser:
    """`sign_in_mailbox_user` for callers that only need the user; a mailbox that still owes
    its second factor is refused (AuthenticationFailed)."""
    signed_in = sign_in_mailbox_user(
        session, address, password, client_address=client_address, policy=policy,
        source=source, device_token=device_token, clock=clock,
    )
    if signed_in.second_step is twofactor.SecondStep.CODE:
        raise AuthenticationFailed("This mailbox signs in with a second factor.")
    return signed_in.user


def load_mailbox_user(session: Session, mailbox_id: int) -> Mailbox | None:
    """The mailbox behind a session, or None when it is gone or its login is suspended."""
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None or mailbox.suspend_login:
        return None
    return mailbox


def set_own_time_zone(
    session: Session, user: MailboxUser, zone: str, *, keep_chosen: bool = False
) -> Mailbox:
    """Set the zone the mailbox user reads times in (an IANA name); `keep_chosen` as for
    `accounts.set_own_time_zone`. Raises ValidationError for an unknown zone, NotFound or
    PermissionDenied as the other self-service changes."""
    mailbox = _own_mailbox(session, user)
    zone = check_time_zone(zone)
    if not (keep_chosen and mailbox.time_zone):
        mailbox.time_zone = zone
    session.flush()
    return mailbox


def _own_mailbox(session: Session, user: MailboxUser) -> Mailbox:
    mailbox = session.get(Mailbox, user.mailbox_id)
    if mailbox is None or mailbox.address != user.address:
        raise NotFound("This mailbox no longer exists.")
    if mailbox.suspend_login:
        raise PermissionDenied(SUSPENDED_MESSAGE)
    return mailbox


def _service_actor(user: MailboxUser, mailbox: Mailbox) -> Actor:
    """The actor the existing services see; only ever used with `mailbox.address`."""
    return Actor(
        name=mailbox.address,
        role=Role.CUSTOMER,
        channel=CHANNEL,
        source=user.source,
        customer_id=mailbox.domain.owner_id,
        clock=user.clock,
    )


def _forwarding(session: Session, mailbox: Mailbox) -> Forwarder | None:
    return session.scalars(
        select(Forwarder).where(
            Forwarder.domain_id == mailbox.domain_id, Forwarder.local_part == mailbox.local_part
        )
    ).one_or_none()


def _may_forward(mailbox: Mailbox, policy: SelfServicePolicy) -> bool:
    # Forwarding sends mail out on the mailbox's behalf; a mailbox whose sending is suspended
    # must not get around that by forwarding.
    return (
        policy.allow_forwarding
        and mailbox.domain.allow_self_forwarding
        and not mailbox.suspend_outgoing
    )


def get_own_mailbox(
    session: Session, user: MailboxUser, policy: SelfServicePolicy
) -> OwnMailbox:
    """The overview of the user's mailbox. Raises NotFound or PermissionDenied (suspended)."""
    mailbox = _own_mailbox(session, user)
    forwarding = _forwarding(session, mailbox)
    responder = session.scalars(
        select(Autoresponder).where(Autoresponder.mailbox_id == mailbox.id)
    ).one_or_none()
    has_responder = responder is not None and responder.enabled
    return OwnMailbox(
        id=mailbox.id,
        address=mailbox.address,
        unicode_address=address_to_unicode(mailbox.address),
        display_name=mailbox.display_name,
        quota=mailbox.quota,
        usage_bytes=mailbox.usage_bytes,
        usage_messages=mailbox.usage_messages,
        usage_read_at=mailbox.usage_read_at,
        imap=mailbox.imap,
        pop3=mailbox.pop3,
        smtp=mailbox.smtp,
        suspend_incoming=mailbox.suspend_incoming,
        suspend_outgoing=mailbox.suspend_outgoing,
        password_changed_at=mailbox.password_changed_at,
        last_login_at=mailbox.last_login_at,
        has_autoresponder=has_responder,
        autoresponder_state=responder.state(user.clock()) if responder else None,
        autoresponder_starts_at=responder.starts_at if responder else None,
        autoresponder_ends_at=responder.ends_at if responder else None,
        forwarding=tuple(
            address_to_unicode(d.address) for d in (forwarding.destinations if forwarding else [])
        ),
        keep_copy=bool(forwarding and forwarding.keep_copy),
        may_forward=_may_forward(mailbox, policy),
        may_autorespond=policy.allow_autoresponder and mailbox.domain.allow_self_autoresponder,
    )


def change_own_mailbox_password(
    session: Session,
    user: MailboxUser,
    current_password: str,
    new_password: str,
    *,
    policy: throttle.ThrottlePolicy,
) -> Mailbox:
    """Replace the user's mailbox password; the current one is required.

    The new one must pass the same policy as a password a customer sets. Wrong current passwords
    count against the sign-in throttle of the address (so a stolen session cannot guess the
    password at leisure); flushed, so the caller must commit even when this raises.

    Raises RateLimited, AuthenticationFailed (field "current_password"), WeakPassword, NotFound,
    PermissionDenied.
    """
    mailbox = _own_mailbox(session, user)
    now = user.now()
    # Counted per (mailbox, client address): a stolen session is stopped after a few guesses
    # without locking the owner out everywhere else.
    keys = {throttle.PAIR: throttle.pair_key(mailbox.address, user.source or "unknown")}
    throttle.ensure_not_locked(session, keys, now)
    if len(current_password) > MAX_PASSWORD_LENGTH or not verify_mailbox_password(
        current_password, mailbox.password_hash
    ):
        refusal = throttle.record_failure(session, keys, now, policy)
        if refusal is not None:
            raise refusal
        raise AuthenticationFailed("The current password is wrong.", field="current_password")
    if new_password == current_password:
        raise WeakPassword("The new password must differ from the current one.", field="password")
    changed = mailboxes.set_mailbox_password(
        session, _service_actor(user, mailbox), mailbox.address, new_password
    )
    throttle.clear_failures(session, throttle.PAIR, keys[throttle.PAIR])
    return changed


def get_own_autoresponder(session: Session, user: MailboxUser) -> Autoresponder | None:
    mailbox = _own_mailbox(session, user)
    return autoresponders.get_autoresponder(
        session, _service_actor(user, mailbox), mailbox.address
    )


def _require_autoresponder(mailbox: Mailbox, policy: SelfServicePolicy) -> None:
    if not (policy.allow_autoresponder and mailbox.domain.allow_self_autoresponder):
        raise PermissionDenied("Automatic replies are set by whoever manages your mail.")


def set_own_autoresponder(
    session: Session,
    user: MailboxUser,
    policy: SelfServicePolicy,
    *,
    subject: str,
    body: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    interval_days: int = 1,
    enabled: bool = True,
) -> Autoresponder:
    """Set the user's own out-of-office reply (the rules of `autoresponders.set_autoresponder`).

    Raises ValidationError, PermissionDenied, NotFound.
    """
    mailbox = _own_mailbox(session, user)
    _require_autoresponder(mailbox, policy)
    return autoresponders.set_autoresponder(
        session,
        _service_actor(user, mailbox),
        mailbox.address,
        subject=subject,
        body=body,
        starts_at=starts_at,
        ends_at=ends_at,
        interval_days=interval_days,
        enabled=enabled,
    )


def clear_own_autoresponder(session: Session, user: MailboxUser, policy: SelfServicePolicy) -> None:
    mailbox = _own_mailbox(session, user)
    _require_autoresponder(mailbox, policy)
    autoresponders.clear_autoresponder(session, _service_actor(user, mailbox), mailbox.address)


def _require_forwarding(mailbox: Mailbox, policy: SelfServicePolicy) -> None:
    if not (policy.allow_forwarding and mailbox.domain.allow_self_forwarding):
        raise PermissionDenied("Forwarding is set by whoever manages your mail.")
    if mailbox.suspend_outgoing:
        raise PermissionDenied(
            "Sending is suspended for this mailbox, so it cannot forward mail either."
        )


def set_own_forwarding(
    session: Session,
    user: MailboxUser,
    policy: SelfServicePolicy,
    destinations: Sequence[str],
    *,
    keep_copy: bool,
) -> Forwarder:
    """Forward the user's mail to `destinations`, keeping a copy or not (the rules of
    `forwarders.set_forwarder`: valid addresses, no loop, not to itself).

    Raises InvalidName, ValidationError, Conflict, PermissionDenied, NotFound.
    """
    mailbox = _own_mailbox(session, user)
    _require_forwarding(mailbox, policy)
    return forwarders.set_forwarder(
        session, _service_actor(user, mailbox), mailbox.address, destinations, keep_copy=keep_copy
    )


def clear_own_forwarding(session: Session, user: MailboxUser) -> bool:
    """Stop forwarding; True when there was forwarding to stop.

    Stopping is allowed even when setting is not: a user can always get its mail back.
    """
    mailbox = _own_mailbox(session, user)
    if _forwarding(session, mailbox) is None:
        return False
    forwarders.remove_forwarder(session, _service_actor(user, mailbox), mailbox.address)
    return True


def get_own_forwarding(session: Session, user: MailboxUser) -> Forwarder | None:
    return _forwarding(session, _own_mailbox(session, user))


def own_app_passwords(session: Session, user: MailboxUser) -> app_passwords.AppPasswordsOverview:
    """The user's app passwords and whether its main password is refused by the mail servers.

    Raises NotFound, PermissionDenied (suspended).
    """
    mailbox = _own_mailbox(session, user)
    return app_passwords.app_passwords_overview(
        session, _service_actor(user, mailbox), mailbox.address)


def add_own_app_password(
    session: Session, user: MailboxUser, label: str, protocols: Sequence[str]
) -> app_passwords.NewAppPassword:
    """Create an app password for the user's mailbox (the rules of
    `app_passwords.add_app_password`); its text is in the result, to be shown once.

    Raises ValidationError, Conflict, LimitReached, NotFound, PermissionDenied.
    """
    mailbox = _own_mailbox(session, user)
    return app_passwords.add_app_password(
        session, _service_actor(user, mailbox), mailbox.address, label, protocols)


def revoke_own_app_password(session: Session, user: MailboxUser, app_password_id: int) -> str:
    """Revoke one of the user's own app passwords; returns its name. Raises NotFound."""
    mailbox = _own_mailbox(session, user)
    return app_passwords.revoke_app_password(
        session, _service_actor(user, mailbox), mailbox.address, app_password_id)


def set_own_app_passwords_only(session: Session, user: MailboxUser, enabled: bool) -> Mailbox:
    """Refuse the main password over IMAP, POP3 and SMTP (True) or accept it again; signing
    in here keeps using it. Raises NotFound, PermissionDenied."""
    mailbox = _own_mailbox(session, user)
    return app_passwords.set_app_passwords_only(
        session, _service_actor(user, mailbox), mailbox.address, enabled)


def get_own_device_setup(session: Session, user: MailboxUser) -> ClientSetup:
    """The servers, ports and user name the user's mail programs need, for the protocols this
    mailbox may use."""
    mailbox = _own_mailbox(session, user)
    return build_setup(
        get_server_settings(session),
        address=mailbox.address,
        domain=mailbox.domain.name,
        imap=mailbox.imap,
        pop3=mailbox.pop3,
        smtp=mailbox.smtp,
    )


#: Public client-setup lookups per network address before a pause; counted in the sign-in
#: throttle table under a key of their own so that all panel processes share the count.
PUBLIC_LOOKUP_POLICY = throttle.ThrottlePolicy(
    max_failures_per_account=1,
    max_failures_per_address=60,
    window=dt.timedelta(minutes=10),
    lock=dt.timedelta(minutes=10),
)
_LOOKUP_KEY_PREFIX = "clientsetup "


def _count_public_lookup(
    session: Session, client_address: str, now: dt.datetime, policy: throttle.ThrottlePolicy
) -> None:
    keys = {throttle.ADDRESS: (_LOOKUP_KEY_PREFIX + client_address)[:320]}
    throttle.ensure_not_locked(session, keys, now)
    # The lookup that reaches the limit is still answered; the pause starts with the next one.
    throttle.record_failure(session, keys, now, policy)


def public_client_setup(
    session: Session,
    address: str,
    *,
    client_address: str,
    now: dt.datetime,
    policy: throttle.ThrottlePolicy = PUBLIC_LOOKUP_POLICY,
) -> ClientSetup:
    """What a mail program asking about `address` is told (autoconfig, autodiscover).

    Each call counts as one lookup from `client_address` (flushed; the caller commits even when
    this raises): ValidationError for text with a control character;
    RateLimited once the address asked `policy.max_failures_per_address` times
    within the window, and while it is paused.

    For a mailbox hosted here: only the protocols it may use. For anything else (an unknown
    address, a domain not hosted here, a mailbox whose login is suspended, text that is not an
    address) the generic answer with every protocol the server offers, so that the answer does
    not tell whether an address exists; only a mailbox whose protocols differ from the full set
    is told apart, which is what the protocols need. The domain of the answer is the one asked
    about when it is a valid domain name, otherwise the IMAP host.
    """
    _count_public_lookup(session, client_address, now, policy)
    refused = control_character_in(address)
    if refused is not None:
        # Never an address; and echoed into the XML answer it would break it.
        raise ValidationError(
            f"The address contains the control character U+{ord(refused):04X}; "
            "mail addresses never do.", field="emailaddress",
        )
    settings = get_server_settings(session)
    mailbox = find_mailbox_by_address(session, address)
    if mailbox is not None and not mailbox.suspend_login:
        return build_setup(
            settings,
            address=mailbox.address,
            domain=mailbox.domain.name,
            imap=mailbox.imap,
            pop3=mailbox.pop3,
            smtp=mailbox.smtp,
        )
    domain = settings.imap_host
    with contextlib.suppress(InvalidName):
        domain = normalize_domain(domain_of(address))
    return build_setup(settings, address=None, domain=domain, imap=True, pop3=True, smtp=True)
