"""The files-mode matrix, unchanged, in SQL mode on Dovecot 2.4 (chroot) + host Postfix, on
SQLite, PostgreSQL and MariaDB.

As in tests/mailstack_sql, only the two tests that apply after a change are replaced: here a
change must be seen with no apply at all (`SqlStack24.reapply` fails if called), and the delay
is measured and printed.
"""

from __future__ import annotations

import pytest

from tests.mailstack.test_matrix import *  # noqa: F403
from tests.mailstack_sql.test_matrix_sql import (  # noqa: F401  (the no-apply checks)
    test_every_setting_flip_is_followed_by_the_servers,
    test_password_change_takes_effect_after_apply,
    test_single_flip_delay,
)

pytestmark = pytest.mark.mailstack
