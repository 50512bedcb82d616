import pyarrow as pa
import pytest

from kernel import schema


def test_every_column_is_documented():
    for table, cols in schema.TABLES.items():
        for col in cols:
            assert col.doc.strip(), f"{table}.{col.name} has no description"
            field = col.field()
            assert field.metadata[b"pii"] in (b"true", b"false")
            if col.enum:
                assert pa.types.is_dictionary(col.type)


def test_personal_data_is_flagged():
    assert {"name", "id_number", "phone", "address", "plate_number", "gps_lat", "gps_lon"} <= schema.pii_columns()
    assert "dpd" not in schema.pii_columns()


def test_book_is_the_join_of_accounts_customers_vehicles():
    names = [c.name for c in schema.BOOK]
    assert len(names) == len(set(names))
    expected = {c.name for t in (schema.ACCOUNTS, schema.CUSTOMERS, schema.VEHICLES) for c in t}
    assert set(names) == expected


def test_generated_book_validates(small_book):
    schema.validate(small_book)
    assert small_book.schema.equals(schema.arrow_schema("book"), check_metadata=False)


def test_missing_column_is_named(small_book):
    broken = small_book.drop_columns(["bureau_score", "dpd"])
    with pytest.raises(schema.SchemaError, match="missing column 'dpd'") as err:
        schema.validate(broken)
    assert err.value.field == "dpd"


def test_wrong_type_is_named(small_book):
    i = small_book.schema.get_field_index("dpd")
    broken = small_book.set_column(i, "dpd", small_book["dpd"].cast(pa.string()))
    with pytest.raises(schema.SchemaError, match="column 'dpd' has type string, expected int64"):
        schema.validate(broken)


def test_null_in_required_column_names_row(small_book):
    i = small_book.schema.get_field_index("principal")
    values = small_book["principal"].to_pylist()
    values[17] = None
    broken = small_book.set_column(i, "principal", pa.array(values, pa.float64()))
    with pytest.raises(schema.SchemaError, match=r"'principal' must not be null \(first null at row 17\)") as err:
        schema.validate(broken)
    assert err.value.row == 17


def test_unknown_enum_member_names_row_not_value(small_book):
    i = small_book.schema.get_field_index("gps_status")
    values = small_book["gps_status"].to_pylist()
    values[3] = "BROKEN"
    broken = small_book.set_column(i, "gps_status", pa.array(values, pa.string()))
    with pytest.raises(schema.SchemaError, match="'gps_status' row 3: not one of ONLINE") as err:
        schema.validate(broken)
    assert "BROKEN" not in str(err.value)       # a request's strings never reach a message


def test_plain_strings_and_narrow_ints_are_accepted(small_book):
    t = small_book.select(["dpd", "gps_status"])
    t = pa.table({"dpd": t["dpd"].cast(pa.int32()), "gps_status": t["gps_status"].cast(pa.string())})
    schema.validate(t, required=["dpd", "gps_status"])


def test_logical_types():
    cols = schema.columns("book")
    assert schema.logical_type(cols["dpd"]) == "int"
    assert schema.logical_type(cols["overdue_amount"]) == "float"
    assert schema.logical_type(cols["repossessed"]) == "bool"
    assert schema.logical_type(cols["promise_date"]) == "date"
    assert schema.logical_type(cols["condition_grade"]) == {"enum": ["A", "B", "C", "D", "E"]}
    assert schema.logical_type(cols["name"]) == "string"


def test_unknown_table_is_an_error():
    with pytest.raises(schema.SchemaError, match="unknown table 'loans'"):
        schema.columns("loans")
