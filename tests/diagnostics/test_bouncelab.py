"""Bounces made by a real Exim in a chroot (see bouncelab.py), labelled by construction."""

from __future__ import annotations

import json

import pytest

from mailadmin.diagnostics import classify

from ..databases import unavailable
from . import bouncelab

LABELS = [json.loads(line) for line in
          (bouncelab.CORPUS / "labels.jsonl").read_text("utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("label", LABELS, ids=[x["sample"] for x in LABELS])
def test_lab_bounces_are_classified_right(label: dict[str, str]) -> None:
    findings = classify((bouncelab.CORPUS / label["file"]).read_bytes())
    assert findings, label
    assert (findings[0].reason, findings[0].family) == (label["reason"], label["family"])


def test_503_after_refused_rcpt_names_the_refusal() -> None:
    text = (bouncelab.CORPUS / "exim-relay-503.txt").read_text("utf-8")
    assert "503" in text and "relay not permitted" in text
    finding = classify(text)[0]
    assert finding.family == "relay_denied"
    assert finding.replycode == "550"


def test_503_after_failed_sender_verification_names_the_verification() -> None:
    text = (bouncelab.CORPUS / "exim-sender-verify-503.txt").read_text("utf-8")
    assert "550-Verification failed" in text and "503" in text
    finding = classify(text)[0]
    assert finding.family == "sender_verify_failed"
    assert finding.replycode == "550" and finding.stage == "RCPT"


@pytest.mark.parametrize("sample", ["unknown-user", "relay-denied-then-503",
                                    "sender-verify-then-503"])
def test_regenerated_sample_matches_the_corpus(sample: str) -> None:
    reason = bouncelab.available()
    if reason:
        unavailable(reason)
    bouncelab.ensure_chroot()
    file_name, make, expected, family = bouncelab.SAMPLES[sample]
    fresh = make()
    kept = (bouncelab.CORPUS / file_name).read_text("utf-8")
    assert bouncelab.normalise_sample(fresh) == bouncelab.normalise_sample(kept)
    finding = classify(fresh)[0]
    assert (finding.reason, finding.family) == (expected, family)
