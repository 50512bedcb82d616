"""The portfolio report: one self-contained HTML file (inline CSS, SVG and a few lines of
script; nothing fetched), from the figures of :func:`kernel.evaluation.kpis.summarize`.

Sections, in the order a post-loan manager reads them: the overdue rate over time, the DPD
distribution over time, the roll-rate matrix (a heatmap, by count or balance), vintage curves
by months on book, the early-warning list, vehicle alerts, KPIs by arm with their intervals
and the differences against the control arm, disposal outcomes. Every chart is an ``<svg
class="chart">`` whose data marks carry ``class="mark"`` and a ``<title>`` (the value on
hover); the page holds no personal data (account ids only). The same figures give the same
bytes: nothing depends on the clock.
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

__all__ = ["render", "write_report"]

PALETTE = ("#2f6fb3", "#e07b28", "#3b9a57", "#c23b3b", "#7d5cb8", "#8c6d31", "#d45fa6", "#5f6b7a")
BUCKET_COLOURS = ("#9ecae1", "#fdd0a2", "#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#a63603", "#7f2704")
W, H = 640, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 16, 40


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(x, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _num(x, digits: int = 0) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


SYMBOLS = {"CNY": "¥", "USD": "$"}


def _money(x, currency: str) -> str:
    """An amount with its own currency's symbol (a currency without one: its code)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    sym = SYMBOLS.get(currency, f"{currency} ")
    return f"-{sym}{-x:,.0f}" if x < 0 else f"{sym}{x:,.0f}"


def _moneys(amounts: dict) -> str:
    """Amounts of several currencies, each in its own, never added: "¥1,234 · $56"."""
    return " · ".join(_money(v, c) for c, v in amounts.items()) or "—"


def _nice_max(v: float) -> float:
    if v <= 0 or math.isnan(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _axes(ymax: float, fmt, xlabels: Sequence[str], ylabel: str = "") -> list[str]:
    out = [f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>',
           f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}"/>']
    for k in range(5):
        v = ymax * k / 4
        y = H - PAD_B - (H - PAD_T - PAD_B) * k / 4
        out.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(fmt(v))}</text>')
    n = len(xlabels)
    step = max(1, math.ceil(n / 8))
    for i, label in enumerate(xlabels):
        if i % step and i != n - 1:
            continue
        x = _x(i, n)
        out.append(f'<text class="tick" x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{_e(label)}</text>')
    if ylabel:
        out.append(f'<text class="tick" x="{PAD_L + 6}" y="{PAD_T + 4}">{_e(ylabel)}</text>')
    return out


def _x(i: int, n: int) -> float:
    if n <= 1:
        return (PAD_L + W - PAD_R) / 2
    return PAD_L + (W - PAD_L - PAD_R) * i / (n - 1)


def _y(v: float, ymax: float) -> float:
    return H - PAD_B - (H - PAD_T - PAD_B) * (v / ymax if ymax else 0)


def _svg(name: str, body: list[str], legend: list[tuple[str, str]] | None = None, height: int = H,
         width: int = W) -> str:
    items = "".join(f'<span class="key"><i style="background:{c}"></i>{_e(t)}</span>' for t, c in legend or [])
    return (f'<svg class="chart" data-chart="{_e(name)}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{_e(name)}">{"".join(body)}</svg>' + (f'<div class="legend">{items}</div>' if items else ""))


def line_chart(name: str, xlabels: list[str], lines: list[tuple[str, list[float]]], fmt=_pct, ylabel="") -> str:
    values = [v for _, ys in lines for v in ys if v is not None and not math.isnan(v)]
    ymax = _nice_max(max(values) if values else 0)
    body = _axes(ymax, fmt, xlabels, ylabel)
    legend = []
    for k, (label, ys) in enumerate(lines):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(_x(i, len(xlabels)), _y(v, ymax), v, xlabels[i]) for i, v in enumerate(ys)
               if v is not None and not math.isnan(v)]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
            body.append(f'<polyline class="line" points="{path}" stroke="{colour}"/>')
        for x, y, v, xl in pts:
            body.append(f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                        f'<title>{_e(label)} · {_e(xl)}: {_e(fmt(v))}</title></circle>')
        legend.append((label, colour))
    return _svg(name, body, legend)


