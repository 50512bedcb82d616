import datetime as dt
import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent
AS_OF = dt.date(2026, 11, 28)
#: set POSTLOAN_UPDATE_GOLDEN=1 to rewrite the golden files from the current output
UPDATE_GOLDEN = os.environ.get("POSTLOAN_UPDATE_GOLDEN") == "1"


def golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the golden file (or write it when updating)."""
    if UPDATE_GOLDEN or not path.exists():
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"differs from {path} (POSTLOAN_UPDATE_GOLDEN=1 rewrites it)"


@pytest.fixture(scope="session")
def case_rulesets():
    """The language cases (tests/rules/cases), each compiled on its own."""
    import kernel
    return [kernel.compile_ruleset(p) for p in sorted((HERE / "cases").glob("*.yaml"))]


@pytest.fixture(scope="session")
def shipped_kernel():
    """The shipped bundle, compiled once per session."""
    import kernel
    return kernel.Kernel.load()
