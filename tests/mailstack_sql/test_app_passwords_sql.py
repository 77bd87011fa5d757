"""The app-password tests of tests/mailstack/test_app_passwords.py, unchanged, against this
folder's `stack` fixture."""

from tests.mailstack.test_app_passwords import *  # noqa: F403
