"""Bad input on every verb: one line on stderr naming the file, field, line or rule, exit code 2
(1 for `check` and `test` finding ruleset errors) — never a traceback, a hang or a silently
wrong file. Interrupted runs leave no output under the final name."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kernel.cli import main

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-28"


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:          # argparse exits for bad arguments
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    assert main(["generate", "--accounts", "2000", "--seed", "3", "--out", str(path), "--quiet"]) == 0
    return path


# --- dates -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["generate", "--as-of", "9999-12-31"],
     "argument --as-of: 9999-12-31: expected a date from 1970-01-01 to 2199-12-31"),
    (["generate", "--as-of", "0001-01-01"], "argument --as-of: 0001-01-01: expected a date from 1970-01-01"),
    (["demo", "--as-of", "9999-12-31"], "expected a date from 1970-01-01 to 2199-12-31"),
    (["demo", "--now", "0001-01-01T00:00+05:00"], "argument --now: 0001-01-01T00:00+05:00: expected a date-time from"),
    (["decide", "--as-of", "2200-01-01"], "argument --as-of: 2200-01-01: expected a date from"),
])
def test_dates_out_of_range_are_refused(capsys, tmp_path, book, argv, message):
    """A year-9999 book had dates Python cannot represent; compliance failed on every action."""
    files = ["--out", str(tmp_path / "x.parquet")] if argv[0] != "demo" else []
    if argv[0] == "decide":
        files = ["--in", str(book)] + files
    code, _, err = run(capsys, *argv, *files)
    assert code == 2
    assert message in one_line(err)
    assert not (tmp_path / "x.parquet").exists()


# --- generate: the format follows the name -----------------------------------------------------

def test_generate_writes_the_format_its_name_says(capsys, tmp_path):
    from kernel import plugins, schema
    for name in ("book.csv", "book.arrow", "book.sqlite"):
        code, out, err = run(capsys, "generate", "--accounts", "300", "--seed", "2", "--out", str(tmp_path / name),
                             "--quiet")
        assert code == 0, err
        read = list(plugins.read_batches(str(tmp_path / name)))
        assert sum(b.num_rows for b in read) == 300
        for b in read:
            schema.validate(b)
    assert (tmp_path / "book.csv").read_text("utf-8").startswith('"account_id","customer_id"')
    code, _, err = run(capsys, "generate", "--accounts", "300", "--out", str(tmp_path / "export.txt"),
                       "--format", "csv", "--quiet")
    assert code == 0 and (tmp_path / "export.txt").read_text("utf-8").startswith('"account_id"')


def test_generate_refuses_a_name_no_connector_writes(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--accounts", "10", "--out", str(tmp_path / "book.xlsx"))
    assert code == 2
    assert "book.xlsx: no connector handles this file type" in one_line(err)
    assert list(tmp_path.iterdir()) == []


# --- decide --------------------------------------------------------------------------------------

def test_decide_refuses_a_format_its_output_name_denies(capsys, tmp_path, book):
    """--format csv with decisions.parquet used to write CSV into a file named .parquet."""
    csv_book = tmp_path / "export.txt"
    assert main(["generate", "--accounts", "50", "--out", str(csv_book), "--format", "csv", "--quiet"]) == 0
    capsys.readouterr()                   # generate's summary, on stderr
    out = tmp_path / "decisions.parquet"
    code, _, err = run(capsys, "decide", "--in", str(csv_book), "--format", "csv", "--out", str(out))
    assert code == 2
    assert f"{out}: --format csv, but the name says parquet; give this file's format with --out-format" \
        in one_line(err)
    assert not out.exists()


def test_decide_refuses_to_replace_its_own_book(capsys, tmp_path, book, monkeypatch):
    shutil.copy(book, tmp_path / "book.parquet")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "decide", "--in", "book.parquet", "--out", "./book.parquet")
    assert code == 2
    assert "./book.parquet: --out is the book itself; the decisions would replace it" in one_line(err)
    assert pq.read_table(tmp_path / "book.parquet").equals(pq.read_table(book))


def test_decide_with_a_bundle_that_does_not_compile_is_one_line_exit_2(capsys, tmp_path, book, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = (ROOT / "rulesets" / "dpd_bucket.yaml").read_text("utf-8")
    (bundle / "dpd_bucket.yaml").write_text(text.replace("hit: unique", "hit: [unique"), "utf-8")
    (bundle / "broken.yaml").write_text("ruleset: broken\n\toutputs: {}\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "decide", "--in", str(book), "--out", "d.parquet", "--bundle", "bundle")
    assert code == 2
    line = one_line(err)
    assert line.startswith("postloan decide: error: the bundle does not compile: bundle/broken.yaml:2:1: ")
    assert "(a tab: YAML indents with spaces only)" in line
    assert line.endswith("(and 1 more); 'postloan check bundle' lists every problem")
    assert not (tmp_path / "d.parquet").exists()


def test_decide_names_the_target_it_cannot_write(capsys, book):
    code, _, err = run(capsys, "decide", "--in", str(book), "--out", "/proc/decisions.parquet", "--as-of", AS_OF,
                       "--quiet")
    assert code == 2
    line = one_line(err)
    assert "/proc/decisions.parquet" in line and ".part" not in line


# --- check and test ----------------------------------------------------------------------------

def test_check_of_one_file_compares_its_book_columns_with_the_data_contract(capsys, tmp_path, monkeypatch):
    """The rule-author guide's example: a lone file declaring a contract column with another type."""
    monkeypatch.chdir(tmp_path)
    Path("va.yaml").write_text("ruleset: va\nversion: \"1\"\ninputs:\n  gps_offline_hours: int\n"
                               "  early_warning.level: {enum: [NONE, WATCH, ALERT, CRITICAL]}\n"
                               "outputs:\n  off: {type: bool, default: false}\nrules:\n"
                               "  - id: r\n    when: gps_offline_hours > 72 and early_warning.level == 'ALERT'\n"
                               "    then: {off: true}\n", "utf-8")
    code, out, err = run(capsys, "check", "va.yaml")
    assert code == 1
    # the input from another ruleset is the bundle check's business, not a lone file's
    assert out.strip().splitlines() == [
        "va.yaml:4:3: input `gps_offline_hours` is declared as int, but the data contract says float"]
    assert "1 error, 0 warnings" in err


