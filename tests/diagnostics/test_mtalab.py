"""Bounces and SMTP replies made by real Postfix and OpenSMTPD (see mtalab.py), labelled by
construction: every kept sample is classified right, and a run of the lab regenerates a
sample of them that must match the kept ones and be classified right too."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.diagnostics import classify

from ..databases import unavailable
from . import mtalab

LABELS = [json.loads(line) for line in
          (mtalab.CORPUS / "labels.jsonl").read_text("utf-8").splitlines() if line.strip()]
BY_NAME = {sample.name: sample for sample in mtalab.samples()}

#: Regenerated on every run: one of each kind (a Postfix DSN, an OpenSMTPD notice, a
#: client-side transcript) and the causes that need the lab's DNS server and TLS policy.
REGENERATED = ("postfix-unknown-user", "postfix-domain-without-mx", "postfix-tls-required",
               "opensmtpd-relay-denied", "postfix-smtpd-relay-denied-then-data",
               "opensmtpd-smtpd-relay-denied-then-data")


def test_every_sample_of_the_lab_is_kept_and_labelled() -> None:
    assert {x["sample"] for x in LABELS} == set(BY_NAME)
    for label in LABELS:
        assert (mtalab.CORPUS / label["file"]).is_file(), label
        sample = BY_NAME[label["sample"]]
        assert (label["reason"], label["family"]) == (sample.reason, sample.family)


@pytest.mark.parametrize("label", LABELS, ids=[x["sample"] for x in LABELS])
def test_lab_sample_is_classified_right(label: dict[str, str]) -> None:
    findings = classify((mtalab.CORPUS / label["file"]).read_bytes())
    assert findings, label
    assert (findings[0].reason, findings[0].family) == (label["reason"], label["family"])


@pytest.mark.parametrize("sample", ["postfix-smtpd-relay-denied-then-data",
                                    "postfix-smtpd-unknown-user-then-data",
                                    "opensmtpd-smtpd-relay-denied-then-data",
                                    "opensmtpd-smtpd-unknown-user-then-data"])
def test_refusal_after_a_refused_rcpt_names_the_rcpt_cause(sample: str) -> None:
    # Postfix answers DATA with "554 5.5.1 Error: no valid recipients", OpenSMTPD with
    # "503 5.5.4 ... No recipient specified", once every RCPT was refused: the answer is
    # the RCPT refusal before it, not the sequence error.
    text = (mtalab.CORPUS / BY_NAME[sample].file).read_text("utf-8")
    data_reply = text.split(">>> DATA\n<<< ")[1]
    assert data_reply.startswith(("554 5.5.1", "503 5.5.4"))
    finding = classify(text)[0]
    assert finding.family == BY_NAME[sample].family
    assert finding.replycode in {"550", "554"} and finding.stage == "RCPT"
    assert finding.line not in data_reply


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mtalab.Lab]:
    reason = mtalab.available()
    if reason:
        unavailable(reason)
    folder = Path("/var/tmp/bouncelab") / f"mtalab-test-{tmp_path_factory.getbasetemp().name}"
    try:
        with mtalab.lab(folder) as lab:
            yield lab
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", REGENERATED)
def test_regenerated_sample_matches_the_corpus(running_lab: mtalab.Lab, name: str) -> None:
    sample = BY_NAME[name]
    fresh = sample.make(running_lab)
    kept = (mtalab.CORPUS / sample.file).read_text("utf-8")
    assert _notice(mtalab.normalise_sample(fresh)) == _notice(mtalab.normalise_sample(kept))
    finding = classify(fresh)[0]
    assert (finding.reason, finding.family) == (sample.reason, sample.family)


def _notice(text: str) -> str:
    # The returned original and the subject carry the run's own nonce.
    text = text.split("Undelivered Message")[0].split("copy of the original")[0]
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("Subject:", "X-Original-To", "Delivered-To")))
