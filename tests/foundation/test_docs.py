from pathlib import Path

from kernel import schema

ROOT = Path(__file__).resolve().parents[2]


def test_data_contract_page_is_current():
    page = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert page == schema.markdown(), "docs/data-contract.md is stale: python -m kernel.schema > docs/data-contract.md"


def test_the_rule_author_guides_broken_file_gives_the_errors_it_shows(tmp_path, monkeypatch, capsys):
    """Section 11 of the rule-author guide: the file it shows, checked, prints what it shows."""
    import re

    from kernel.cli import main

    guide = (ROOT / "docs" / "rule-author-guide.md").read_text(encoding="utf-8")
    section = guide.split("## 11.", 1)[1]
    text = re.search(r"`tier_broken\.yaml`:\n\n```yaml\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"\$ postloan check tier_broken\.yaml\n(.*?)```", section, re.S).group(1).splitlines()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tier_broken.yaml").write_text(text, encoding="utf-8")
    assert main(["check", "tier_broken.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() + err.splitlines() == shown
