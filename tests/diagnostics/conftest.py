from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..databases import unavailable

# CI clones the repository with the shared corpora beside it: <parent>/shared/corpus.
# MAILADMIN_CORPUS points elsewhere (a git worktree two levels further down).
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
if os.environ.get("MAILADMIN_CORPUS"):
    CORPUS = Path(os.environ["MAILADMIN_CORPUS"])


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "bounces" / "labels.jsonl").is_file():
        unavailable(f"labelled corpus not found at {CORPUS}")
    return CORPUS
