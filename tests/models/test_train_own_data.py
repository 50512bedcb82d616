"""postloan train --pd-data / --rv-data: a lender's own files (any connector format) train the
bundle's models into a bundle folder that `postloan check` validates; every missing or
mistyped column is named. Checked on a file in the data contract's shape (synthetic snapshots
with their simulated outcomes), on German credit (real data, mapped onto contract columns)
and on simulated auction sales."""
import csv
import datetime as dt

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from kernel.cli import main
from kernel.models import training as t
from kernel.synth.outcomes import book_with_truth


@pytest.fixture(scope="module")
def pd_file(tmp_path_factory):
    """Two snapshots of a book, each account with its label and snapshot date: the shape a
    lender exports (the contract's book columns + default_6m + snapshot_date)."""
    parts = []
    for k, day in enumerate((dt.date(2025, 2, 28), dt.date(2025, 5, 28))):
        book, truth = book_with_truth(3000, 40 + k, day)
        book = book.append_column("default_6m", truth.column("default_6m"))
        parts.append(book.append_column("snapshot_date", pa.array([day] * book.num_rows, pa.date32())))
    path = tmp_path_factory.mktemp("pd") / "history.parquet"
    pq.write_table(pa.concat_tables(parts, promote_options="default"), path)
    return path


@pytest.fixture(scope="module")
def rv_file(tmp_path_factory):
    sales = t.simulate_auctions(1500, 3)
    year = np.asarray(sales["model_year"]) + np.asarray(sales[t.RV_AGE])
    table = pa.table({"brand": sales["brand"].tolist(), "model": sales["model"].tolist(),
                      "energy_type": sales["energy_type"].tolist(), "condition_grade": sales["condition_grade"].tolist(),
                      "region": sales["region"].tolist(), "currency": sales["currency"].tolist(),
                      "mileage_km": sales["mileage_km"], "purchase_price": sales["purchase_price"],
                      "model_year": sales["model_year"],
                      "sale_date": [dt.date(int(y), 6, 30) for y in year], "sale_price": sales["price"]})
    path = tmp_path_factory.mktemp("rv") / "sales.csv"
    pcsv.write_csv(table, path)
    return path


def _meta(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_contract_shaped_file_trains_a_bundle_that_checks(tmp_path, pd_file, rv_file, capsys):
    out = tmp_path / "bundle"
    assert main(["train", "--pd-data", str(pd_file), "--rv-data", str(rv_file), "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pd_model" in printed and "rv_model" in printed
    for name in ("pd_model.onnx", "pd_model.md", "rv_model.onnx", "rv_model.md", "early_warning.yaml"):
        assert (out / name).exists(), name
    card = (out / "pd_model.md").read_text()
    assert "tested out of time" in card and "Brier" in card and "reliability curve" in card
    meta = _meta(out / "pd_model.onnx")
    assert "history.parquet" in meta["training_data"]
    import json
    oot = json.loads(meta["metrics"])["gradient-boosted trees"]["out_of_time"]
    assert oot["auc"] > 0.85, oot
    assert main(["check", str(out)]) == 0
    # the trained bundle decides a book
    from kernel import Kernel
    from kernel.synth import generate
    decided = Kernel.load(str(out)).decide(generate(300, seed=2), dt.date(2026, 11, 28))
    assert np.all(np.isfinite(decided.column("rv_model.price").to_numpy()))


def test_missing_and_mistyped_columns_are_each_named(tmp_path, pd_file, capsys):
    table = pq.read_table(pd_file).drop_columns(["bureau_score", "dpd_30d_ago"])
    table = table.set_column(table.schema.get_field_index("age"), "age", pa.array(["x"] * table.num_rows))
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    assert main(["train", "--pd-data", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "missing columns 'bureau_score', 'dpd_30d_ago'" in err and "mistyped column 'age' (expected numbers" in err
    assert str(bad) in err and not (tmp_path / "b").exists()
    no_label = tmp_path / "nolabel.parquet"
    pq.write_table(pq.read_table(pd_file).drop_columns(["default_6m"]), no_label)
    assert main(["train", "--pd-data", str(no_label), "--out", str(tmp_path / "b")]) == 2
    assert "missing column 'default_6m'" in capsys.readouterr().err


def test_rv_file_errors_name_the_column_and_row(tmp_path, rv_file, capsys):
    rows = list(csv.DictReader(open(rv_file, newline="")))
    rows[7]["sale_price"] = "-5"
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["train", "--rv-data", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "column 'sale_price' row 7: a sale price must be a positive number" in capsys.readouterr().err


def _german_as_contract(path):
    """German credit mapped onto book columns (a check that a lender's real data, in the
    contract's names, trains): age, duration, amount, employment, past delays, instalment
    burden, job, purpose, and the checking account's state as revolving use."""
    rows = list(csv.DictReader(open(t.german_credit_path(), newline="", encoding="utf-8")))
    employment = {"unemployed": 0.0, "... < 1 year": 0.5, "1 <= ... < 4 years": 2.5, "4 <= ... < 7 years": 5.5,
                  "... >= 7 years": 9.0}
    history = {"critical account/ other credits existing (not at this bank)": 2, "delay in paying off in the past": 1}
    checking = {"... < 0 DM": 1.2, "0 <= ... < 200 DM": 0.6, "... >= 200 DM / salary assignments for at least 1 year": 0.2}
    job = {"unemployed/ unskilled - non-resident": "UNEMPLOYED",
           "management/ self-employed/ highly qualified employee/ officer": "SELF_EMPLOYED"}
    purpose = {"car (new)": "NEW_CAR_LOAN", "car (used)": "USED_CAR_LOAN"}
    table = pa.table({
        "age": [int(r["age_in_years"]) for r in rows],
        "term_months": [int(r["duration_in_month"]) for r in rows],
        "principal": [float(r["credit_amount"]) for r in rows],
        "employment_years": [employment[r["present_employment_since"]] for r in rows],
        "delinquencies_24m": [history.get(r["credit_history"], 0) for r in rows],
        "debt_to_income": [int(r["installment_rate_in_percentage_of_disposable_income"]) / 10 for r in rows],
        "card_utilization": [checking.get(r["status_of_existing_checking_account"]) for r in rows],
        "employment_status": [job.get(r["job"], "EMPLOYED") for r in rows],
        "product": [purpose.get(r["purpose"], "FINANCE_LEASE") for r in rows],
        "default_6m": [1 if r["creditability"] == "bad" else 0 for r in rows],
    })
    pq.write_table(table, path)
    return table.column_names[:-1]


def test_german_credit_trains_through_the_same_path(tmp_path, capsys):
    path = tmp_path / "german.parquet"
    features = _german_as_contract(path)
    out = tmp_path / "bundle"
    assert main(["train", "--pd-data", str(path), "--pd-features", ",".join(features), "--out", str(out)]) == 0
    meta = _meta(out / "pd_model.onnx")
    import json
    auc = max(m["in_time"]["auc"] for m in json.loads(meta["metrics"]).values())
    assert auc >= 0.70, auc                      # 9 mapped attributes (the full 20 give ≈ 0.78)
    assert "no 'snapshot_date' column" in (out / "pd_model.md").read_text()
    assert [f["name"] for f in json.loads(meta["features"])] == features
    assert main(["check", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--pd-data", str(path), "--pd-features", "age,checking_status", "--out", str(out)]) == 2
    assert "--pd-features: 'checking_status' is not a book column of the data contract" in capsys.readouterr().err
