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
