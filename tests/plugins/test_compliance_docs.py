"""docs/compliance.md is the rulebook a compliance officer signs: it holds the generated table
of every rule, and names every built-in policy, reason code and parameter."""
from __future__ import annotations

from pathlib import Path

from kernel.plugins import DEFAULT_CONFIG

DOC = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text("utf-8")


def test_the_rulebook_table_is_current():
    from postloan_builtins.compliance import rulebook
    start = DOC.index("<!-- rulebook:start -->\n") + len("<!-- rulebook:start -->\n")
    end = DOC.index("<!-- rulebook:end -->")
    assert DOC[start:end] == rulebook(), "regenerate it: python -m postloan_builtins.compliance"


def test_every_policy_code_and_parameter_is_in_the_document(policies):
    for name, policy in policies.items():
        assert f"`{name}`" in DOC, name
        for code in policy.reason_codes:
            assert code in DOC, (name, code)
        for parameter in getattr(policy, "defaults", {}):
            assert f"`{parameter}`" in DOC, (name, parameter)
    for names in DEFAULT_CONFIG["compliance"]["sets"].values():
        assert all(f'"{n}"' in DOC for n in names)
