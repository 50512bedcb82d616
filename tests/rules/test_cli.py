"""postloan check / test / decide: output, exit status, streaming."""
import shutil

import pyarrow.parquet as pq

from kernel.cli import main

from .conftest import AS_OF, HERE
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


def test_decide_streams_a_parquet_book(tmp_path, small_book, capsys):
    bundle = write(tmp_path / "bundle" if (tmp_path / "bundle").mkdir() is None else tmp_path, bucket=BUCKET, action=ACTION)
    book = tmp_path / "book.parquet"
    pq.write_table(small_book.slice(0, 2500), book, row_group_size=1000)
    out = tmp_path / "decisions.parquet"
    assert main(["decide", "--in", str(book), "--out", str(out), "--as-of", AS_OF.isoformat(),
                 "--bundle", str(bundle), "--batch-rows", "700", "--quiet"]) == 0
    decided = pq.read_table(out)
    assert decided.num_rows == 2500
    assert decided.column_names[:3] == ["account_id", "as_of", "bundle_hash"]
    assert decided.column("account_id").to_pylist() == small_book.column("account_id").to_pylist()[:2500]
    assert set(decided.column("as_of").to_pylist()) == {AS_OF}
    late = [d > 30 for d in small_book.column("dpd").to_pylist()[:2500]]
    assert decided.column("bucket.late").to_pylist() == late
    assert "decided 2,500 accounts" in capsys.readouterr().out


def test_decide_rejects_a_missing_column_in_one_line(tmp_path, small_book, capsys):
    bundle = write(tmp_path, bucket=BUCKET, action=ACTION)
    book = tmp_path / "book.parquet"
    pq.write_table(small_book.slice(0, 10).drop_columns(["overdue_amount"]), book)
    out = tmp_path / "decisions.parquet"
    assert main(["decide", "--in", str(book), "--out", str(out), "--bundle", str(bundle), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing column `overdue_amount`" in err and str(book) in err
    assert not out.exists()
