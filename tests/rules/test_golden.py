"""Golden files: the diagnostics of broken rulesets and the IR of valid ones, pinned as text.

Rewrite them after an intended change with POSTLOAN_UPDATE_GOLDEN=1 and review the diff."""
from pathlib import Path

import pytest

import kernel
from kernel.rules import RulesetError
from kernel.rules.ir import dump

from .conftest import HERE, golden

ERRORS = sorted((HERE / "golden" / "errors").glob("*.yaml"))
WARNINGS = sorted((HERE / "golden" / "warnings").glob("*.yaml"))
CASES = sorted((HERE / "cases").glob("*.yaml"))


def _relative(text: str) -> str:
    return text.replace(str(HERE) + "/", "")


@pytest.mark.parametrize("path", ERRORS, ids=lambda p: p.stem)
def test_errors_of_broken_rulesets(path: Path):
    with pytest.raises(RulesetError) as info:
        kernel.compile_ruleset(path)
    error = info.value
    assert error.errors, "a broken file must report errors"
    assert all(d.file == str(path) and d.line >= 1 and d.column >= 1 for d in error.diagnostics)
    golden(path.with_suffix(".txt"), _relative(str(error)) + "\n")


@pytest.mark.parametrize("path", WARNINGS, ids=lambda p: p.stem)
def test_warnings_do_not_raise(path: Path):
    rs = kernel.compile_ruleset(path)
    assert rs.warnings and all(w.severity == "warning" for w in rs.warnings)
    golden(path.with_suffix(".txt"), _relative("\n".join(str(w) for w in rs.warnings)) + "\n")


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_ir_dump(path: Path):
    rs = kernel.compile_ruleset(path)
    golden(HERE / "golden" / "ir" / f"{path.stem}.ir", dump(rs.ir))


def test_all_errors_are_reported_at_once():
    error = pytest.raises(RulesetError, kernel.compile_ruleset, HERE / "golden" / "errors" / "types.yaml").value
    assert len(error.errors) >= 10
    lines = str(error).splitlines()
    assert len(lines) == len(error.diagnostics)
    assert all(line.startswith(str(HERE / "golden" / "errors" / "types.yaml") + ":") for line in lines)
