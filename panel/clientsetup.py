"""Automatic configuration for mail programs: Thunderbird autoconfig, Outlook autodiscover and
the Apple configuration profile.

The first two are public (mail programs ask before anyone signs in). They answer for a mailbox
hosted here with only the protocols it may use, and for anything else (unknown address, domain
not hosted here, suspended login, no address at all) with the generic answer offering every
protocol the server runs; so they do not tell whether an address exists, except where the
mailbox's own protocols differ from the full set, which is the point of asking. They are rate
limited per network address (`MAILBOX_CLIENTSETUP_MAX_LOOKUPS` per 10 minutes, default 60).

The profile is for the signed-in mailbox user only.
"""

from __future__ import annotations

import dataclasses
import typing as t

from flask import Blueprint, Response, abort, current_app, request
from flask.typing import ResponseReturnValue

from mailadmin import clientsetup
from mailadmin.errors import RateLimited
from mailadmin.models import utcnow
from mailadmin.services import selfservice

from . import db
from .extensions import csrf
from .selfservice import current_mailbox_user, mailbox_required

bp = Blueprint("clientsetup", __name__)

XML = "text/xml; charset=utf-8"


def _lookup(address: str) -> clientsetup.ClientSetup | Response:
    """One public lookup: the setup for `address`, or a 429 response."""
    limit = int(current_app.config.get("MAILBOX_CLIENTSETUP_MAX_LOOKUPS", 60))
    policy = dataclasses.replace(
        selfservice.PUBLIC_LOOKUP_POLICY, max_failures_per_address=limit
    )
    # The count must be kept even when the answer is a refusal.
    db.keep_changes_on_error()
    try:
        return selfservice.public_client_setup(
            db.session(),
            address[:320],
            client_address=request.remote_addr or "unknown",
            now=utcnow(),
            policy=policy,
        )
    except RateLimited as exc:
        return Response(
            exc.message + "\n",
            status=429,
            mimetype="text/plain",
            headers={"Retry-After": str(exc.retry_after_seconds)},
        )


def _no_store(response: Response) -> Response:
    # A per-mailbox answer must not be cached by a proxy and handed to someone else.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/mail/config-v1.1.xml")
@bp.route("/.well-known/autoconfig/mail/config-v1.1.xml")
def thunderbird() -> ResponseReturnValue:
    setup = _lookup(request.args.get("emailaddress", ""))
    if isinstance(setup, Response):
        return setup
    if not setup.incoming:
        abort(404, description="This mailbox may not be read by mail programs.")
    return _no_store(Response(clientsetup.thunderbird_autoconfig(setup), content_type=XML))


@bp.route("/autodiscover/autodiscover.xml", methods=["GET", "POST"])
@bp.route("/Autodiscover/Autodiscover.xml", methods=["GET", "POST"])
def autodiscover() -> ResponseReturnValue:
    if request.method == "POST":
        address = clientsetup.parse_autodiscover_request(request.get_data(cache=False)[:65536])
    else:
        address = request.args.get("emailaddress") or request.args.get("EMailAddress")
    if not address:
        return Response(clientsetup.autodiscover_error(600, "Invalid Request"), content_type=XML)
    setup = _lookup(address)
    if isinstance(setup, Response):
        return setup
    if not setup.incoming:
        return Response(
            clientsetup.autodiscover_error(601, "Provider not available"), content_type=XML
        )
    # The login name is what Outlook asked about (stripped of what no address contains); the
    # mail servers log in with the full address.
    login_name = setup.address or address.strip()
    return _no_store(
        Response(clientsetup.outlook_autodiscover(setup, login_name), content_type=XML)
    )


# Outlook posts without a CSRF token; the view changes nothing but the lookup count.
csrf.exempt(autodiscover)


@bp.route("/me/device.mobileconfig")
@mailbox_required
def mobileconfig() -> ResponseReturnValue:
    setup = selfservice.get_own_device_setup(db.session(), current_mailbox_user())
    profile = clientsetup.apple_mobileconfig(setup)
    if profile is None:
        abort(404, description="This mailbox may use neither IMAP nor POP3, so there is no "
                               "mail account to set up.")
    name = t.cast(str, setup.address).replace("@", "-at-")
    return _no_store(
        Response(
            profile,
            content_type="application/x-apple-aspen-config",
            headers={"Content-Disposition": f'attachment; filename="{name}.mobileconfig"'},
        )
    )
