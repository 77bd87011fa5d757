"""Deliverability per domain: the DNS health check, the records to publish, DKIM keys; and
the MTA-STS policy served to ``mta-sts.<domain>`` (public, like the client-setup files)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from mailadmin.errors import MailadminError, NotFound
from mailadmin.names import domain_to_unicode
from mailadmin.services import deliverability, dkim_keys

from . import db
from .auth import current_actor

bp = Blueprint("deliverability", __name__)

#: Each status as the page shows it (Bootstrap colour, words).
STATUS_STYLE = {
    "ok": ("success", "ok"),
    "missing": ("danger", "missing"),
    "wrong": ("danger", "wrong"),
    "conflicting": ("warning", "conflicting"),
}


class CheckForm(FlaskForm):  # type: ignore[misc]
    pass


class NewKeyForm(FlaskForm):  # type: ignore[misc]
    algorithm = SelectField("Key type", default="rsa", choices=[
        SelectChoice("rsa", "RSA 2048 (every receiver)"),
        SelectChoice("ed25519", "Ed25519 (published only: OpenDKIM 2.11 signs with RSA)")])


#: Diagnosis families whose cause is usually the sender domain's DNS (or the server's
#: reputation and reverse DNS): their findings link to `health_url` of the sender's domain.
HEALTH_FAMILIES = frozenset({"spf_dmarc", "rbl_blocked"})


def health_url(domain: str) -> str:
    """The deliverability page of `domain` (ASCII or Unicode), for the diagnosis page's
    links from findings of `HEALTH_FAMILIES`. It answers 404 to anyone who does not manage
    the domain, so linking is safe whoever reads the diagnosis."""
    return url_for("deliverability.page", name=domain)


@bp.route("/domains/<name>/deliverability")
@login_required  # type: ignore[misc]
def page(name: str) -> ResponseReturnValue:
    try:
        health = deliverability.dns_health(db.session(), current_actor(), name)
    except MailadminError:  # not a domain name, or none of this account's
        abort(404, description="There is no such domain in your account.")
    return render_template(
        "domains/deliverability.html", health=health, unicode_name=domain_to_unicode(health.domain),
        status_style=STATUS_STYLE, check_form=CheckForm(formdata=None),
        key_form=NewKeyForm(formdata=None),
        waiting=[k for k in health.keys if k.state == "published"],
    )


@bp.route("/domains/<name>/deliverability/check", methods=["POST"])
@login_required  # type: ignore[misc]
def check(name: str) -> ResponseReturnValue:
    """'Check again': look every record up now."""
    if CheckForm().validate_on_submit():
        try:
            health = deliverability.dns_health(db.session(), current_actor(), name,
                                               refresh=True)
        except NotFound:
            abort(404, description="There is no such domain in your account.")
        except MailadminError as exc:
            flash(exc.message, "danger")
        else:
            bad = [v.record for v in health.verdicts if v.status != "ok"]
            if bad:
                flash(f"Not in order yet: {', '.join(bad)}.", "warning")
            else:
                flash("Every record is in order.", "success")
    return redirect(url_for("deliverability.page", name=name))


@bp.route("/domains/<name>/deliverability/dkim", methods=["POST"])
@login_required  # type: ignore[misc]
def new_key(name: str) -> ResponseReturnValue:
    """A new DKIM key (the first, or the next in a rotation)."""
    form = NewKeyForm()
    if form.validate_on_submit():
        try:
            key = dkim_keys.rotate_key(db.session(), current_actor(), name,
                                       algorithm=form.algorithm.data)
        except NotFound:
            abort(404, description="There is no such domain in your account.")
        except MailadminError as exc:
            flash(exc.message, "danger")
        else:
            flash(f"New DKIM key {key.selector}: publish its record below; signing switches "
                  "to it once DNS serves it.", "success")
    else:
        flash("Choose RSA or Ed25519.", "danger")
    return redirect(url_for("deliverability.page", name=name))


@bp.route("/.well-known/mta-sts.txt")
def mta_sts_policy() -> ResponseReturnValue:
    """RFC 8461's policy file, for requests to ``mta-sts.<hosted domain>``."""
    try:
        policy = deliverability.mta_sts_policy_for(db.session(), request.host)
    except NotFound:
        abort(404)
    return Response(policy, mimetype="text/plain")
