"""postloan check / test: output and exit status (decide: test_cli_decide.py)."""
import shutil

from kernel.cli import main

from .conftest import HERE
from .test_bundle import ACTION, BUCKET, write


def test_check_prints_every_diagnostic_and_fails_on_errors(capsys):
    assert main(["check", str(HERE / "golden" / "errors" / "names.yaml")]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 8 and all(line.startswith(str(HERE / "golden" / "errors" / "names.yaml") + ":") for line in lines)
    assert "8 errors, 0 warnings" in err


def test_check_passes_with_warnings(capsys):
    assert main(["check", str(HERE / "golden" / "warnings" / "gaps.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "warning: integer input `dpd`: no rule covers 61, 91..180" in out and "0 errors, 1 warning" in err


def test_check_a_bundle_folder(tmp_path, capsys):
    assert main(["check", str(write(tmp_path, bucket=BUCKET, action=ACTION))]) == 0
    write(tmp_path, action=ACTION.replace("bucket.late: bool", "bucket.lat: bool").replace("when: bucket.late", "when: bucket.lat"))
    assert main(["check", str(tmp_path)]) == 1
    assert "did you mean `late`?" in capsys.readouterr().out


def test_check_the_shipped_bundle(capsys):
    assert main(["check"]) == 0


def test_test_runs_examples_and_reports_failures(tmp_path, capsys):
    shutil.copy(HERE / "cases" / "policies.yaml", tmp_path / "policies.yaml")
    assert main(["test", str(tmp_path / "policies.yaml")]) == 0
    assert "4 examples in 1 rulesets: 4 passed, 0 failed" in capsys.readouterr().err
    text = (tmp_path / "policies.yaml").read_text().replace("expect: {action: SMS, weight: 1.0, rule: sms}",
                                                             "expect: {action: CALL, weight: 1.0, rule: sms}")
    (tmp_path / "policies.yaml").write_text(text)
    assert main(["test", str(tmp_path / "policies.yaml")]) == 1
    out, err = capsys.readouterr()
    assert "FAILED: policies: test `only sms`: action: expected CALL, got SMS (rule sms)" in out
    assert "1 failed" in err


def test_test_refuses_a_broken_ruleset(capsys):
    assert main(["test", str(HERE / "golden" / "errors" / "types.yaml")]) == 1
    assert "do not compile" in capsys.readouterr().err
