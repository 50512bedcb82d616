"""Issue 15, points 3, 4 and 6: table rows with ids and notes, block-scalar traps, one rule for
quoted literals in tables and rules."""
import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pytest

import kernel
from kernel.rules import RulesetError

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "rule-author-guide.md").read_text(encoding="utf-8")
DPD_ROWS = re.search(r"<!-- file: dpd_rows.yaml -->\n```yaml\n(.*?)```", GUIDE, re.S).group(1)


def test_row_ids_replace_row_numbers_in_both_engines():
    rs = kernel.compile_ruleset(DPD_ROWS)
    table = pa.table({"dpd": pa.array([0, 5, 31, 75, None], pa.int64())})
    for engine in ("reference", "compiled"):
        out = rs.evaluate(table, engine=engine)
        assert out.column("dpd_rows.rule").to_pylist() == ["row1", "m1", "m2", "row4", None], engine
    assert rs.checked.rule_notes == {"m1": "1–30 days past due — SMS and voice bot",
                                     "m2": "31–60 days: the field team's first bucket"}


def test_explain_shows_the_rows_id_and_note(tmp_path):
    (tmp_path / "dpd_rows.yaml").write_text(DPD_ROWS, encoding="utf-8")
    k = kernel.Kernel.load(tmp_path)
    e = k.explain(pa.table({"dpd": pa.array([31, 75], pa.int64())}), as_of=dt.date(2026, 11, 28))
    assert e[0]["dpd_rows"]["rule"] == "m2" and e[0]["dpd_rows"]["note"] == "31–60 days: the field team's first bucket"
    assert e[1]["dpd_rows"]["rule"] == "row4" and "note" not in e[1]["dpd_rows"]
    decided = k.decide(pa.table({"dpd": pa.array([31], pa.int64())}), as_of=dt.date(2026, 11, 28))
    assert decided.column("dpd_rows.rule").to_pylist() == ["m2"]          # what the audit log records


@pytest.mark.parametrize("row, message", [
    ('{id: "bad id", cells: ["<= 0", M0]}', "`id` must be a name"),
    ('{id: m1, cells: ["<= 0", M0]}', "rule id `m1` is used twice"),
    ('{id: x, note: [a], cells: ["<= 0", M0]}', "`note` must be a string"),
    ('{id: x, notes: a, cells: ["<= 0", M0]}', "unknown key `notes` in row 5 — did you mean `note`?"),
    ('{id: x}', "row 5: missing `cells:`"),
])
def test_bad_row_ids_and_notes_name_the_row_and_line(row, message):
    text = DPD_ROWS.replace('    - [">= 61", M3]\n', f'    - [">= 61", M3]\n    - {row}\n')
    with pytest.raises(RulesetError) as info:
        kernel.compile_ruleset(text)
    line = text.splitlines().index(f"    - {row}") + 1
    assert any(d.line == line and message in str(d) for d in info.value.diagnostics), str(info.value)


def test_a_key_swallowed_by_a_block_scalar_is_a_warning():
    text = DPD_ROWS.replace("hit: unique\n", "description: |\n  the policy, in words\n  hit: unique\n")
    rs = kernel.compile_ruleset(text)
    assert rs.ir.hit == "first"                       # what YAML made of it: the warning says why
    [w] = rs.warnings
    assert (w.line, w.column) == (5, 3) and "`hit:` is inside the block text of `description:`" in w.message


def test_a_block_scalar_mentioning_a_key_the_file_gives_is_no_warning():
    text = DPD_ROWS.replace("hit: unique\n", "hit: unique\ndescription: |\n  inputs: the DPD only\n")
    assert kernel.compile_ruleset(text).warnings == []


@pytest.mark.parametrize("cell", ["\">= '31'\"", "\"'31'\"", "\"[1..'30']\""])
def test_a_quoted_number_is_text_in_a_table_as_in_a_rule(cell):
    table_text = DPD_ROWS.replace('[">= 61", M3]', f"[{cell}, M3]")
    with pytest.raises(RulesetError) as table_error:
        kernel.compile_ruleset(table_text)
    rules_text = ('ruleset: r\nversion: "1"\ninputs: {dpd: int}\noutputs: {x: {type: bool, default: false}}\n'
                  "rules:\n  - id: r\n    when: dpd >= '31'\n    then: {x: true}\n")
    with pytest.raises(RulesetError) as rule_error:
        kernel.compile_ruleset(rules_text)
    same = "can only be an enum member, compared with or assigned to an enum"
    assert same in str(table_error.value) and same in str(rule_error.value)


def test_quoted_enum_labels_in_cells_still_work():
    text = DPD_ROWS.replace("inputs:\n  dpd: int\n", "inputs:\n  dpd: int\n  country: {enum: [CN, US]}\n") \
        .replace("when: [dpd]", "when: [dpd, country]").replace('[">= 61", M3]', "[\">= 61\", \"'CN'\", M3]") \
        .replace('["<= 0", M0]', '["<= 0", "-", M0]').replace('cells: ["[1..30]", M1]', 'cells: ["[1..30]", "-", M1]') \
        .replace('cells: ["[31..60]", M2]', 'cells: ["[31..60]", "-", M2]').replace("given: {dpd: 75}", "given: {dpd: 75, country: CN}")
    kernel.compile_ruleset(text)
