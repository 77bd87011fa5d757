"""Flask extensions shared by the app factory and the blueprints that configure them.

Here rather than in `panel/__init__` so that a blueprint module can import one without
importing the package that imports it (an import cycle).
"""

from __future__ import annotations

from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
