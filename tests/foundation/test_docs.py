from pathlib import Path

from kernel import schema

ROOT = Path(__file__).resolve().parents[2]


def test_data_contract_page_is_current():
    page = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert page == schema.markdown(), "docs/data-contract.md is stale: python -m kernel.schema > docs/data-contract.md"