def test_check_of_a_folder_shows_paths_as_given(capsys, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "check", "rulesets/")
    assert code == 1
    assert out.strip().splitlines() == [
        "rulesets/disposal.yaml:35:3: input `rv_model.price`: no ruleset or model named `rv_model` in the bundle",
        "rulesets/early_warning.yaml:30:3: input `pd_model.probability`: no ruleset or model named `pd_model` "
        "in the bundle"]


@pytest.mark.parametrize("verb", ["check", "test"])
def test_a_file_that_is_not_a_ruleset_is_named(capsys, tmp_path, verb):
    other = tmp_path / "notes.txt"
    other.write_text("hello\n", "utf-8")
    code, _, err = run(capsys, verb, str(other))
    assert code == 2
    assert f"{other}: not a ruleset (.yaml, .yml) or model (.onnx) file" in one_line(err)


def test_test_counts_its_errors_in_english(capsys, tmp_path):
    bad = tmp_path / "dup.yaml"
    text = (ROOT / "rulesets" / "dpd_bucket.yaml").read_text("utf-8")
    bad.write_text(text.replace("hit: unique\n", "hit: unique\nhit: first\n"), "utf-8")
    line = text[:text.index("hit: unique")].count("\n") + 1
    code, out, err = run(capsys, "test", str(bad))
    assert code == 1
    assert out.strip() == f"{bad}:{line + 1}:1: invalid YAML: duplicate key `hit` (first at line {line})"
    assert "the rulesets do not compile (1 error); run 'postloan check'" in err


# --- demo ----------------------------------------------------------------------------------------

def test_demo_of_a_tiny_book_prints_no_nan(capsys, tmp_path):
    """Three accounts, none high-risk and overdue: the profile's means of nothing are '—'."""
    code, out, err = run(capsys, "demo", "--accounts", "3", "--quiet", "--audit", str(tmp_path / "audit.log"))
    assert code == 0, err
    assert "High-risk overdue profile (0 accounts)" in out
    assert not re.search(r"\bnan\b", out.lower())       # a word: "Example Auto Finance" is no NaN


