"""Options of the fuzz suites (tests/fuzz): each suite runs a fixed, seeded number of cases
sized for CI (about half a minute each); a longer run is

    python -m pytest tests/fuzz --fuzz-cases 20000 --fuzz-seed 7

``--fuzz-cases`` sets every suite's number of cases, ``--fuzz-seed`` which cases they are
(case i of seed s is the same on every machine: ``random.Random(f"{s}:{i}")``)."""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("fuzz", "fuzz suites (tests/fuzz)")
    group.addoption("--fuzz-cases", type=int, default=None, metavar="N",
                    help="cases per fuzz suite (default: each suite's CI budget)")
    group.addoption("--fuzz-seed", type=int, default=0, metavar="S", help="seed of the fuzz cases (default 0)")


@pytest.fixture(scope="session")
def fuzz_seed(request) -> int:
    return request.config.getoption("--fuzz-seed")


@pytest.fixture(scope="session")
def fuzz_cases(request):
    """The number of cases a suite runs: ``--fuzz-cases`` or the suite's own default."""
    given = request.config.getoption("--fuzz-cases")
    return lambda default: given if given is not None else default
