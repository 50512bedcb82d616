import datetime as dt

import pytest

AS_OF = dt.date(2026, 11, 28)


@pytest.fixture(scope="session")
def small_book():
    """A 5,000-account synthetic book (seed 11), shared by the whole session."""
    from kernel.synth import generate
    return generate(5_000, seed=11, as_of=AS_OF)
