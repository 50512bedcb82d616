"""The structured fuzz suite: ``--fuzz-cases N`` (or ``$POSTLOAN_FUZZ_CASES``) sets how many
cases each fuzz test runs, ``--fuzz-seed S`` where the seeded sequence starts.

    python -m pytest tests/fuzz                             # CI: the default number of cases
    python -m pytest tests/fuzz --fuzz-cases 20000 -s       # a longer run; -s prints the tally

(The options exist when tests/fuzz is named on the command line; the environment variable
works for any invocation.)"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))   # hostile.py, auth_tokens.py


def pytest_addoption(parser):
    group = parser.getgroup("fuzz", "structured fuzzing (tests/fuzz)")
    group.addoption("--fuzz-cases", type=int, default=None, help="cases per fuzz test (default: the CI budget)")
    group.addoption("--fuzz-seed", type=int, default=None, help="first seed of the case sequence (default 0)")


@pytest.fixture(scope="session")
def fuzz_cases(request):
    """Cases per fuzz test: the option, the environment, or None (each test's CI default)."""
    value = request.config.getoption("--fuzz-cases", default=None) or os.environ.get("POSTLOAN_FUZZ_CASES")
    return int(value) if value else None


@pytest.fixture(scope="session")
def fuzz_seed(request):
    value = request.config.getoption("--fuzz-seed", default=None)
    return int(value) if value is not None else int(os.environ.get("POSTLOAN_FUZZ_SEED", "0"))
