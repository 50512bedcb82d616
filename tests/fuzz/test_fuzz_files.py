"""Fuzzing the files and paths of the newer verbs (issue 14): ``postloan train --pd-data
--rv-data`` (a lender's own tables), ``postloan decide --actions-out``, bundle scenario files
(``*.scenarios.yaml``) and ``postloan report`` (dataset folders and their options).

Each case starts from a valid input and breaks it: a table loses a column or gets one of
another type, values become null, NaN, infinite, out of range or of another class; a file is
emptied, truncated, overwritten with noise or written in another format than its name says;
a YAML file is mutated as text (tests/fuzz/text_mutators.py) or as data (unknown keys, values
of another type); a path is a folder, lies under a file, or is the input itself. The only
outcomes allowed are the documented ones:

- the command succeeds (exit 0; ``postloan test``: 0 or 1, a scenario that fails), or it exits
  with code 2 and exactly one line on stderr, ``postloan <verb>: error: …``, naming where the
  problem is (the file, the option, the column or the line);
- a scenario file that does not load raises ``RulesetError`` whose every diagnostic names its
  file and a line; one that loads is decided without raising;
- never another exception, a traceback, or a case running longer than ``HANG_SECONDS``.

The CI run is each suite's ``CI_CASES``; ``--fuzz-cases N`` runs more.

Record (December 2026): seed 0 (CI sizes) and seed 1 (600 cases per suite) found, in
``train``: a column named twice raising KeyError, a corrupt Arrow file printed as a bare
"OSError", a Parquet footer with non-UTF-8 names raising UnicodeDecodeError (in the Parquet
connector, so ``decide`` and ``ingest`` had it too), an empty date read as a garbage date, an
infinite number reaching scikit-learn's ValueError, and --out an existing file refused only
after the fitting; in ``decide``: ``--actions-out ''`` planning no actions, silently; in
scenario files: an int input given 1.5e308 raising OverflowError (in the rules' literals, so
rulesets' examples too); in ``report``: an empty account id raising TypeError and a list-typed
country raising while the currency was filled in. All fixed, each with a test below; then
seed 1 again found nothing.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import signal
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from kernel.cli import main

from text_mutators import mutate

HANG_SECONDS = 60
UTC = dt.timezone.utc


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_cli(argv: list[str], capsys, names: list[str], ok=(0,)) -> str | None:
    """None when ``postloan argv`` ends as documented, else what went wrong. ``names``: what
    an error line may name to say where the problem is (files, options, columns)."""
    verb = argv[0]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    except Hang:
        return f"no answer within {HANG_SECONDS} s"
    except Exception:
        return "raised\n" + traceback.format_exc()[-3000:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    out = capsys.readouterr()
    if "Traceback" in out.err or "Traceback" in out.out:
        return f"traceback (exit {code})\n{out.err[-3000:]}"
    if code in ok:
        return None
    if code != 2:
        return f"exit {code}: {out.err[-500:]!r}"
    lines = out.err.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith(f"postloan {verb}: error: "):
        return f"exit 2 without exactly one error line: {out.err[-600:]!r}"
    line = lines[0]
    if not any(n and n in line for n in names) and not re.search(r"\bline \d+|:\d+:\d+|column|--[a-z]", line):
        return f"the error names no file, option, column or line: {line!r}"
    return None


def _fail_on(problems: list[str], text: str) -> None:
    assert not problems, f"{len(problems)} case(s) broke the rules:\n\n" + "\n\n".join(problems[:5]) + text


# --- tables: mutations of a valid training file --------------------------------------------------

def _noise_array(rng: random.Random, n: int) -> pa.Array:
    """A column of another type than expected."""
    choice = rng.randrange(10)
    if choice == 0:
        return pa.array([rng.choice(["x", "", "1,5", "NaN", "2025-13-45", "真", "\x00"]) for _ in range(n)])
    if choice == 1:
        return pa.array([rng.randint(-10**12, 10**12) for _ in range(n)], pa.int64())
    if choice == 2:
        return pa.array([rng.choice([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e308, 5e-324])
                         for _ in range(n)])
    if choice == 3:
        return pa.array([rng.random() < 0.5 for _ in range(n)])
    if choice == 4:
        return pa.array([dt.date(rng.choice([1, 1970, 2025, 9999]), 1, 1) for _ in range(n)], pa.date32())
    if choice == 5:
        return pa.array([dt.datetime(2025, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC"))
    if choice == 6:
        return pa.nulls(n)
    if choice == 7:
        return pa.array([[1, 2]] * n, pa.list_(pa.int64()))
    if choice == 8:
        return pa.array([b"\xff\xfe"] * n, pa.binary())
    return pa.array([rng.choice(["a", "b", None]) for _ in range(n)]).dictionary_encode()


def _bad_values(rng: random.Random, col: pa.Array) -> pa.Array:
    """The same type, with some values null, NaN, infinite, negative, huge or unknown."""
    values = col.to_pylist()
    n = len(values)
    if n == 0:
        return col
    for i in rng.sample(range(n), max(1, n // rng.choice([1, 5, 50]))):
        if pa.types.is_floating(col.type):
            values[i] = rng.choice([None, float("nan"), float("inf"), -1.0, 1e300, 0.5, 2.0])
        elif pa.types.is_integer(col.type):
            values[i] = rng.choice([None, -1, 2, 10**15, 0])
        elif pa.types.is_string(col.type):
            values[i] = rng.choice([None, "", "UNKNOWN_VALUE", "2025-02-30", "x" * 2000, "<script>x</script>"])
        elif pa.types.is_date(col.type):
            values[i] = rng.choice([None, dt.date(1, 1, 1), dt.date(9999, 12, 31)])
        elif pa.types.is_boolean(col.type):
            values[i] = None
        else:
            values[i] = None
    try:
        return pa.array(values, col.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values],
                        col.type)


def mutate_table(table: pa.Table, rng: random.Random, key_columns: list[str]) -> pa.Table:
    """``table`` with one to three random changes (``key_columns`` are picked more often)."""
    for _ in range(rng.randint(1, 3)):
        if table.num_columns == 0:
            break
        names = table.column_names
        name = rng.choice(key_columns if key_columns and rng.random() < 0.6 else names)
        if name not in names:
            name = rng.choice(names)
        i = names.index(name)
        op = rng.randrange(9)
        if op == 0:
            table = table.remove_column(i)
        elif op == 1:
            table = table.set_column(i, name, _noise_array(rng, table.num_rows))
        elif op in (2, 3):
            col = table.column(i).combine_chunks()
            if pa.types.is_dictionary(col.type):
                col = col.dictionary_decode()
            table = table.set_column(i, name, _bad_values(rng, col))
        elif op == 4:
            table = table.slice(0, rng.choice([0, 1, 5, 30]))
        elif op == 5:
            table = table.append_column(name, table.column(i))               # the same name twice
        elif op == 6:
            table = table.rename_columns([rng.choice([n.upper(), n + " ", "", n[:-1] or "x"]) if k == i else n
                                          for k, n in enumerate(names)])
        elif op == 7:
            table = table.select([])                                          # no columns at all
        else:
            table = table.append_column(rng.choice(["extra", "snapshot_date", "dpd"]),
                                        _noise_array(rng, table.num_rows))
    return table


def write_table(table: pa.Table, path: Path, rng: random.Random) -> Path:
    """Write ``table`` to ``path`` (its format by extension), or break the file itself."""
    op = rng.randrange(12)
    try:
        if path.suffix == ".csv":
            pcsv.write_csv(table, path)
        elif path.suffix == ".arrow":
            feather.write_feather(table, path)
        else:
            pq.write_table(table, path)
    except (pa.ArrowException, ValueError, TypeError):
        path.write_bytes(b"")
    data = path.read_bytes()
    if op == 0:
        path.write_bytes(b"")
    elif op == 1:
        path.write_bytes(data[: rng.randint(0, max(len(data) - 1, 0))])
    elif op == 2:
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.choice([1, 10, 4096]))))
    elif op == 3 and path.suffix != ".csv":                 # CSV text under another format's name
        try:
            pcsv.write_csv(table.slice(0, 20), path)
        except (pa.ArrowException, ValueError):
            path.write_text("a,b\n1,2\n")
    elif op == 4 and path.suffix == ".csv":
        text = data.decode("utf-8", "replace")
        path.write_text(mutate(text[:20000], rng, [",", ";", "\"", "\n", "\t", "\ufeff", "\x00", "NaN", ",,,,"]),
                        encoding="utf-8", errors="surrogatepass")
    elif op == 5:
        pos = rng.randrange(max(len(data), 1))
        path.write_bytes(data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1:])
    return path


def _book_with_labels(n: int, seed: int) -> pa.Table:
    from kernel.synth.outcomes import book_with_truth
    parts = []
    for k, day in enumerate((dt.date(2025, 2, 28), dt.date(2025, 5, 28))):
        book, truth = book_with_truth(n, seed + k, day)
        book = book.append_column("default_6m", truth.column("default_6m"))
        parts.append(book.append_column("snapshot_date", pa.array([day] * book.num_rows, pa.date32())))
    return pa.concat_tables(parts, promote_options="default")


@pytest.fixture(scope="module")
def training_tables():
    """A PD file's rows (two snapshots, label and date) and an RV file's, both valid but small."""
    from kernel.models import training as t
    pd_table = _book_with_labels(300, 11)
    sales = t.simulate_auctions(240, 5)
    year = np.asarray(sales["model_year"]) + np.asarray(sales[t.RV_AGE])
    rv_table = pa.table({"brand": sales["brand"].tolist(), "model": sales["model"].tolist(),
                         "energy_type": sales["energy_type"].tolist(),
                         "condition_grade": sales["condition_grade"].tolist(), "region": sales["region"].tolist(),
                         "currency": sales["currency"].tolist(), "mileage_km": sales["mileage_km"],
                         "purchase_price": sales["purchase_price"], "model_year": sales["model_year"],
                         "sale_date": [dt.date(int(y), 6, 30) for y in year], "sale_price": sales["price"]})
    return pd_table, rv_table


#: cases per suite in CI (train: mostly refused before any fitting, a few fit a small model)
CI_CASES = {"train": 100, "scenarios": 300, "report": 150}
PD_KEYS = ["default_6m", "snapshot_date", "dpd", "bureau_score", "age", "country", "product"]
RV_KEYS = ["sale_price", "sale_date", "currency", "region", "model_year", "mileage_km", "brand"]


def train_case(seed: int, i: int, tables, tmp: Path) -> tuple[list[str], list[str]]:
    rng = random.Random(f"train:{seed}:{i}")
    pd_table, rv_table = tables
    which = rng.choice(["pd", "rv"])
    base, keys = (pd_table, PD_KEYS) if which == "pd" else (rv_table, RV_KEYS)
    path = tmp / f"{which}-{i}{rng.choice(['.parquet', '.csv', '.arrow'])}"
    write_table(mutate_table(base, rng, keys), path, rng)
    argv = ["train", f"--{which}-data", str(path), "--out", str(tmp / "bundle"), "--seed", "1"]
    names = [path.name, f"--{which}-data"]
    extra = rng.randrange(8)
    if extra == 0:
        argv += ["--format", rng.choice(["parquet", "csv", "arrow", "sqlite", "nonsense", ""])]
    elif extra == 1 and which == "pd":
        argv += ["--pd-features", rng.choice(["dpd,dpd", "nope", ",", "dpd,country", "account_id", "default_6m"])]
    elif extra == 2:
        argv += [f"--{which}-label", rng.choice(["", "nope", "dpd", "brand", "sale_date", "snapshot_date"])]
    elif extra == 3:
        out = tmp / "out-file"
        out.write_text("x")
        target = rng.choice([out, out / "sub", path])
        argv[argv.index("--out") + 1] = str(target)
        names += ["--out", target.name]
    return argv, names


def _cli_cases(count: int, seed: int, tmp_path, capsys, make_case, check=None) -> None:
    """Run ``count`` generated CLI cases, each in its own folder (``make_case(i, folder)`` gives
    argv and the names a message may show; ``check(folder)`` looks at what a case wrote),
    and fail listing every case with a problem."""
    problems = []
    for i in range(count):
        case = tmp_path / f"c{i}"
        case.mkdir()
        argv, names = make_case(i, case)
        problem = run_cli(argv, capsys, names)
        if problem is None and check is not None:
            problem = check(case)
        if problem:
            problems.append(f"case {i} (seed {seed}): postloan {' '.join(argv)}: {problem}")
        shutil.rmtree(case, ignore_errors=True)
    _fail_on(problems, "")


def test_train_with_mutated_data_files(fuzz_cases, fuzz_seed, training_tables, tmp_path, capsys):
    _cli_cases(fuzz_cases(CI_CASES["train"]), fuzz_seed, tmp_path, capsys,
               lambda i, case: train_case(fuzz_seed, i, training_tables, case))


@pytest.mark.parametrize("content", ["", "\n", "a,b\n", "\ufeff", "PAR1", "not,a\nparquet,file\n"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow"])
def test_train_on_empty_and_wrong_format_files(content, suffix, tmp_path, capsys):
    for which in ("pd", "rv"):
        path = tmp_path / f"data{suffix}"
        path.write_text(content, encoding="utf-8")
        problem = run_cli(["train", f"--{which}-data", str(path), "--out", str(tmp_path / "b")], capsys,
                          [path.name, f"--{which}-data"])
        assert problem is None, problem
    folder = tmp_path / "folder.parquet"
    folder.mkdir()
    assert run_cli(["train", "--pd-data", str(folder), "--out", str(tmp_path / "b")], capsys,
                   [folder.name, "--pd-data"]) is None


def test_train_what_the_fuzzing_found(training_tables, tmp_path, capsys):
    """The payloads the first runs found, each now refused before any fitting with the file
    and the column or row: a column named twice (was a KeyError), a corrupt Arrow file (was
    a bare "OSError"), an empty date (was read as a garbage date), an infinite number (was
    scikit-learn's ValueError), --out an existing file (was refused only after the fitting)."""
    pd_table, rv_table = training_tables
    cases = []
    twice = tmp_path / "twice.parquet"
    pq.write_table(pd_table.append_column("dpd", pd_table.column("dpd")), twice)
    cases.append((["--pd-data", str(twice)], "column 'dpd' appears more than once"))
    corrupt = tmp_path / "corrupt.arrow"
    feather.write_feather(rv_table, corrupt)
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[:len(data) // 2])
    cases.append((["--rv-data", str(corrupt)], "corrupt.arrow: not a"))
    no_date = tmp_path / "no-date.parquet"
    dates = rv_table.column("sale_date").to_pylist()
    dates[7] = None
    pq.write_table(rv_table.set_column(rv_table.schema.get_field_index("sale_date"), "sale_date",
                                       pa.array(dates, pa.date32())), no_date)
    cases.append((["--rv-data", str(no_date)], "column 'sale_date' row 7: the date is empty"))
    huge = tmp_path / "huge.parquet"
    miles = rv_table.column("mileage_km").to_pylist()
    miles[4] = float("inf")
    pq.write_table(rv_table.set_column(rv_table.schema.get_field_index("mileage_km"), "mileage_km",
                                       pa.array(miles, pa.float64())), huge)
    cases.append((["--rv-data", str(huge)], "column 'mileage_km' row 4: inf is not a finite number"))
    out_file = tmp_path / "out-file"
    out_file.write_text("x")
    good = tmp_path / "good.csv"
    pcsv.write_csv(rv_table, good)
    for argv, expected in cases:
        assert main(["train", *argv, "--out", str(tmp_path / "bundle")]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    assert main(["train", "--rv-data", str(good), "--out", str(out_file)]) == 2
    assert "out-file: --out is not a directory" in capsys.readouterr().err


# --- decide --actions-out -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_kernel():
    from kernel.runtime import Kernel
    return Kernel.load()



@pytest.fixture(scope="module")
def book_file(tmp_path_factory):
    from kernel.synth import generate
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    pq.write_table(generate(40, seed=3, as_of=dt.date(2026, 11, 28)), path)
    return path


def test_decide_actions_out_to_bad_places(book_file, shipped_kernel, tmp_path, capsys):
    """--actions-out at a folder, under a file, at the book or the decisions, in a format no
    connector writes, or in a folder that does not exist: one line, exit 2, and no partial
    --out left behind; a good one writes both. (``shipped_kernel``: compiled before the
    clock of the first case starts.)"""
    afile = tmp_path / "a-file"
    afile.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    out = tmp_path / "decisions.parquet"
    bad = [str(folder), str(folder) + os.sep, str(afile / "actions.parquet"), str(book_file), str(out),
           str(tmp_path / "actions.unknownext"), str(tmp_path / "missing" / "deeper" / "actions.parquet"), "",
           str(tmp_path / "nul\x00.parquet")]
    problems = []
    for target in bad:
        argv = ["decide", "--in", str(book_file), "--out", str(out), "--as-of", "2026-11-28", "--quiet",
                "--actions-out", target]
        problem = run_cli(argv, capsys, [Path(target).name or target, "--actions-out", "--actions-format"],
                          ok=() if target != str(tmp_path / "missing" / "deeper" / "actions.parquet") else (0,))
        if problem:
            problems.append(f"--actions-out {target!r}: {problem}")
        elif out.exists() and target != str(tmp_path / "missing" / "deeper" / "actions.parquet"):
            problems.append(f"--actions-out {target!r}: refused, yet {out.name} was written")
        if out.exists():
            out.unlink()
    argv = ["decide", "--in", str(book_file), "--out", str(out), "--as-of", "2026-11-28", "--quiet",
            "--actions-out", str(tmp_path / "actions.parquet"), "--actions-format", "nonsense"]
    problem = run_cli(argv, capsys, ["--actions-format", "nonsense"], ok=())
    if problem:
        problems.append(f"--actions-format nonsense: {problem}")
    _fail_on(problems, "")
    good = tmp_path / "actions.parquet"
    assert run_cli(["decide", "--in", str(book_file), "--out", str(out), "--as-of", "2026-11-28", "--quiet",
                    "--actions-out", str(good)], capsys, []) is None
    assert out.exists() and pq.read_table(good).num_rows > 0


# --- scenario files -------------------------------------------------------------------------------

SCENARIO_BASE = """\
scenarios:
  - name: 30 days past due is still the phone team's
    as_of: 2026-11-28
    given: {dpd: 30, overdue_amount: 8000, times_overdue_12m: 1, phone_valid: true, country: CN}
    expect: {dpd_bucket.bucket: M1, collection_tier.tier: MEDIUM, collection_tier.channel: PHONE}
  - name: a US account 95 days late
    as_of: 2026-11-28
    given:
      dpd: 95
      country: US
      contract_date: 2024-01-15
      outstanding_principal: 12000.5
    expect:
      dpd_bucket.bucket: M4
      dpd_bucket.rule: m4
"""
SCENARIO_NOISE = ["scenarios:", "- ", "given:", "expect:", "as_of:", "name:", "{", "}", "[", "]", ": ", "&a ",
                  "*a", "!!python/object:os.system ", "~", "null", "true", "1e400", "2026-02-30", "-1", "9" * 40,
                  "dpd_bucket.bucket", "dpd", "<<: *a", "\t", "'", '"', "#", "---", "...", "%YAML 1.2\n", "|",
                  ">", "? ", "\\u0000", "\x00"]
TYPED = [None, True, 0, -1, 1.5e308, float("nan"), "", "text", "2026-11-28", [], [1, [2]], {}, {"a": {"b": 1}},
         "M9", 10**30]


def _scenario_data(rng: random.Random):
    """The base as data with one to three keys removed, added or given another value."""
    import yaml
    data = yaml.safe_load(SCENARIO_BASE)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        target = rng.choice(data["scenarios"]) if data.get("scenarios") else data
        if op == 0:
            data["scenarios"] = rng.choice(TYPED)
            break
        if not isinstance(target, dict):
            continue
        if op == 1 and target:
            target.pop(rng.choice(list(target)))
        elif op == 2:
            target[rng.choice(["nmae", "expected", "given ", "as-of", 3, "x" * 300])] = rng.choice(TYPED)
        elif op == 3:
            key = rng.choice(["name", "as_of", "given", "expect"])
            target[key] = rng.choice(TYPED)
        elif op == 4:
            key = rng.choice(["given", "expect"])
            if isinstance(target.get(key), dict) and target[key]:
                column = rng.choice(list(target[key]))
                target[key][column] = rng.choice(TYPED)
        else:
            key = rng.choice(["given", "expect"])
            if isinstance(target.get(key), dict):
                target[key][rng.choice(["dpd_bukcet.bucket", "not_a_column", "dpd", "country", "segment.rule",
                                        "early_warning.pd", "arm"])] = rng.choice(TYPED)
    return yaml.safe_dump(data, allow_unicode=True)


def scenario_case(seed: int, i: int) -> str:
    rng = random.Random(f"scenarios:{seed}:{i}")
    if rng.random() < 0.5:
        return mutate(SCENARIO_BASE, rng, SCENARIO_NOISE)
    return _scenario_data(rng)


def scenario_problem(kernel, path: Path) -> str | None:
    from kernel.rules.diagnostics import RulesetError
    from kernel.scenarios import load_scenarios, run_scenarios
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        try:
            loaded = load_scenarios(path, kernel.inputs, kernel.output_types, list(kernel.nodes))
        except RulesetError as e:
            if not e.diagnostics:
                return "RulesetError without a diagnostic"
            bad = [d for d in e.diagnostics if d.file != str(path) or not d.line or d.line < 1 or "\n" in d.message]
            return f"diagnostics without a file and line: {bad}" if bad else None
        run_scenarios(kernel, loaded)
        return None
    except Hang:
        return f"no answer within {HANG_SECONDS} s"
    except Exception:
        return "raised\n" + traceback.format_exc()[-3000:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_mutated_scenario_files(fuzz_cases, fuzz_seed, shipped_kernel, tmp_path):
    problems = []
    path = tmp_path / "case.scenarios.yaml"
    for i in range(fuzz_cases(CI_CASES["scenarios"])):
        text = scenario_case(fuzz_seed, i)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        problem = scenario_problem(shipped_kernel, path)
        if problem:
            saved = tmp_path / f"seed{fuzz_seed}-case{i}.scenarios.yaml"
            saved.write_text(text, encoding="utf-8", errors="surrogatepass")
            problems.append(f"case {i} (seed {fuzz_seed}; payload {saved}): {problem}")
            if len(problems) >= 5:
                break
    _fail_on(problems, "")


@pytest.mark.parametrize("text", ["", "scenarios: [", "scenarios: 3", "- a\n- b\n", "scenarios:\n  - 1\n",
                                  "scenarios:\n  - {name: x, as_of: 2026-02-30, given: {}, expect: {}}\n",
                                  "scenarios:\n  - {name: x, as_of: 2026-11-28, given: [], expect: {dpd: 1}}\n",
                                  "\xff\xfe"])
def test_postloan_test_names_the_scenario_file_and_line(text, tmp_path, capsys):
    """Through the command line: a bundle holding a broken scenario file exits 1 (a file that
    does not load) with the file and line, never a traceback."""
    from kernel.bundle import default_bundle_paths
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for p in default_bundle_paths():
        p = Path(p)
        for src in (sorted(p.glob("*.yaml")) + sorted(p.glob("*.onnx"))) if p.is_dir() else [p]:
            shutil.copyfile(src, bundle / src.name)
    scenario = bundle / "broken.scenarios.yaml"
    scenario.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe\x00")
    try:
        code = main(["test", str(bundle)])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert code == 1, out.err[-500:] + out.out[-500:]
    assert re.search(r"broken\.scenarios\.yaml:\d+:\d+", out.out + out.err), out.out[-800:] + out.err[-800:]


# --- postloan report ------------------------------------------------------------------------------

def _dataset_part():
    from kernel.evaluation.records import ACTION, EVENT, SNAPSHOT, Part
    rng = np.random.default_rng(4)
    rows, actions, events = [], [], []
    for k in range(3):
        day = dt.date(2026, 11, 1) + dt.timedelta(days=k)
        decided = dt.datetime.combine(day, dt.time(2), UTC)
        for a in range(30):
            dpd = int(rng.integers(0, 120))
            us = a % 5 == 0
            rows.append({"account_id": f"A{a}", "as_of": day, "decided_at": decided, "arm": ["CHAMPION", "CHALLENGER"][a % 2],
                         "dpd": dpd, "dpd_30d_ago": max(dpd - 30, 0), "bucket": "M0" if dpd == 0 else f"M{min((dpd - 1) // 30 + 1, 7)}",
                         "bucket_30d_ago": "M0", "outstanding_principal": float(rng.integers(1000, 90000)),
                         "overdue_amount": 100.0, "contract_date": dt.date(2024, 3, 1), "country": "US" if us else "CN",
                         "currency": "USD" if us else "CNY", "tier": "MILD" if dpd else "NONE", "channel": "SMS",
                         "ew_level": "ALERT", "ew_score": float(dpd), "pd": 0.2, "repossess": dpd > 90,
                         "disposal_channel": "online_auction", "expected_net": 5000.0, "valuation_price": 9000.0,
                         "gps_offline": a % 7 == 0})
            if dpd:
                actions.append({"account_id": f"A{a}", "as_of": day, "decided_at": decided, "action": "SMS",
                                "outcome": "KEEP", "earliest_at": decided})
                events.append({"account_id": f"A{a}", "kind": "PAYMENT", "at": decided + dt.timedelta(hours=5),
                               "amount": 50.0, "agent": "payments"})
                events.append({"account_id": f"A{a}", "kind": "CONTACT_ATTEMPT", "at": decided + dt.timedelta(hours=3),
                               "channel": "PHONE", "outcome": "RIGHT_PARTY", "agent": "bob"})

    def table(rs, schema):
        return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rs], schema=schema)
    return Part(table(rows, SNAPSHOT), table(actions, ACTION), table(events, EVENT))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from kernel.evaluation.records import write_dataset
    folder = tmp_path_factory.mktemp("dataset") / "ds"
    write_dataset(folder, _dataset_part(), 2)
    return folder


REPORT_KEYS = {"snapshots": ["account_id", "as_of", "decided_at", "currency", "dpd", "arm", "outstanding_principal",
                             "bucket", "ew_score"],
               "actions": ["account_id", "decided_at", "action", "outcome"],
               "events": ["account_id", "kind", "at", "amount", "promise_date", "channel"]}


def report_case(seed: int, i: int, dataset: Path, tmp: Path) -> tuple[list[str], list[str]]:
    rng = random.Random(f"report:{seed}:{i}")
    folder = tmp / "ds"
    shutil.copytree(dataset, folder)
    kind = rng.choice(list(REPORT_KEYS))
    part = rng.choice(sorted((folder / kind).glob("*.parquet")))
    names = [part.name, kind, folder.name, "--in"]
    op = rng.randrange(10)
    if op < 6:
        write_table(mutate_table(pq.read_table(part), rng, REPORT_KEYS[kind]), part, rng)
    elif op == 6:
        part.unlink()
    elif op == 7:
        shutil.copyfile(part, folder / kind / "part-09999.parquet")
    elif op == 8:
        shutil.rmtree(folder / kind)
        if rng.random() < 0.5:
            (folder / kind).write_text("not a folder")
    else:
        (folder / kind / "part-00000.parquet").unlink()
        (folder / kind / "part-00000.parquet").mkdir()
    out = tmp / "report.html"
    argv = ["report", "--in", str(folder), "--out", str(out)]
    extra = rng.randrange(6)
    if extra == 0:
        config = tmp / "postloan.toml"
        config.write_text(rng.choice(["[evaluation]\ncure_days = -1\n", "[evaluation]\ncosts = 3\n",
                                      "[evaluation.costs]\nUSD = {SMS = -1}\n", "[evaluation]\ncontrol = 3\n",
                                      "[evaluation.costs.EUR]\nSMS = 1\n", "[evaluation\n",
                                      "[evaluation]\ntop = 1e400\n", "[evaluation]\nconfidence = 1\n"]))
        argv += ["--config", str(config)]
        names += [config.name, "evaluation"]
    elif extra == 1:
        afile = tmp / "a-file"
        afile.write_text("x")
        argv[argv.index("--out") + 1] = str(rng.choice([afile / "r.html", tmp, tmp / "missing" / "r.html"]))
        names.append("--out")
    return argv, names


def test_report_on_mutated_datasets(fuzz_cases, fuzz_seed, dataset, tmp_path, capsys):
    def escaped(case):
        out = case / "report.html"
        if out.exists() and out.read_text("utf-8").count("<script") != 1:   # a value made markup
            return "the report holds a <script> the data put there"        # (it must be escaped)
        return None
    _cli_cases(fuzz_cases(CI_CASES["report"]), fuzz_seed, tmp_path, capsys,
               lambda i, case: report_case(fuzz_seed, i, dataset, case), escaped)


def test_report_options_and_stores(dataset, tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    cases = [
        (["report", "--store", "sqlite:///" + str(tmp_path / "nope.db"), "--out", str(tmp_path / "r.html")], ["nope.db"]),
        (["report", "--store", "postgresql://u:secret@127.0.0.1:1/x", "--out", str(tmp_path / "r.html")], ["127.0.0.1"]),
        (["report", "--store", "nosuch://x", "--out", str(tmp_path / "r.html")], ["nosuch"]),
        (["report", "--store", "sqlite:///" + str(afile), "--out", str(tmp_path / "r.html")], ["a-file"]),
        (["report", "--in", str(afile), "--out", str(tmp_path / "r.html")], ["a-file"]),
        (["report", "--in", str(dataset), "--out", str(tmp_path / "r.html"), "--export", str(tmp_path / "x")],
         ["--export"]),
        (["report", "--in", str(dataset), "--out", str(tmp_path / "r.html"), "--partitions", "0"], ["--partitions"]),
        (["report", "--in", str(dataset), "--out", str(dataset)], ["--out", dataset.name]),
    ]
    problems = []
    for argv, names in cases:
        problem = run_cli(argv, capsys, names, ok=())
        if problem:
            problems.append(f"postloan {' '.join(argv)}: {problem}")
    assert "secret" not in capsys.readouterr().err
    _fail_on(problems, "")


def test_report_what_the_fuzzing_found(dataset, tmp_path, capsys):
    """A snapshot part with an empty account id (was a TypeError sorting the lists) and one
    whose country is a list while its currency is missing (was an ArrowNotImplementedError
    while filling the currency in): each refused with the file (and the column and row)."""
    for column, values, expected in (("account_id", None, "column 'account_id' row 3 is empty"),
                                     ("country", 7, "a column has the wrong type")):
        folder = tmp_path / f"ds-{column}"
        shutil.copytree(dataset, folder)
        part = folder / "snapshots" / "part-00000.parquet"
        table = pq.read_table(part)
        if column == "country":
            table = table.drop_columns(["currency"])
        i = table.schema.get_field_index(column)
        if values is None:
            ids = table.column(i).to_pylist()
            ids[3] = None
            table = table.set_column(i, column, pa.array(ids, pa.string()))
        else:
            table = table.set_column(i, column, pa.array([[values]] * table.num_rows, pa.list_(pa.int64())))
        pq.write_table(table, part)
        assert main(["report", "--in", str(folder), "--out", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err
        assert "part-00000.parquet" in err and expected in err and err.count("\n") == 1, err


def test_decide_refuses_an_empty_actions_out(book_file, tmp_path, capsys):
    """`--actions-out ''` (was: no actions planned, exit 0, silently)."""
    with pytest.raises(SystemExit) as e:
        main(["decide", "--in", str(book_file), "--out", str(tmp_path / "d.parquet"), "--actions-out", ""])
    assert e.value.code == 2 and "--actions-out: expected a file name, got an empty one" in capsys.readouterr().err
