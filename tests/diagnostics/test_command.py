from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mailadmin.cli.diagnose import diagnose_command
from mailadmin.diagnostics import batch, classify


def test_json_lines_per_file(tmp_path: Path) -> None:
    rcpt = tmp_path / "rcpt.txt"
    rcpt.write_text("503 valid RCPT command must precede DATA\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = CliRunner().invoke(diagnose_command, ["--json", str(rcpt), str(empty)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["file"], r["family"], r["reason"]) for r in records] == [
        (str(rcpt), "rcpt_before_data", "syntaxerror"),
        (str(empty), "other", "undefined"),
    ]
    for record in records:
        assert {"file", "family", "reason", "status", "replycode", "recipient"} <= record.keys()
    assert records[0]["replycode"] == "503"


def test_stdin_and_human_output() -> None:
    result = CliRunner().invoke(diagnose_command, ["-"], input="554 5.7.1 Relay access denied\n")
    assert result.exit_code == 0
    assert "relay_denied" in result.output
    assert "fix:" in result.output


def test_no_arguments_reads_stdin_as_json() -> None:
    result = CliRunner().invoke(diagnose_command, ["--json"], input="535 Authentication failed")
    record = json.loads(result.output)
    assert (record["file"], record["family"]) == ("-", "auth_failed")


def test_unreadable_file_fails_but_others_are_diagnosed(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("552 5.3.4 Error: message file too big")
    result = CliRunner().invoke(diagnose_command, ["--json", str(tmp_path / "missing"), str(good)])
    assert result.exit_code == 2
    assert '"size_exceeded"' in result.stdout


def test_many_files_are_shared_between_workers_in_order(tmp_path: Path) -> None:
    # Past batch.PARALLEL_FROM files the work goes to forked workers; the output
    # keeps the order of the arguments and an unreadable file is still reported.
    replies = ["550 5.1.1 <b@example.net>: User unknown", "554 5.7.1 Relay access denied",
               "552 5.3.4 Error: message file too big", "535 5.7.8 Authentication failed"]
    names = []
    for number in range(batch.PARALLEL_FROM + 9):
        path = tmp_path / f"{number:03}.txt"
        path.write_text(replies[number % len(replies)])
        names.append(str(path))
    names.insert(17, str(tmp_path / "missing.txt"))
    results = list(batch.classify_files(names))
    assert [name for name, _ in results] == names
    missing = results[17][1]
    assert isinstance(missing, str) and "No such file" in missing
    for name, findings in results[:17] + results[18:]:
        assert not isinstance(findings, str)
        assert findings == classify(Path(name).read_bytes()), name
    result = CliRunner().invoke(diagnose_command, ["--json", *names])
    assert result.exit_code == 2
    files = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert files == [n for n in names if "missing" not in n]
