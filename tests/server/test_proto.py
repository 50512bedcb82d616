"""The API's messages mirror the data contract exactly, and the committed generated code is current."""
import pyarrow as pa
import pytest
from google.protobuf.descriptor import FieldDescriptor

from kernel import schema
from kernel.server._proto import regenerate
from kernel.server._proto.postloan.v1 import contract_pb2


def test_committed_protos_and_generated_code_are_current():
    assert regenerate.stale() == []


def _expected(col: schema.Column):
    t = col.type
    if col.enum:
        return ("enum", regenerate.enum_type_name(col.enum))
    if pa.types.is_integer(t):
        return ("scalar", FieldDescriptor.TYPE_INT64)
    if pa.types.is_floating(t):
        return ("scalar", FieldDescriptor.TYPE_DOUBLE)
    if pa.types.is_boolean(t):
        return ("scalar", FieldDescriptor.TYPE_BOOL)
    if pa.types.is_date(t):
        return ("message", "google.type.Date")
    if pa.types.is_timestamp(t):
        return ("message", "google.protobuf.Timestamp")
    assert pa.types.is_string(t), col
    return ("scalar", FieldDescriptor.TYPE_STRING)


def _actual(field: FieldDescriptor):
    if field.enum_type is not None:
        return ("enum", field.enum_type.name)
    if field.message_type is not None:
        return ("message", field.message_type.full_name)
    return ("scalar", field.type)


@pytest.mark.parametrize("message,table", sorted(regenerate.MESSAGES.items()))
def test_each_contract_column_has_a_field_of_its_type_and_vice_versa(message, table):
    descriptor = getattr(contract_pb2, message).DESCRIPTOR
    fields = {f.name: f for f in descriptor.fields}
    columns = schema.columns(table)
    assert set(fields) == set(columns)
    for name, col in columns.items():
        field = fields[name]
        assert _actual(field) == _expected(col), name
        # A missing value must be distinguishable from 0: explicit presence, or enum value 0 = unset.
        assert field.has_presence or field.enum_type is not None, name


def test_enum_values_are_the_contract_members_in_order():
    for key, members in schema.ENUMS.items():
        enum = getattr(contract_pb2, regenerate.enum_type_name(key), None)
        if enum is None:   # enumerations of tables the API does not carry (events)
            continue
        names = [v.name for v in enum.DESCRIPTOR.values]
        assert names[0].endswith("_UNSPECIFIED")
        assert names[1:] == [regenerate.enum_value_name(key, m) for m in members]
        assert [v.number for v in enum.DESCRIPTOR.values] == list(range(len(members) + 1))


def test_field_numbers_survive_a_new_and_a_dropped_column(monkeypatch):
    committed = (regenerate.PROTO_ROOT / regenerate.PROTO_FILES[0]).read_text()
    old = regenerate._existing_numbers(committed)["Vehicle"]
    extra = schema._c("tow_hitch", pa.bool_(), "", False, False, "Has a tow hitch.")
    vehicles = tuple(c for c in schema.VEHICLES if c.name != "brand") + (extra,)
    monkeypatch.setitem(schema.TABLES, "vehicles", vehicles)
    new = regenerate._existing_numbers(regenerate.contract_proto_text(committed))["Vehicle"]
    assert new["tow_hitch"] == max(abs(n) for n in old.values()) + 1
    assert new["brand"] == -old["brand"]          # reserved, never reused
    assert all(new[n] == old[n] for n in old if n != "brand")
