"""Issue 15, points 1 and 2: errors point at the cause, and compile_ruleset checks the contract.

One wrong declaration is one error: the uses it breaks (in rules, table columns, examples, and
other rulesets reading the broken one) are counted on it, never listed."""
import pytest

import kernel
from kernel.bundle import Bundle
from kernel.rules import RulesetError

from .test_bundle import ACTION, BUCKET, ruleset, write

USES_DPD = ruleset("uses", "{dpdd: int}", "{late: {type: bool, default: false}, n: {type: int, default: 0}}", """\
    - id: late
      when: dpd > 30
      then: {late: true, n: dpd}
    - id: early
      when: 0 < dpd <= 30
      then: {n: dpd + 1}
    """) + "tests:\n  - name: one\n    given: {dpd: 3}\n    expect: {n: 4}\n"


def test_a_misspelt_input_is_one_error_counting_what_follows(tmp_path):
    with pytest.raises(RulesetError) as info:
        Bundle.load(write(tmp_path, uses=USES_DPD))
    [d] = info.value.diagnostics
    assert d.line == 4 and "input `dpdd` is not a column of the book" in d.message and "did you mean `dpd`?" in d.message
    # dpd in `late` (when, then) and in `early` (when, then): four uses
    assert d.more == 4 and str(d).endswith("(4 more errors follow from this one)")


def test_rulesets_reading_a_broken_one_are_counted_on_its_error(tmp_path):
    broken = BUCKET.replace("{dpd: int}", "{dpd: float}")
    with pytest.raises(RulesetError) as info:
        Bundle.load(write(tmp_path, bucket=broken, action=ACTION))
    [d] = info.value.diagnostics
    assert d.file.endswith("bucket.yaml") and "declared as float, but the data contract says int" in d.message
    assert d.more == 1           # action.yaml's `bucket.late` dangles because bucket does not compile


def test_an_unrelated_error_elsewhere_is_still_reported(tmp_path):
    broken = BUCKET.replace("{dpd: int}", "{dpd: float}")
    other = ACTION.replace("bucket.late and", "bucket.late and nope and")
    with pytest.raises(RulesetError) as info:
        Bundle.load(write(tmp_path, bucket=broken, action=other))
    messages = [str(d) for d in info.value.diagnostics]
    assert len(messages) == 2 and any("unknown name `nope`" in m for m in messages)


def test_the_rest_of_the_file_is_checked_with_the_contracts_type():
    # declared int, the contract says float: the example's 0.4 is not a second error
    text = ruleset("va", "{gps_offline_hours: int}", "{off: {type: bool, default: false}}",
                   "- id: off\n  when: gps_offline_hours >= 72\n  then: {off: true}\n") \
        + "tests:\n  - name: t\n    given: {gps_offline_hours: 0.4}\n    expect: {off: false}\n"
    with pytest.raises(RulesetError) as info:
        kernel.compile_ruleset(text)
    [d] = info.value.diagnostics
    assert "input `gps_offline_hours` is declared as int, but the data contract says float" in d.message


@pytest.mark.parametrize("declared, contract", [("float", "int"), ("int", "float"), ("bool", "int"),
                                                ("{enum: [CN]}", "enum {CN, US}")])
def test_compile_ruleset_checks_declared_types_against_the_data_contract(declared, contract):
    column = {"int": "dpd", "float": "overdue_amount", "bool": "dpd", "enum {CN, US}": "country"}[contract]
    text = ruleset("r", f"{{{column}: {declared}}}", "{x: {type: bool, default: false}}",
                   "- id: r\n  when: true\n  then: {x: true}\n")
    with pytest.raises(RulesetError) as info:
        kernel.compile_ruleset(text)
    assert f"the data contract says {contract}" in str(info.value) and ":4:" in str(info.value)


def test_compile_ruleset_still_reads_the_callers_own_columns():
    rs = kernel.compile_ruleset(ruleset("r", "{my_score: float}", "{x: {type: bool, default: false}}",
                                        "- id: r\n  when: my_score > 1\n  then: {x: true}\n"))
    assert rs.inputs["my_score"].kind == "float"
