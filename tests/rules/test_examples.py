"""The language's semantics, pinned as rulesets with examples (tests/rules/cases/*.yaml), run on
both engines: nulls, arithmetic and overflow, dates, enums, every hit policy, decision tables."""
import pytest

from kernel.rules.testing import run_examples


@pytest.mark.parametrize("engine", ["reference", "compiled"])
def test_every_case_example_passes(case_rulesets, engine):
    results = run_examples(case_rulesets, engine=engine)
    assert len(results) >= 30
    failures = [str(r) for r in results if not r.passed]
    assert not failures, "\n".join(failures)


def test_a_wrong_expectation_is_reported_with_expected_and_got(case_rulesets):
    import copy
    rs = copy.copy(next(r for r in case_rulesets if r.name == "policies"))
    case = copy.deepcopy(rs.tests[0])
    case.expect = {"action": rs.ir.output("action").type.members.index("VISIT"), "rule": "visit"}
    rs.checked = copy.copy(rs.checked)
    rs.checked.tests = [case]
    [result] = run_examples([rs], engine="compiled")
    assert not result.passed
    text = str(result)
    assert "action: expected VISIT, got SMS (rule sms)" in text
    assert "rule: expected visit, got sms" in text
    assert text.startswith(f"{rs.file}:{case.pos[0]}:")
