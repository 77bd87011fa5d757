"""The files-mode mail-stack matrix, unchanged, against Dovecot 2.4 (chroot) + host Postfix.

Every test of tests/mailstack/test_matrix.py runs here with this folder's `stack` fixture.
"""

from tests.mailstack.test_matrix import *  # noqa: F403