# --- train ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--pd-rows", "--rv-rows"])
def test_train_refuses_too_few_rows_to_measure_a_model(capsys, tmp_path, flag):
    """--pd-rows 5 wrote models whose cards gave AUC nan, the shipped one picked on it."""
    code, _, err = run(capsys, "train", "--out", str(tmp_path), flag, "5")
    assert code == 2
    assert f"argument {flag}: expected at least 1,000 rows" in one_line(err)
    assert list(tmp_path.iterdir()) == []


# --- serve ---------------------------------------------------------------------------------------

def test_serve_on_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", str(port))
        assert code == 2
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use by another process (choose another --port)" \
            in one_line(err)
        code, _, err = run(capsys, "serve", "--port", "0", "--metrics-port", str(port))
        assert code == 2 and "(choose another --metrics-port)" in one_line(err)


def test_serve_on_an_unknown_host_is_one_line(capsys):
    code, _, err = run(capsys, "serve", "--host", "no-such-host.invalid", "--port", "0", "--allow-unauthenticated")
    assert code == 2
    assert "unknown host 'no-such-host.invalid'" in one_line(err)



def test_serve_workers_with_a_bundle_that_does_not_compile_is_one_line(capsys, tmp_path, monkeypatch):
    """The supervisor checks the bundle before starting workers: one error, not one per worker."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "broken.yaml").write_text("ruleset: broken\n\toutputs: {}\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "serve", "--workers", "2", "--port", str(port), "--bundle", "bundle")
    assert code == 2
    assert one_line(err).startswith("postloan serve: error: the bundle does not compile: bundle/broken.yaml:2:1: ")

# --- signals -------------------------------------------------------------------------------------

def interrupted(argv: list[str], folder: Path, sig: int) -> subprocess.CompletedProcess:
    """Run ``postloan argv`` in ``folder`` and send ``sig`` once it has started writing its
    output (a temporary file appears)."""
    before = set(os.listdir(folder))
    # SIGINT back to its default in the child: under a background job or nohup (as CI may run)
    # it is inherited ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "kernel", *argv], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240             # the first decide may compile the shipped bundle
    while set(os.listdir(folder)) == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def interrupted_status(code: int) -> tuple[int, ...]:
    """The exit statuses an interrupted command may end with. A Ctrl-C that lands while Python
    runs code compiled from a string (``exec`` of a dataclass's ``__init__``, Numba's generated
    code) sets CPython's "unhandled KeyboardInterrupt" flag even though ``main`` handles it
    (``run_eval_code_obj`` in pythonrun.c), and after its normal shutdown the process then ends
    by SIGINT — which a shell reports as 130 too. SIGTERM raises a subclass: never affected."""
    return (code, -signal.SIGINT) if code == 130 else (code,)


@pytest.mark.parametrize("name, sig, code, word", [
    ("book.parquet", signal.SIGINT, 130, "interrupted"),
    ("book.csv", signal.SIGINT, 130, "interrupted"),
    ("book.csv", signal.SIGTERM, 143, "terminated"),
])
def test_an_interrupted_generate_leaves_no_file(tmp_path, name, sig, code, word):
    done = interrupted(["generate", "--accounts", "5000000", "--out", name, "--quiet"], tmp_path, sig)
    assert done.returncode in interrupted_status(code), done.stderr
    assert one_line(done.stderr) == f"postloan generate: {word}"
    assert os.listdir(tmp_path) == []


def test_an_interrupted_decide_leaves_no_file(tmp_path, book):
    shutil.copy(book, tmp_path / "book.parquet")
    # one-row batches make a 2,000-account decide last long enough to be interrupted
    done = interrupted(["decide", "--in", "book.parquet", "--out", "decisions.csv", "--batch-rows", "1",
                        "--as-of", AS_OF, "--quiet"], tmp_path, signal.SIGINT)
    assert done.returncode in interrupted_status(130), done.stderr
    assert one_line(done.stderr) == "postloan decide: interrupted"
    assert os.listdir(tmp_path) == ["book.parquet"]
    assert pq.read_table(tmp_path / "book.parquet").num_rows == 2000
