"""postloan report: one self-contained HTML file, checked in a real headless browser."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from kernel.cli import main

CHARTS = ("overdue-rate", "dpd-distribution", "roll-rates-count", "roll-rates-balance-CNY", "roll-rates-balance-USD",
          "vintage", "vehicle-alerts", "kpi-differences", "disposal-channels")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-gpu"]


@pytest.fixture(scope="module")
def report(simulated_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", "--store", simulated_store, "--out", str(out)]) == 0
    return out


def test_the_report_is_one_file_that_fetches_nothing(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and len(text) > 20_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)       # no CDN, no remote anything
    assert "@import" not in text and "url(" not in text and "<link" not in text
    for name in CHARTS:
        assert f'data-chart="{name}"' in text, name
    for heading in ("Overdue rate over time", "DPD distribution over time", "Roll rates over 30 days",
                    "Vintage curves", "Early-warning list", "Vehicle alerts", "KPIs by arm", "Disposal outcomes"):
        assert heading in text, heading
    assert "CHALLENGER − CHAMPION" in text
    assert oct(report.stat().st_mode & 0o077) != oct(0)                        # readable like any file written here


def test_the_same_data_gives_the_same_bytes(simulated_store, report, tmp_path):
    again = tmp_path / "again.html"
    assert main(["report", "--store", simulated_store, "--out", str(again)]) == 0
    assert again.read_bytes() == report.read_bytes()


def test_bad_sources_are_named(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["report", "--store", missing, "--out", str(tmp_path / "r.html")]) == 2
    assert "no such ledger" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()
    from kernel.ledger import Ledger
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    Ledger(empty).close()
    assert main(["report", "--store", empty, "--out", str(tmp_path / "r.html")]) == 2
    assert "holds no decision runs to report on" in capsys.readouterr().err
    (tmp_path / "ds").mkdir()
    assert main(["report", "--in", str(tmp_path / "ds"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no snapshots/ folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["report", "--store", empty, "--in", str(tmp_path / "ds"), "--out", str(tmp_path / "r.html")])
    assert e.value.code == 2 and "not allowed with argument --store" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture()
def browser():
    path = _chromium()
    if path is None:
        pytest.skip("no chromium on this machine (apt-get install -y chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (it is in the test extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_the_report_renders_in_a_browser_with_data_in_every_chart(report, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    charts = page.evaluate("""() => Array.from(document.querySelectorAll('svg.chart')).map(s => ({
        name: s.dataset.chart, marks: s.querySelectorAll('.mark').length,
        width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height}))""")
    by_name = {c["name"]: c for c in charts}
    assert set(by_name) == set(CHARTS)
    for c in charts:
        assert c["marks"] > 0, c                                      # every chart has data
        if not c["name"].startswith("roll-rates-balance"):            # (shown by its button)
            assert c["width"] > 300 and c["height"] > 100, c          # and is drawn
    assert by_name["roll-rates-count"]["marks"] >= 8                  # a row per bucket seen 30 days ago
    assert by_name["dpd-distribution"]["marks"] >= 6                  # a bar per run and overdue bucket
    rows = page.evaluate("() => document.querySelectorAll('#early-warning tbody tr').length")
    assert rows > 0
    kpis = page.evaluate("() => document.querySelectorAll('#kpis tbody tr').length")
    assert kpis >= 10
    # the book holds CNY and USD accounts: every money KPI has a row per currency, each amount
    # with its own symbol, and no row adds the two
    labels = page.evaluate("() => Array.from(document.querySelectorAll('#kpis tbody tr td:first-child')).map(c => c.textContent)")
    for name in ("amount collected", "amount collected per account"):
        assert f"{name} (CNY)" in labels and f"{name} (USD)" in labels and name not in labels
    cells = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('#kpis tbody tr')).map(
        r => [r.cells[0].textContent, Array.from(r.cells).slice(1).map(c => c.textContent).join(' | ')]))""")
    usd, cny = cells["amount collected (USD)"], cells["amount collected (CNY)"]
    assert "$" in usd and "¥" not in usd and "¥" in cny and "$" not in cny, (usd, cny)
    outstanding = page.evaluate("() => Array.from(document.querySelectorAll('.tile')).find(t => t.textContent.startsWith('outstanding')).textContent")
    assert re.fullmatch(r"outstanding¥[\d,]+ · \$[\d,]+", outstanding), outstanding
    page.click("button[data-show=balance-USD]")
    assert page.evaluate("() => document.querySelector('svg[data-chart=roll-rates-balance-USD]').getBoundingClientRect().width") > 300
    assert page.evaluate("() => getComputedStyle(document.querySelector('[data-name=count]')).display") == "none"
    assert page.evaluate("() => getComputedStyle(document.querySelector('[data-name=balance-CNY]')).display") == "none"
    assert errors == []
    assert requests == [report.as_uri()]                              # nothing fetched besides the file
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 50_000
    if os.environ.get("POSTLOAN_UPDATE_SCREENSHOT") == "1":          # docs/report.png
        page.click("button[data-show=count]")
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.screenshot(path=str(Path(__file__).parents[2] / "docs" / "report.png"), full_page=True)
