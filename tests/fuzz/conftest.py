"""Options of the fuzz suites (tests/fuzz): each suite runs a fixed, seeded number of cases
sized for CI; a longer run is

    python -m pytest tests/fuzz --fuzz-cases 20000 --fuzz-seed 7 -s     # -s prints the tallies

``--fuzz-cases`` (or ``$POSTLOAN_FUZZ_CASES``) sets every suite's number of cases,
``--fuzz-seed`` (or ``$POSTLOAN_FUZZ_SEED``) which cases they are: case i of seed s is the same
on every machine. (The options exist when tests/fuzz is named on the command line; the
environment variables work for any invocation.)"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))   # hostile.py, auth_tokens.py


def pytest_addoption(parser):
    group = parser.getgroup("fuzz", "fuzz suites (tests/fuzz)")
    group.addoption("--fuzz-cases", type=int, default=None, metavar="N",
                    help="cases per fuzz suite (default: each suite's CI budget)")
    group.addoption("--fuzz-seed", type=int, default=None, metavar="S", help="seed of the fuzz cases (default 0)")


@pytest.fixture(scope="session")
def fuzz_cases(request):
    """The number of cases a suite runs: ``fuzz_cases(default)`` gives the option, else the
    environment, else the suite's own ``default``."""
    value = request.config.getoption("--fuzz-cases", default=None) or os.environ.get("POSTLOAN_FUZZ_CASES")
    given = int(value) if value else None
    return lambda default: given if given is not None else default


@pytest.fixture(scope="session")
def fuzz_seed(request) -> int:
    value = request.config.getoption("--fuzz-seed", default=None)
    return int(value) if value is not None else int(os.environ.get("POSTLOAN_FUZZ_SEED", "0"))
