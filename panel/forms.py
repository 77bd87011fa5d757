"""Form helpers shared by the blueprints: forms check shape only; services check the rules."""

from __future__ import annotations

from flask_wtf import FlaskForm

from mailadmin.errors import MailadminError


def attach_error(form: FlaskForm, error: MailadminError) -> None:
    """Show a service's refusal beside the field it names, or above the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


#: render_kw of a new mailbox password field (and its "again" field): js/passwords.js adds the
#: generator and the strength meter with the mailbox policy (mailadmin.passwords).
NEW_MAILBOX_PASSWORD: dict[str, str] = {"autocomplete": "new-password"}
#: The same for a panel account's password, checked by accounts.check_panel_password.
NEW_PANEL_PASSWORD: dict[str, str] = {"autocomplete": "new-password",
                                      "data-password-rules": "panel"}
