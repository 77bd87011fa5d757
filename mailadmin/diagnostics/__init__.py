"""Mail error and bounce diagnostics: say what went wrong and what to change.

Pure library code (no Flask): the panel, the API and the CLI all call
:func:`classify` and look the result up in the catalogue with :func:`family`.
"""

from __future__ import annotations

from .catalogue import CLIENTS, Catalogue, Family, family, load_catalogue
from .classify import Finding, classify

__all__ = ["CLIENTS", "Catalogue", "Family", "Finding", "classify", "family", "load_catalogue"]
