from __future__ import annotations

from pathlib import Path

import pytest

from ..databases import unavailable

# CI clones the repository with the shared corpora beside it: <parent>/shared/corpus.
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "bounces" / "labels.jsonl").is_file():
        unavailable(f"labelled corpus not found at {CORPUS}")
    return CORPUS
