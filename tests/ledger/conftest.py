"""Ledger fixtures: ``ledger_url`` names a fresh, empty store for each test."""
from __future__ import annotations

import pytest


@pytest.fixture
def ledger_url(tmp_path):
    """A fresh SQLite ledger file."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"
