"""docs/ledger.md documents every event kind, every state column and every setting."""
from __future__ import annotations

import re
from pathlib import Path

from kernel.ledger import KINDS, StateSettings
from kernel.schema import ENUMS, STATE

DOC = (Path(__file__).resolve().parents[2] / "docs" / "ledger.md").read_text()


def test_every_event_kind_with_what_it_needs():
    table = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)`.*$", DOC, re.M)}
    for name, kind in KINDS.items():
        row = next((line for key, line in table.items() if key == name or f"`{name}`" in line), None)
        assert row is not None, f"{name} is not in the event table"
        for column in kind.needs:
            assert column in row, f"{name}: the table does not say it needs {column}"


def test_every_state_column_and_setting_is_explained():
    for column in STATE[2:]:
        stem = column.name
        assert stem in DOC or stem.rsplit("_", 1)[0] in DOC, f"state column {column.name} is not in docs/ledger.md"
    for setting in StateSettings.__dataclass_fields__:
        assert f"`{setting}`" in DOC or f"`[ledger.{setting}." in DOC, f"[ledger] {setting} is not documented"
    for member in ENUMS["contact_outcome"] + ENUMS["contact_channel"]:
        assert f"`{member}`" in DOC
