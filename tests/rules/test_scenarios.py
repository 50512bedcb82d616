"""Issue 15, point 5: bundle-level scenarios — given one account's book columns, expect the
outputs of several rulesets; run by `postloan test`, failures and bad names reported with file,
line and column."""
import shutil
from pathlib import Path

import pytest

from kernel.bundle import Bundle
from kernel.cli import main

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
scenarios:
  - name: thirty-one days
    as_of: 2026-11-28
    given: {dpd: 31, overdue_amount: 8000, phone_valid: true, country: CN}
    expect: {dpd_bucket.bucket: M2, collection_tier.tier: SEVERE, collection_tier.rule: severe}
"""


@pytest.fixture
def bundle(tmp_path):
    folder = tmp_path / "b"
    for part in ("rulesets", "models"):
        shutil.copytree(ROOT / part, folder / part)
    return folder


def run(capsys, *argv):
    code = main(["test", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_scenario_files_are_not_rulesets(bundle):
    (bundle / "x.scenarios.yaml").write_text(GOOD, encoding="utf-8")
    Bundle.load(bundle)                 # would fail ("not a ruleset") if the loader read it


def test_postloan_test_runs_the_shipped_and_a_new_scenario(bundle, capsys):
    (bundle / "x.scenarios.yaml").write_text(GOOD, encoding="utf-8")
    for engine in ("reference", "compiled"):
        code, out, err = run(capsys, str(bundle), "--engine", engine)
        assert code == 0, out + err
        assert "3 scenarios in 2 files: 3 passed, 0 failed" in err


def test_a_failing_scenario_names_file_line_output_and_deciding_rule(bundle, capsys):
    (bundle / "x.scenarios.yaml").write_text(GOOD.replace("tier: SEVERE", "tier: MEDIUM"), encoding="utf-8")
    code, out, err = run(capsys, str(bundle))
    assert code == 1
    [line] = [x for x in out.splitlines() if "FAILED" in x]
    assert line.startswith(f"{bundle}/x.scenarios.yaml:2:5: FAILED: scenario: test `thirty-one days`")
    assert "collection_tier.tier: expected MEDIUM, got SEVERE (rule severe)" in line
    assert "1 failed" in err


def test_a_scenario_is_end_to_end_a_changed_threshold_fails_it(bundle, capsys):
    """The point of scenarios: move the M2 edge in dpd_bucket and the 31-day field visit,
    which no single ruleset's tests see as a whole, fails."""
    path = bundle / "rulesets" / "dpd_bucket.yaml"
    text = path.read_text("utf-8").replace('"[1..30]"', '"[1..31]"').replace('"[31..60]"', '"[32..60]"')
    path.write_text(text, encoding="utf-8")
    (bundle / "x.scenarios.yaml").write_text(GOOD, encoding="utf-8")
    code, out, err = run(capsys, str(bundle))
    assert code == 1
    assert any("x.scenarios.yaml:2:5: FAILED" in x and "dpd_bucket.bucket: expected M2, got M1" in x
               for x in out.splitlines())


@pytest.mark.parametrize("text, where, message", [
    (GOOD.replace("overdue_amount", "overdue_amont"), "4:22",
     "`overdue_amont` is not an input of the bundle (a book or state column) — did you mean `overdue_amount`"),
    (GOOD.replace("collection_tier.tier", "collection_tier.tire"), "5:37",
     "`collection_tier.tire` is not a decision column — did you mean `collection_tier.tier`"),
    (GOOD.replace("dpd: 31", "dpd: '31'"), "4:18", "`dpd`: expected an int"),
    (GOOD.replace("    as_of: 2026-11-28\n", ""), "2:5", "missing `as_of: YYYY-MM-DD`"),
])
def test_bad_scenarios_are_named_with_file_line_and_column(bundle, capsys, text, where, message):
    (bundle / "x.scenarios.yaml").write_text(text, encoding="utf-8")
    code, out, err = run(capsys, str(bundle))
    assert code == 1
    assert any(x.startswith(f"{bundle}/x.scenarios.yaml:{where}: ") and message in x for x in out.splitlines()), out


def test_scenarios_on_the_reference_engine_compile_nothing(tmp_path, monkeypatch):
    """`postloan test` (reference engine) runs the bundle's scenarios without compiling a node:
    a rule author's answer in seconds after every edit."""
    import kernel.codegen as codegen
    from kernel.runtime import Kernel
    from kernel.errors import BundleError
    monkeypatch.setattr(codegen, "compile_plan", lambda *a, **k: pytest.fail("compiled"))
    k = Kernel.load(compile=False)
    assert "dpd" in k.inputs
    with pytest.raises(BundleError, match="loaded without compiling"):
        k.decide_record({"dpd": 1})