def stacked_bars(name: str, xlabels: list[str], stacks: list[tuple[str, list[float], str]], fmt=_pct) -> str:
    totals = [sum(s[1][i] for s in stacks) for i in range(len(xlabels))]
    ymax = _nice_max(max(totals) if totals else 0)
    body = _axes(ymax, fmt, xlabels)
    n = len(xlabels)
    width = max(4.0, min(40.0, (W - PAD_L - PAD_R) / max(n, 1) * 0.7))
    for i, label in enumerate(xlabels):
        base = 0.0
        for stack, values, colour in stacks:
            v = values[i]
            if v <= 0:
                continue
            y0, y1 = _y(base, ymax), _y(base + v, ymax)
            body.append(f'<rect class="mark" x="{_x(i, n) - width / 2:.1f}" y="{y1:.1f}" width="{width:.1f}" '
                        f'height="{max(y0 - y1, 0.5):.1f}" fill="{colour}"><title>{_e(label)} · {_e(stack)}: '
                        f'{_e(fmt(v))}</title></rect>')
            base += v
    return _svg(name, body, [(s, c) for s, _, c in stacks])


def bar_chart(name: str, labels: list[str], values: list[float], fmt=_num, colour: str = PALETTE[0]) -> str:
    ymax = _nice_max(max(values) if values else 0)
    body = _axes(ymax, fmt, labels)
    n = len(labels)
    width = max(6.0, min(60.0, (W - PAD_L - PAD_R) / max(n, 1) * 0.6))
    for i, (label, v) in enumerate(zip(labels, values)):
        y = _y(v, ymax)
        body.append(f'<rect class="mark" x="{_x(i, n) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                    f'height="{max(H - PAD_B - y, 0.5):.1f}" fill="{colour}"><title>{_e(label)}: {_e(fmt(v))}</title></rect>')
    return _svg(name, body)


def heatmap(name: str, labels: list[str], matrix: list[list[float]], hidden: bool = False) -> str:
    """Rows: bucket 30 days ago; columns: bucket now; cells: the row's share."""
    k = len(labels)
    cell = 44
    left, top = 60, 34
    size_w, size_h = left + cell * k + 10, top + cell * k + 10
    body = [f'<text class="tick" x="{left + cell * k / 2}" y="12" text-anchor="middle">bucket now →</text>',
            f'<text class="tick" x="6" y="{top - 6}">30 days ago ↓</text>']
    for j, label in enumerate(labels):
        body.append(f'<text class="tick" x="{left + cell * j + cell / 2}" y="{top - 6}" text-anchor="middle">{_e(label)}</text>')
    for i, label in enumerate(labels):
        row = matrix[i]
        total = sum(row)
        body.append(f'<text class="tick" x="{left - 8}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end">{_e(label)}</text>')
        for j in range(k):
            share = row[j] / total if total else float("nan")
            fill = "#f4f4f4" if math.isnan(share) else _heat(share, i, j)
            text = "" if math.isnan(share) else f"{100 * share:.0f}"
            colour = "#fff" if not math.isnan(share) and share > 0.55 else "#222"
            body.append(f'<rect class="{"mark" if total else "empty"}" x="{left + cell * j}" y="{top + cell * i}" '
                        f'width="{cell - 2}" height="{cell - 2}" fill="{fill}"><title>{_e(label)} → {_e(labels[j])}: '
                        f'{_e(_pct(share))} of {_e(_num(total))}</title></rect>'
                        f'<text class="cell" x="{left + cell * j + cell / 2 - 1}" y="{top + cell * i + cell / 2 + 4}" '
                        f'text-anchor="middle" fill="{colour}">{text}</text>')
    style = ' style="display:none"' if hidden else ""
    return (f'<svg class="chart" data-chart="{_e(name)}" viewBox="0 0 {size_w} {size_h}" role="img" '
            f'aria-label="{_e(name)}"{style}>{"".join(body)}</svg>')


def _heat(share: float, i: int, j: int) -> str:
    """Blue on the diagonal (stayed), red above it (rolled forward), green below (improved)."""
    base = (47, 111, 179) if i == j else (194, 59, 59) if j > i else (59, 154, 87)
    a = 0.12 + 0.88 * min(max(share, 0.0), 1.0)
    r, g, b = (round(255 - (255 - c) * a) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def forest(name: str, rows: list[tuple[str, float, float, float]], fmt) -> str:
    """Differences against the control arm with their intervals, one row each, on one axis
    through zero (each row's own scale would mislead: the rows share a unit)."""
    height = 30 + 28 * len(rows)
    width = 900
    finite = [abs(v) for _, d, lo, hi in rows for v in (d, lo, hi) if not math.isnan(v)]
    span = _nice_max(max(finite) if finite else 0)
    left, right = 320, width - 30
    zero = (left + right) / 2

    def x(v):
        return zero + (right - left) / 2 * v / span

    body = [f'<line class="axis" x1="{zero}" y1="10" x2="{zero}" y2="{height - 14}"/>',
            f'<text class="tick" x="{left}" y="{height - 2}" text-anchor="middle">{_e(fmt(-span))}</text>',
            f'<text class="tick" x="{right}" y="{height - 2}" text-anchor="middle">{_e(fmt(span))}</text>']
    for k, (label, d, lo, hi) in enumerate(rows):
        y = 26 + 28 * k
        body.append(f'<text class="tick" x="{left - 10}" y="{y + 4}" text-anchor="end">{_e(label)}</text>')
        if math.isnan(d):
            continue
        if not math.isnan(lo) and not math.isnan(hi):
            body.append(f'<line class="ci" x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}"/>')
        significant = not math.isnan(lo) and (lo > 0 or hi < 0)
        body.append(f'<circle class="mark" cx="{x(d):.1f}" cy="{y}" r="5" fill="{PALETTE[3] if significant else PALETTE[0]}">'
                    f'<title>{_e(label)}: {_e(fmt(d))} [{_e(fmt(lo))}, {_e(fmt(hi))}]</title></circle>')
    return _svg(name, body, height=height, width=width)


# --------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","PingFang SC",sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d2f45;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c9d5e3}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:18px;padding:18px 28px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:14px 18px}
section.wide{grid-column:1/-1}h2{font-size:16px;margin:0 0 4px}p.how{color:#5b6776;margin:0 0 10px;font-size:13px}
svg.chart{width:100%;height:auto;display:block}.axis{stroke:#8795a5}.grid{stroke:#e8ecf1}.tick{font-size:11px;fill:#5b6776}
.line{fill:none;stroke-width:2}.ci{stroke:#5b6776;stroke-width:2}.cell{font-size:11px;pointer-events:none}
.legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;color:#3b4654;margin-top:4px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;width:100%;font-size:12.5px}th,td{padding:4px 6px;border-bottom:1px solid #eef1f5;text-align:right}
th{color:#5b6776;font-weight:600;background:#fafbfc}td:first-child,th:first-child{text-align:left}
.sig{color:#c23b3b;font-weight:600}.muted{color:#8795a5}.tiles{display:flex;gap:14px;flex-wrap:wrap}
.tile{background:#f5f7fa;border-radius:6px;padding:8px 12px;min-width:130px}.tile b{display:block;font-size:20px}
button{font:inherit;border:1px solid #c9d2dc;background:#fff;border-radius:4px;padding:2px 10px;cursor:pointer}button.on{background:#1d2f45;color:#fff}
.scroll{max-height:360px;overflow:auto}section.wide svg.chart{max-width:900px}#disposal svg.chart{max-width:620px}.tile b.small{font-size:15px}
"""

SCRIPT = """
document.querySelectorAll('[data-toggle]').forEach(function (group) {
  var buttons = group.querySelectorAll('button');
  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      buttons.forEach(function (o) { o.classList.toggle('on', o === b); });
      document.querySelectorAll('[data-view="' + group.dataset.toggle + '"]').forEach(function (v) {
        v.style.display = v.dataset.name === b.dataset.show ? '' : 'none';
      });
    });
  });
});
"""


def _section(title: str, how: str, body: str, wide: bool = False, ident: str = "") -> str:
    return (f'<section{" class=wide" if wide else ""} id="{_e(ident)}"><h2>{_e(title)}</h2>'
            f'<p class="how">{_e(how)}</p>{body}</section>')


def _table(headers: list[str], rows: list[list[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt_for(kind: str, kpi: str, currency: str | None = None):
    if kind in ("proportion",) or kpi in ("roll_forward_balance", "recovery_rate"):
        return _pct
    if kind == "rate":
        return lambda v: _num(v, 1)
    if kpi == "cost_per_collected":
        return lambda v: _num(v, 3)
    return lambda v: _money(v, currency or "")


def render(figures: dict, title: str = "postloan portfolio report") -> str:
    """The report's HTML for ``figures`` (:func:`kernel.evaluation.kpis.summarize`)."""
    s = figures["series"]
    dates = [d[5:] for d in s["dates"]]
    buckets = figures["buckets"]
    sections = []
    # -- overview tiles -------------------------------------------------------------------------
    last = s["overdue"][-1] if s["overdue"] else None
    tiles = ""
    if last:
        accounts, overdue = last
        # each currency on its own: a rate by balance and the outstanding per currency
        balances = {c: v[-1] for c, v in s["overdue_balance"].items() if v and v[-1]}
        tiles = "".join(f'<div class="tile"><span class="muted">{_e(k)}</span><b>{_e(v)}</b></div>' for k, v in (
            ("accounts", _num(accounts)), ("overdue (count)", _pct(overdue / accounts if accounts else math.nan)),
            *((f"overdue (balance, {c})", _pct(b[1] / b[0] if b[0] else math.nan)) for c, b in balances.items()),
            ("runs", _num(len(dates)))))
        tiles += (f'<div class="tile"><span class="muted">outstanding</span><b class="small">'
                  f'{_e(_moneys({c: b[0] for c, b in balances.items()}))}</b></div>')
        tiles += (f'<div class="tile"><span class="muted">arms</span><b class="small">'
                  f'{_e(", ".join(figures["arms"]) or "—")}</b></div>')
    sections.append(_section("Portfolio on " + figures["end"], "The latest run. Every figure below is computed from "
                             "the runs' snapshots and actions and the ledger's events; nothing here names a person.",
                             f'<div class="tiles">{tiles}</div>', wide=True, ident="overview"))
    # -- overdue rate over time ---------------------------------------------------------------
    count_rate = [o[1] / o[0] if o and o[0] else math.nan for o in s["overdue"]]
    balance_rates = [(f"by balance ({c})", [o[1] / o[0] if o and o[0] else math.nan for o in v])
                     for c, v in s["overdue_balance"].items()]
    sections.append(_section("Overdue rate over time", "Share of accounts with DPD ≥ 1 and their share of the "
                             "outstanding principal (each currency on its own), per run.",
                             line_chart("overdue-rate", dates, [("by count", count_rate), *balance_rates]),
                             ident="overdue"))
    # -- DPD distribution over time ----------------------------------------------------------
    stacks = []
    for k, b in enumerate(buckets[1:], start=1):
        shares = [(a[k] / sum(a) if a and sum(a) else 0.0) for a in s["accounts"]]
        stacks.append((b, shares, BUCKET_COLOURS[k]))
    sections.append(_section("DPD distribution over time", "Share of accounts in each overdue bucket (M1 = 1–30 DPD "
                             "… M7 = 181+), per run; M0, current, is the rest.",
                             stacked_bars("dpd-distribution", dates, stacks), ident="dpd"))
    # -- roll rates ---------------------------------------------------------------------------
    balances = figures["rolls"]["balance"]
    toggle = ('<div data-toggle="rolls"><button class="on" data-show="count">by count</button> ' +
              " ".join(f'<button data-show="balance-{_e(c)}">by balance ({_e(c)})</button>' for c in balances) +
              '</div>')
    maps = (f'<div data-view="rolls" data-name="count">{heatmap("roll-rates-count", buckets, figures["rolls"]["count"])}</div>'
            + "".join(f'<div data-view="rolls" data-name="balance-{_e(c)}" style="display:none">'
                      f'{heatmap(f"roll-rates-balance-{c}", buckets, m)}</div>' for c, m in balances.items()))
    sections.append(_section("Roll rates over 30 days", f"Accounts on {figures['end']} by their bucket 30 days before "
                             "(rows) and now (columns); each row adds up to 100 %. Above the diagonal: rolled forward. "
                             "By balance: each currency's principal on its own.",
                             toggle + maps, ident="rolls"))
    # -- vintage curves -----------------------------------------------------------------------
    sections.append(_section("Vintage curves", "Share of accounts 30+ DPD by months on book, one line per origination "
                             "year (each point: the year's accounts at that age, over the runs).",
                             _vintage_chart(figures["vintage"]), ident="vintage"))
    # -- early warning ------------------------------------------------------------------------
    rows = [[r["account_id"], r["ew_level"], _num(r["ew_score"], 1), _pct(r["pd"]), r["bucket"] or "—",
             _num(r["dpd"]), r["segment"] or "—", r["overdue_reason"] or "—", r["arm"]]
            for r in figures["early_warning"]]
    sections.append(_section("Early-warning list", f"The {len(rows)} accounts with the highest warning level and score "
                             f"on {figures['end']} (pd_model and the early_warning ruleset).",
                             '<div class="scroll">' + _table(["account", "level", "score", "PD", "bucket", "DPD",
                                                             "segment", "reason", "arm"], rows) + "</div>",
                             ident="early-warning"))
    # -- vehicle alerts -----------------------------------------------------------------------
    alert_names = ["insurance expiring", "insurance lapsed", "GPS offline", "geofence exit", "violations",
                   "offline then exit"]
    latest = s["alerts"][-1] if s["alerts"] else [0.0] * len(alert_names)
    rows = [[r["account_id"], r["bucket"] or "—", _num(r["dpd"]), _money(r["outstanding_principal"], r["currency"]),
             ", ".join(n for n, key in zip(alert_names, ("insurance_expiring", "insurance_lapsed", "gps_offline",
                                                         "geofence_exit", "violations", "gps_offline_then_exit"))
                       if r.get(key))] for r in figures["vehicle_alerts"]]
    sections.append(_section("Vehicle alerts", f"Cars with each alert on {figures['end']} (the vehicle_alerts ruleset "
                             "and the ledger's GPS pattern), then the accounts with the most alerts.",
                             bar_chart("vehicle-alerts", alert_names, latest, colour=PALETTE[1]) +
                             '<div class="scroll">' + _table(["account", "bucket", "DPD", "outstanding", "alerts"], rows)
                             + "</div>", ident="alerts"))
    # -- KPIs by arm --------------------------------------------------------------------------
    sections.append(_kpi_section(figures))
    # -- disposal -----------------------------------------------------------------------------
    sections.append(_disposal_section(figures))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{_e(title)}</h1><p>runs {_e(s['dates'][0] if s['dates'] else '—')}"
            f" – {_e(figures['end'])} · arms {_e(', '.join(figures['arms']) or 'none')} · control {_e(figures['control'] or '—')}"
            f" · {int(figures['confidence'] * 100)} % intervals</p></header><main>{''.join(sections)}</main>"
            f"<script>{SCRIPT}</script></body></html>\n")


def _vintage_chart(vintage: list[dict]) -> str:
    by_year: dict[str, dict[int, list[int]]] = {}
    for r in vintage:
        year = r["month"][:4]
        cell = by_year.setdefault(year, {}).setdefault(r["mob"], [0, 0])
        cell[0] += r["accounts"]
        cell[1] += r["thirty_plus"]
    mobs = sorted({m for y in by_year.values() for m in y})
    if not mobs:
        return line_chart("vintage", [], [])
    labels = [str(m) for m in range(mobs[0], mobs[-1] + 1)]
    lines = []
    for year in sorted(by_year)[-6:]:
        cells = by_year[year]
        lines.append((year, [cells[m][1] / cells[m][0] if m in cells and cells[m][0] else math.nan
                             for m in range(mobs[0], mobs[-1] + 1)]))
    return line_chart("vintage", labels, lines, ylabel="30+ DPD")


def _kpi_section(figures: dict) -> str:
    arms = figures["arms"]
    control = figures["control"]
    rows, forest_rows = [], []
    for spec in figures["kpis"].values():
        fmt = _fmt_for(spec["kind"], spec["kpi"], spec["currency"])
        cells = [spec["label"]]
        for arm in arms:
            v = spec["by_arm"].get(arm)
            if v is None:
                cells.append('<span class="muted">—</span>')
                continue
            ci = "" if math.isnan(v["low"]) else f' <span class="muted">[{_e(fmt(v["low"]))}, {_e(fmt(v["high"]))}]</span>'
            cells.append(f'{_e(fmt(v["value"]))}{ci} <span class="muted">n={_e(_num(v["n"]))}</span>')
        for arm in arms:
            if arm == control:
                continue
            d = (spec["by_arm"].get(arm) or {}).get("vs_control")
            if not d:
                cells.append('<span class="muted">—</span>')
                continue
            sig = not math.isnan(d["p"]) and d["p"] < 1 - figures["confidence"]
            cells.append(f'<span class="{"sig" if sig else ""}">{_e(fmt(d["value"]))}</span> '
                         f'<span class="muted">[{_e(fmt(d["low"]))}, {_e(fmt(d["high"]))}] p={_e(_p(d["p"]))}</span>')
            if spec["kind"] == "proportion":
                forest_rows.append((f"{spec['label']} · {arm}", d["value"], d["low"], d["high"]))
        rows.append(cells)
    headers = ["KPI"] + list(arms) + [f"{a} − {control}" for a in arms if a != control]
    body = _table(headers, [[_e(rows[i][0])] + rows[i][1:] for i in range(len(rows))], raw=True)
    chart = forest("kpi-differences", forest_rows, lambda v: _pct(v, 1)) if forest_rows else \
        '<p class="muted">One arm only: no differences to show.</p>'
    st = figures.get("settings", {})
    windows = (f" Windows: an event counts for the decision before it if at most {_num(st.get('attribution_days', 7), 0)} "
               f"days old; a promise within {_num(st.get('promise_after_rpc_hours', 24), 0)} h of a right-party "
               f"contact; kept by its date plus {st.get('promise_grace_days', 1)} day(s); a cure within "
               f"{st.get('cure_days', 30)} days of entering collections (entries whose window has ended).") if st else ""
    how = (f"Each KPI per arm with its {int(figures['confidence'] * 100)} % interval, and each arm against the control "
           f"arm ({control or '—'}): the difference, its interval and the test's p-value (red: significant). "
           "Rates: Wilson intervals, Newcombe differences, two-proportion z; amounts: Welch t; ratios: delta method; "
           "complaints: exact Poisson. The chart: the differences of the rates, on one axis through zero." + windows)
    return _section("KPIs by arm", how, '<div class="scroll">' + body + "</div>" + chart, wide=True, ident="kpis")


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _disposal_section(figures: dict) -> str:
    counts = figures["counts"]
    currencies = figures.get("currencies") or ["CNY"]
    # per channel: cars of every currency; amounts per currency, each with its own symbol
    recommended: dict[str, dict[str, list]] = {}
    for k, v in counts.items():
        head, _, channel = k.partition(":")
        if head.startswith("recommended."):
            recommended.setdefault(channel, {})[head.split(".", 1)[1]] = v
    order = sorted(recommended, key=lambda ch: (-sum(v[0] for v in recommended[ch].values()), ch))
    labels = order
    chart = bar_chart("disposal-channels", labels, [sum(v[0] for v in recommended[ch].values()) for ch in order],
                      colour=PALETTE[2]) if recommended else bar_chart("disposal-channels", ["none"], [0.0])
    rows = [[ch, _num(sum(v[0] for v in recommended[ch].values())),
             _moneys({c: recommended[ch][c][1] for c in currencies if c in recommended[ch]}),
             _moneys({c: recommended[ch][c][2] for c in currencies if c in recommended[ch]})] for ch in order]
    outcome = [["repossessed", "", _num(counts.get("disposal:repossessed", [0])[0]), "", ""],
               ["redeemed", "", _num(counts.get("disposal:redeemed", [0])[0]), "", ""]]
    for c in currencies:
        sold = counts.get(f"sold.{c}:cars")
        if sold:
            outcome.append(["sold", c, _num(sold[0]), _money(sold[1], c), _pct(sold[1] / sold[2] if sold[2] else math.nan)])
    if len(outcome) == 2:
        outcome.append(["sold", "", _num(0), "", ""])
    return _section("Disposal outcomes", f"Cars the disposal ruleset sends to repossession or sale on {figures['end']}, "
                    "by the channel with the highest expected net proceeds; then what the ledger records: cars "
                    "repossessed, redeemed and sold, and the sales against the exposure at the last decision. "
                    "Amounts are each in their account's currency, never added across currencies.",
                    chart + _table(["channel recommended", "cars", "expected net", "valuation"], rows) +
                    _table(["outcome (ledger events)", "currency", "cars", "sale amounts", "recovery"], outcome),
                    wide=True, ident="disposal")


def write_report(figures: dict, path, title: str = "postloan portfolio report") -> int:
    """Write the report to ``path`` (beside it, then renamed into place); returns its bytes."""
    import os
    import tempfile
    data = render(figures, title).encode("utf-8")
    path = os.fspath(path)
    from ..files import STDOUT, is_special_output
    if path == STDOUT or is_special_output(path):
        import sys
        if path == STDOUT:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            with open(path, "wb") as f:
                f.write(data)
        return len(data)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".report-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(data)
