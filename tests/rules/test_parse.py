"""Stage 1: YAML and expression positions map back to the file exactly."""
import pytest

import kernel
from kernel.rules import RulesetError
from kernel.rules.diagnostics import Diagnostics
from kernel.rules.parse import ExprSource, Mapping, Scalar, Sequence, parse_expression, parse_yaml

BASE = """ruleset: r
version: "1"
inputs: {dpd: int, amount: float}
outputs:
  tier: {enum: [NONE, HIGH], default: NONE}
rules:
  - id: a
"""


def _error(text: str):
    with pytest.raises(RulesetError) as info:
        kernel.compile_ruleset(text)
    return info.value.diagnostics


def test_positions_of_keys_values_and_items():
    d = Diagnostics("f")
    root = parse_yaml("a: 1\nb:\n  - x\n  - {c: 'q'}\n", d)
    assert isinstance(root, Mapping) and root.key_pos("b") == (2, 1)
    assert root.get("a") == Scalar(1, (1, 4), "plain")
    seq = root.get("b")
    assert isinstance(seq, Sequence) and seq.items[0].pos == (3, 5)
    quoted = seq.items[1].get("c")
    assert (quoted.value, quoted.pos, quoted.style) == ("q", (4, 9), "single")


@pytest.mark.parametrize("when, column", [
    ("when: dpd > 1 and amont > 0", 23),          # plain scalar
    ("when: 'dpd > 1 and amont > 0'", 24),        # quoted: one more for the quote
    ('when: "dpd > 1 and amont > 0"', 24),
])
def test_expression_columns_inside_the_scalar(when, column):
    [d] = _error(BASE + f"    {when}\n    then: {{tier: HIGH}}\n")
    assert (d.line, d.column) == (8, column)
    assert "unknown name `amont`" in d.message and "did you mean `amount`?" in d.message


def test_block_scalar_lines_and_columns():
    text = BASE + "    when: |\n      dpd > 1 and\n        amont > 0\n    then: {tier: HIGH}\n"
    [d] = _error(text)
    assert (d.line, d.column) == (10, 9)


def test_syntax_error_points_at_the_column():
    [d] = _error(BASE + "    when: dpd > > 1\n    then: {tier: HIGH}\n")
    assert d.line == 8 and d.column >= 17 and "invalid expression syntax" in d.message



def test_a_number_run_into_a_name_is_an_error_not_a_warning_on_stderr(capfd):
    """Python only warns of `30and` (and reads it as `30 and`); a ruleset reports it."""
    [d] = _error(BASE + "    when: dpd > 30and amount > 0\n    then: {tier: HIGH}\n")
    assert d.line == 8 and d.column >= 17 and "invalid decimal literal" in d.message
    assert "SyntaxWarning" not in capfd.readouterr().err

def test_chinese_text_keeps_character_columns():
    text = BASE.replace("amount: float}", "amount: float, status: {enum: [逾期, 正常]}}")
    line = "    when: status in ['逾期'] and amont > 0"
    [d] = _error(text + line + "\n    then: {tier: HIGH}\n")
    assert (d.line, d.column) == (8, line.index("amont") + 1)


def test_yaml_errors_are_diagnostics_not_tracebacks():
    [d] = _error("ruleset: r\nversion: '1'\n  bad: [\n")
    assert d.message.startswith("invalid YAML") and d.line >= 2
    diagnostics = _error("ruleset: r\nruleset: s\n")
    assert any(d.message == "invalid YAML: duplicate key `ruleset` (first at line 1)" and d.line == 2
               for d in diagnostics)


def test_yaml_1_2_scalars():
    from kernel.rules.parse import _core_value
    assert [_core_value(v) for v in ("no", "on", "yes", "true", "~", "0x1f", "2026.11.1", "1e3", "-.inf")] == \
        ["no", "on", "yes", True, None, 31, "2026.11.1", 1000.0, float("-inf")]


def test_empty_and_non_mapping_files():
    assert "empty file" in _error("")[0].message
    assert "a ruleset file is a mapping" in _error("- a\n- b\n")[0].message


def test_expression_parse_never_evaluates():
    d = Diagnostics("f")
    src = ExprSource(Scalar("__import__('os').system('true')", (1, 1)))
    tree = parse_expression(src, d, None)
    assert tree is not None and not d.items       # parsed only; the checker rejects it
    [err] = _error(BASE + "    when: __import__('os').system('x') == 0\n    then: {tier: HIGH}\n")
    assert "unknown function" in err.message


def test_path_or_text(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE + "    when: dpd > 1\n    then: {tier: HIGH}\n", encoding="utf-8")
    assert kernel.compile_ruleset(path).file == str(path)
    assert kernel.compile_ruleset(str(path)).name == "r"
    assert kernel.compile_ruleset(path.read_text()).file == "<string>"
    [missing] = pytest.raises(RulesetError, kernel.compile_ruleset, str(tmp_path / "nope.yaml")).value.diagnostics
    assert missing.message == "no such file"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("ruleset: é\n".encode("latin-1"))
    assert "not UTF-8" in pytest.raises(RulesetError, kernel.compile_ruleset, bad).value.diagnostics[0].message
