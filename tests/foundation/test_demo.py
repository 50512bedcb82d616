"""postloan demo end to end on a small book: every section is there and its figures are the
book's and the decisions' own (recomputed here independently)."""
import re

import numpy as np
import pytest

from kernel.cli import main
from kernel.synth import generate


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    import contextlib
    import io
    out = io.StringIO()
    folder = tmp_path_factory.mktemp("demo")
    audit = folder / "audit.log"
    config = folder / "postloan.toml"           # --config (issue 15, point 10): the scripts name this lender
    config.write_text('[strategy.tiered.zh]\nlender = "测试汽车金融"\n', encoding="utf-8")
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--accounts", "4000", "--seed", "5", "--quiet", "--audit", str(audit),
                     "--config", str(config)])
    assert code == 0
    return out.getvalue()


def test_every_section_is_printed(demo_output):
    for heading in ("Portfolio", "DPD buckets", "Roll rates", "Early warning", "Overdue accounts by reason",
                    "High-risk overdue profile", "Vehicle alerts", "Collection tiers", "Actions planned",
                    "Sample scripts", "Litigation", "Asset disposal", "Case ledger", "The contact-time gate",
                    "Compliance: every deferred or blocked action", "Compliance, told on a few accounts"):
        assert heading in demo_output, heading


def test_figures_are_computed_from_the_book(demo_output):
    book = generate(4000, seed=5)
    dpd = book["dpd"].to_numpy()
    rate = re.search(r"overdue rate ([\d.]+)% of accounts", demo_output)
    assert float(rate.group(1)) == pytest.approx(100 * np.mean(dpd > 0), abs=0.051)
    m1 = re.search(r"^\s+M1\s+([\d,]+)\s", demo_output, re.M)
    assert int(m1.group(1).replace(",", "")) == int(np.sum((dpd >= 1) & (dpd <= 30)))
    tier = re.search(r"^\s+SEVERE\s+([\d,]+)\s", demo_output, re.M)
    assert int(tier.group(1).replace(",", "")) == int(np.sum(dpd >= 31))


def test_scripts_are_shown_with_names_masked(demo_output):
    book = generate(4000, seed=5)
    section = demo_output.split("Sample scripts", 1)[1].split("Litigation", 1)[0]
    assert "逾期" in section
    for name in set(book["name"].to_pylist()):
        assert name not in section


def test_the_demo_ingests_its_events_decides_from_state_and_asks_the_gate(demo_output):
    from kernel.synth import generate_events
    events = generate_events(4000, seed=5)
    ingested = re.search(r"Case ledger \(.*\): ([\d,]+) events ingested with the book \(([\d,]+) stored or reduced, "
                         r"0 already there, 0 rejected\)", demo_output)
    assert ingested and int(ingested.group(1).replace(",", "")) == events.num_rows
    held = {label: int(n.replace(",", "")) for label, n in
            re.findall(r"^\s+(open promise to pay, not yet due|open dispute|field visit in the last 7 days)\s+([\d,]+)",
                       demo_output, re.M)}
    assert len(held) == 3 and all(n > 0 for n in held.values()), held
    gate = demo_output.split("The contact-time gate", 1)[1]
    assert re.search(r"\(CN, 10:00 local\) PHONE → KEEP", gate) and "DEFER CN_DAILY_CONNECTED_CALLS" in gate
    assert re.search(r"\(US, .*\) PHONE → KEEP", gate) and "DEFER REGF_RECENT_CONVERSATION" in gate


def test_the_demo_shows_holds_consent_third_parties_and_the_repossession_lifecycle(demo_output):
    """Issue 12: holds, consent blocks, third-party limits and the repossession lifecycle with
    their reason codes."""
    story = demo_output.split("Compliance, told on a few accounts", 1)[1]
    for code in ("BLOCK HOLD_DISPUTE_OPEN", "BLOCK HOLD_BANKRUPTCY_STAY", "DEFER HOLD_PROMISE_OPEN",
                 "BLOCK US_TCPA_NO_CONSENT", "BLOCK REGF_RESTRICTED_MEDIUM", "BLOCK US_CEASE_COMMUNICATION",
                 "BLOCK CN_REPOSSESSION_NO_LEGAL_BASIS", "BLOCK US_SCRA_COURT_ORDER_REQUIRED", "BLOCK DISPOSAL_NO_NOTICE",
                 "DEFER DISPOSAL_REDEMPTION_WINDOW"):
        assert code in story, code
    assert story.count("BLOCK THIRD_PARTY_DEBT_DISCLOSED") == 4          # the four payloads of the issue
    assert re.search(r"(deficiency|surplus) ¥[\d,.]+ (owed by|returned to) the debtor", story)      # in the
    assert re.search(r"(deficiency|surplus) \$[\d,.]+ (owed by|returned to) the debtor", story)     # account's currency
    lifecycle = story.split("Repossession and disposal", 1)[1]
    assert lifecycle.index("DISPOSAL_NO_NOTICE") < lifecycle.index("DISPOSAL_REDEMPTION_WINDOW") < lifecycle.index("→ KEEP\n    sold")
    reasons = demo_output.split("Compliance: every deferred or blocked action", 1)[1].split("Compliance, told", 1)[0]
    assert "repossession and disposal" in reasons and "holds" in reasons


def test_the_demo_reads_the_configuration_given_with_config(demo_output):
    section = demo_output.split("Sample scripts", 1)[1].split("Litigation", 1)[0]
    assert "【测试汽车金融】" in section and "示例汽车金融" not in section


def test_the_demo_writes_an_audit_log_of_its_run_alone_and_keeps_the_newest(tmp_path, monkeypatch):
    """Without --audit, [audit] path or $POSTLOAN_AUDIT_PATH the demo's records go to a file of
    the run's own (the pipeline's default log grew by ≈ 45 MB a demo, never rotated); the five
    newest are kept."""
    import contextlib
    import io

    from kernel.audit import read_audit
    from kernel.codegen.cache import cache_dir
    from kernel.evaluation.demo import DEMO_AUDIT_KEPT, default_audit_folder
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(cache_dir()))          # (the compiled kernels: warm)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("POSTLOAN_AUDIT_PATH", raising=False)
    monkeypatch.delenv("POSTLOAN_CONFIG", raising=False)
    folder = default_audit_folder()
    assert str(folder).startswith(str(tmp_path))
    folder.mkdir(parents=True)
    for k in range(DEMO_AUDIT_KEPT + 2):                   # earlier runs' logs
        (folder / f"demo-20261101T0000{k:02d}.000000Z-1.log").write_bytes(b"")
    records = []
    for run in range(2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["demo", "--accounts", "300", "--seed", "2", "--days", "2", "--quiet"]) == 0
        logs = sorted(folder.glob("demo-*.log"))
        assert len(logs) == DEMO_AUDIT_KEPT                 # the newest kept, this run's the last
        assert f"Audit log: {logs[-1]} (" in out.getvalue()
        records.append([r.meta["rows"] for r in read_audit(logs[-1])])
    assert records[0] and records[0] == records[1]          # each log holds its run alone
    assert not (tmp_path / ".local" / "state" / "postloan" / "audit.log").exists()
