"""CLI conventions: every verb explains itself; bad input gives one line and exit code 2."""
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from kernel.cli import VERBS, main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:          # argparse exits for --help and bad arguments
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_top_level_help_lists_every_verb(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(capsys, verb):
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0
    assert f"usage: postloan {verb}" in out
    assert len(out.splitlines()) > 3


@pytest.mark.parametrize("argv, message", [
    (["generate", "--accounts", "ten", "--out", "x.parquet"], "argument --accounts: expected a whole number, got 'ten'"),
    (["generate", "--accounts", "0", "--out", "x.parquet"], "expected a number above 0"),
    (["generate", "--out", "/no/such/dir/book.parquet"], "directory /no/such/dir does not exist"),
    (["generate", "--as-of", "2026-13-01", "--out", "x.parquet"], "expected a date as YYYY-MM-DD"),
    (["generate"], "the following arguments are required: --out"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_generate_writes_a_valid_book(capsys, tmp_path):
    path = tmp_path / "book.parquet"
    code, out, err = run(capsys, "generate", "--accounts", "1000", "--seed", "4", "--out", str(path), "--quiet")
    assert code == 0 and "wrote 1,000 accounts" in err and out == ""       # stdout is for `--out -` alone
    from kernel import schema
    schema.validate(pq.read_table(path))


def test_write_failure_at_run_time_is_one_line():
    """A disk that fills up mid-write (/dev/full) is reported in one line, exit 2."""
    proc = subprocess.run(["postloan", "generate", "--accounts", "20000", "--out", "/dev/full", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "/dev/full" in proc.stderr or "space" in proc.stderr.lower()


def test_console_script_and_module_entry_points(tmp_path):
    for cmd in (["postloan"], [sys.executable, "-m", "kernel"]):
        proc = subprocess.run(cmd + ["generate", "--accounts", "x", "--out", "b.parquet"],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.startswith("postloan generate: error:") or "error:" in proc.stderr
        assert "Traceback" not in proc.stderr
