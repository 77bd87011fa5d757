"""mailadmin core: models, services, hashing, config renderers and diagnostics.

Nothing in this package imports Flask: the acting user, the settings and the clock are passed in.
"""

__version__ = "0.1.0"
