"""The contract's limits (string lengths, value ranges, finite floats) and the one validator
that enforces them: kernel.schema.validate for tables, record_checker for one record. Both
must reject the same values, naming the same column, and never quote a string's value."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from kernel import schema

UTC = dt.timezone.utc

# (column, bad value, words the message must hold): one per kind of rule
BAD_VALUES = [
    ("dpd", -5, "-5 is outside the contract's range 0 – 36,500"),
    ("dpd", 1 << 62, "outside the contract's range"),
    ("overdue_amount", float("inf"), "not a finite number"),
    ("principal", float("nan"), "not a finite number"),
    ("principal", -1.0, "outside the contract's range 0 – 1e12"),
    ("model_year", 0, "0 is outside the contract's range 1900 – 2100"),
    ("model_year", 99_999, "outside the contract's range 1900 – 2100"),
    ("gps_lat", 91.5, "outside the contract's range -90 – 90"),
    ("annual_rate", 1.5, "outside the contract's range 0 – 1"),
    ("account_id", "A" * 65, "65 characters, more than the contract's 64"),
    ("account_id", "", "empty (an identifier needs at least one character)"),
    ("vin", "", "empty (an identifier needs at least one character)"),
    ("name", "丁" * 129, "129 characters, more than the contract's 128"),
    ("address", "x" * 1_000_000, "1,000,000 characters, more than the contract's 256"),
    ("product", "丁明", "not one of NEW_CAR_LOAN, USED_CAR_LOAN, FINANCE_LEASE"),
    ("contract_date", dt.date(1800, 1, 1), "outside the contract's range 1900-01-01 – 2199-12-31"),
    ("last_conversation_at", dt.datetime(2500, 1, 1, tzinfo=UTC), "outside the contract's range"),
]


def _with_value(table: pa.Table, name: str, row: int, value) -> pa.Table:
    values = table[name].to_pylist()
    values[row] = value
    field = table.schema.field(name)
    arrow_type = pa.string() if pa.types.is_dictionary(field.type) else field.type
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, arrow_type))


def test_the_synthetic_book_is_within_every_limit():
    from kernel.synth import generate
    book = generate(20_000, seed=5)
    schema.validate(book)
    check = schema.record_checker()
    assert all(check(record) == [] for record in book.slice(0, 2_000).to_pylist())


@pytest.mark.parametrize("name, value, words", BAD_VALUES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_VALUES)])
def test_tables_and_records_reject_the_same_value_naming_the_column(small_book, name, value, words):
    table = _with_value(small_book.slice(0, 8), name, 5, value)
    with pytest.raises(schema.SchemaError) as err:
        schema.validate(table, source="upload.arrow")
    assert err.value.field == name and err.value.row == 5
    assert str(err.value).startswith(f"upload.arrow: column {name!r} row 5: ")
    assert words in str(err.value)
    record = {**small_book.slice(0, 1).to_pylist()[0], name: value}
    found = schema.record_checker("book", "account.")(record)
    assert [v.field for v in found] == [f"account.{name}"] and words in found[0].message
    if isinstance(value, str) and value:             # strings are never quoted: say the row and column
        assert value[:20] not in str(err.value) and value[:20] not in found[0].message


def test_personal_numbers_are_not_quoted_either(small_book):
    table = _with_value(small_book.slice(0, 4), "gps_lon", 2, 181.25)
    with pytest.raises(schema.SchemaError) as err:
        schema.validate(table)
    assert "181.25" not in str(err.value) and "row 2" in str(err.value)


def test_every_offending_column_is_listed_once(small_book):
    table = _with_value(_with_value(small_book.slice(0, 6), "dpd", 1, -1), "age", 3, 500)
    table = table.drop_columns(["vin", "time_zone"])
    with pytest.raises(schema.SchemaError) as err:
        schema.validate(table)
    assert str(err.value).startswith("missing column 'vin' (table book; 1 more missing); 2 more columns with problems")
    assert [(v.field, v.row) for v in err.value.violations] == [("vin", None), ("time_zone", None), ("dpd", 1), ("age", 3)]


def test_a_duplicated_column_is_named(small_book):
    table = small_book.slice(0, 3)
    table = table.append_column("dpd", table["dpd"])
    with pytest.raises(schema.SchemaError, match="column 'dpd' appears 2 times") as err:
        schema.validate(table)
    assert err.value.field == "dpd"


def test_malformed_arrow_data_is_refused_before_any_compute(small_book):
    """A string column whose offsets point past its data (what a hostile IPC stream can
    carry): computing on it may crash the process; validate refuses it first."""
    table = small_book.slice(0, 10)
    region = table["region"].combine_chunks()
    validity, offsets, data = region.buffers()
    bent = np.frombuffer(offsets, np.int32).copy()
    bent[4] = 10_000_000
    bad = pa.Array.from_buffers(pa.string(), len(region), [validity, pa.py_buffer(bent.tobytes()), data])
    table = table.set_column(table.schema.get_field_index("region"), "region", bad)
    with pytest.raises(schema.SchemaError, match=r"column 'region': not valid Arrow data \(.*out of bounds") as err:
        schema.validate(table)
    assert err.value.field == "region"


def test_narrow_and_foreign_types_compare_with_the_bounds():
    t = pa.table({"dpd": pa.array([0, 120], pa.int8()), "principal": pa.array([1, 5], pa.uint32()),
                  "contract_date": pa.array([dt.datetime(2020, 1, 1)], pa.date64()).take([0, 0]),
                  "last_conversation_at": pa.array([dt.datetime(2026, 1, 1), None], pa.timestamp("ns"))})
    schema.validate(t, required=t.schema.names)
    late = t.set_column(3, "last_conversation_at", pa.array([dt.datetime(2250, 1, 1), None], pa.timestamp("ms")))
    with pytest.raises(schema.SchemaError, match="'last_conversation_at' row 0: 2250-01-01"):
        schema.validate(late, required=late.schema.names)


def test_limits_are_declared_in_the_contract_and_documented():
    cols = schema.columns()
    assert cols["account_id"].length_limit == 64 and cols["brand"].length_limit == 64
    assert cols["region"].length_limit == 16 and cols["model_year"].value_range == (1900, 2100)
    assert cols["dpd"].value_range == schema.UNIT_RANGES["days"]
    assert cols["product"].length_limit is None and cols["product"].value_range is None
    assert all(c.length_limit for c in schema.BOOK if c.is_text)
    from pathlib import Path
    page = (Path(__file__).resolve().parents[2] / "docs" / "data-contract.md").read_text()
    assert "| `account_id` | string |  | no |  | 1–64 chars |" in page and "| `brand` | string |  | no |  | ≤ 64 chars |" in page
    assert {c.name for c in schema.BOOK if c.min_length} == {"account_id", "customer_id", "vin"}


# -- time zones: an IANA zone zoneinfo knows, checked once per distinct value ---------------------
BAD_ZONES = [("Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
             ("UTC+8", "'UTC+8' is not an IANA time zone"),
             ("asia/shanghai", "'asia/shanghai' is not an IANA time zone"),    # (zoneinfo's names are cased)
             ("Asia/../UTC", "a value of 11 characters (not shown) is not an IANA time zone"),
             ("", "empty, not an IANA time zone"),
             ("Zhang San", "a value of 9 characters (not shown) is not an IANA time zone"),
             ("13800138000", "a value of 11 characters (not shown) is not an IANA time zone")]
GOOD_ZONES = ["Asia/Shanghai", "America/New_York", "UTC", "Etc/GMT+8", "America/Argentina/ComodRivadavia",
              "posixrules"]     # (the last: a zone zoneinfo opens without listing it)


@pytest.mark.parametrize("zone, words", BAD_ZONES, ids=[z or "empty" for z, _ in BAD_ZONES])
def test_an_unknown_time_zone_is_refused_naming_the_row_and_a_zone_shaped_value(small_book, zone, words):
    table = _with_value(_with_value(small_book.slice(0, 8), "time_zone", 6, "Mars/Olympus"), "time_zone", 3, zone)
    for data in (table, table.set_column(table.schema.get_field_index("time_zone"), "time_zone",
                                         table["time_zone"].combine_chunks().dictionary_encode())):
        with pytest.raises(schema.SchemaError) as err:
            schema.validate(data, source="upload.arrow")
        assert (err.value.field, err.value.row) == ("time_zone", 3)
        assert str(err.value).startswith(f"upload.arrow: column 'time_zone' row 3: {words}")
    record = {**small_book.slice(0, 1).to_pylist()[0], "time_zone": zone}
    found = schema.record_checker("book", "account.")(record)
    assert [v.field for v in found] == ["account.time_zone"] and found[0].message.startswith(words)
    assert schema.check_value(schema.columns()["time_zone"], zone).startswith(words)


def test_every_zone_zoneinfo_knows_passes(small_book):
    from kernel.localtime import listed_zones
    zones = [*GOOD_ZONES, *listed_zones()]
    table = pa.table({"time_zone": zones})
    schema.validate(table, required=["time_zone"])
    check = schema.record_checker("customers")
    record = small_book.slice(0, 1).to_pylist()[0]
    assert all(check({**record, "time_zone": z}) == [] for z in zones)
    # a null is the contract's "required", not an unknown zone
    assert schema.record_checker("book")({**record, "time_zone": None}) == [
        schema.Violation("time_zone", None, schema.REQUIRED)]
