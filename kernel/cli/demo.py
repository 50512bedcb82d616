"""postloan demo: generate a book, decide every account, print what a post-loan manager reads."""
from __future__ import annotations

from . import args as a

HELP = "generate a book, decide and act on every account with the shipped bundle, print a summary"
DESCRIPTION = """Run the whole pipeline on the embedded defaults: generate a synthetic book
(100,000 accounts unless told otherwise), load the shipped bundle (rulesets/ and models/,
compiled into one Numba kernel; the first run compiles, later runs load the cache), decide
every account, plan collection actions, check them against the compliance policies, and
print the portfolio: overdue rates, DPD buckets, roll rates, early warnings, segments,
vehicle alerts, collection tiers, actions with their compliance outcomes and sample scripts,
litigation and disposal recommendations. Every figure is computed from this run.

example:
  postloan demo --accounts 20000 --seed 3 --now 2026-11-28T02:00:00Z"""

BUCKETS = ["M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7"]


def add_arguments(p) -> None:
    p.add_argument("--accounts", type=a.positive_int, default=100_000, help="accounts to generate (default 100000)")
    p.add_argument("--seed", type=a.non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--as-of", type=a.date, default=None, help="decision date YYYY-MM-DD (default 2026-11-28)")
    p.add_argument("--now", type=a.instant, default=None,
                   help="the moment actions are planned for, ISO 8601 (default: 10:00 Beijing time on the decision date)")
    p.add_argument("--bundle", type=a.existing_path, default=None, help="bundle directory (default: the shipped one)")
    p.add_argument("--audit", default=None, help="audit log file (default: the pipeline's, see docs/plugin-guide.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import datetime as dt
    import time

    import pyarrow as pa

    from .. import Kernel
    from ..pipeline import Pipeline
    from ..synth import DEFAULT_AS_OF, iter_book
    from .progress import bar, say

    as_of = args.as_of or DEFAULT_AS_OF
    now = args.now or dt.datetime.combine(as_of, dt.time(2, 0), dt.timezone.utc)  # 10:00 in Beijing
    timings = {}

    start = time.perf_counter()
    batches = []
    with bar(args.accounts, "generating book", unit="acct", disable=args.quiet) as progress:
        for batch in iter_book(args.accounts, args.seed, as_of):
            batches.append(batch)
            progress.update(batch.num_rows)
    book = pa.Table.from_batches(batches)
    timings["generate"] = time.perf_counter() - start

    start = time.perf_counter()
    say("loading the bundle (the first run compiles it with Numba; later runs read the cache)…", args.quiet)
    kernel = Kernel.load(args.bundle)
    pipeline = Pipeline(kernel, audit_path=args.audit)
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    decisions, actions = [], []
    with bar(book.num_rows, "deciding", unit="acct", disable=args.quiet) as progress:
        for batch in batches:
            result = pipeline.run(batch, as_of, now)
            decisions.append(result.decisions)
            actions.append(result.actions)
            progress.update(batch.num_rows)
    decisions = pa.concat_tables(decisions, promote_options="permissive")
    actions = pa.concat_tables(actions, promote_options="permissive")
    timings["decide"] = time.perf_counter() - start

    then = _bucket_30d_ago(kernel, book, as_of)
    print(report(book, decisions, actions, then, as_of, now, timings, kernel))
    return 0


def _bucket_30d_ago(kernel, book, as_of):
    """The dpd_bucket ruleset applied to dpd_30d_ago: the bucket boundaries stay in one place."""
    import pyarrow as pa

    if "dpd_bucket" not in kernel.nodes:
        return None
    shifted = pa.table({"dpd": book["dpd_30d_ago"]})
    return kernel.bundle.node("dpd_bucket").ruleset.evaluate(shifted, as_of=as_of)["dpd_bucket.bucket"]


# -- the report: plain text, every number computed from the tables ---------------------------

def _table(headers, rows, aligns=None) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    aligns = aligns or ["<"] + [">"] * (len(headers) - 1)
    out = []
    for k, r in enumerate(cells):
        out.append("  " + "  ".join(_pad(c, w, al) for c, w, al in zip(r, widths, aligns)))
        if k == 0:
            out.append("  " + "  ".join("─" * w for w in widths))
    return "\n".join(out)


def _width(text: str) -> int:
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, align: str) -> str:
    gap = " " * (width - _width(text))
    return text + gap if align == "<" else gap + text


def _pct(x: float) -> str:
    return "—" if x != x else f"{x:.1%}"


def _num(x: float) -> str:
    return "—" if x != x else f"{x:,.2f}"     # NaN: the mean of no accounts


def _money(x: float) -> str:
    return f"¥{x:,.0f}"


def _mask_name(script: str, name: str) -> str:
    """Scripts name the debtor; the demo shows them with the name masked (张** / J*** S****)."""
    masked = name[0] + "*" * (len(name) - 1) if name else name
    return script.replace(name, masked) if name else script


def report(book, decisions, actions, bucket_then, as_of, now, timings, kernel) -> str:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .. import portfolio as pf

    n = book.num_rows
    ov = pf.overview(book)
    lines = [f"postloan demo — {n:,} accounts, decided as of {as_of} (actions planned for {now:%Y-%m-%d %H:%M} UTC)",
             f"bundle {kernel.bundle_hash[:12]} · generate {timings['generate']:.1f} s · load {timings['load']:.1f} s · "
             f"decide + act {timings['decide']:.1f} s ({n / timings['decide']:,.0f} accounts/s)", ""]

    lines += ["Portfolio",
              f"  outstanding principal {_money(ov.outstanding_principal)} · overdue amount {_money(ov.overdue_amount)} · "
              f"penalty interest {_money(ov.penalty_interest)}",
              f"  overdue rate {_pct(ov.overdue_rate)} of accounts, {_pct(ov.overdue_balance_rate)} of balance · "
              f"30+ {_pct(ov.rate_30_plus)} · 90+ {_pct(ov.rate_90_plus)}", ""]

    bucket = decisions["dpd_bucket.bucket"]
    counts = pf.counts(bucket, BUCKETS)
    balance = pf.sums_by(bucket, book["outstanding_principal"], BUCKETS)
    overdue = pf.sums_by(bucket, book["overdue_amount"], BUCKETS)
    pd_mean = pf.sums_by(bucket, decisions["pd_model.probability"], BUCKETS)
    rows = [(b, f"{c:,}", _pct(s), _money(bal), _money(od), _pct(p / c if c else float("nan")))
            for (b, c, s), bal, od, p in zip(counts, balance, overdue, pd_mean)]
    lines += ["DPD buckets (dpd_bucket ruleset)",
              _table(["bucket", "accounts", "share", "outstanding", "overdue", "mean PD"], rows), ""]

    if bucket_then is not None:
        m = pf.roll_rates(bucket_then, bucket, BUCKETS)
        rows = []
        for i, b in enumerate(BUCKETS[:-1]):
            rows.append((f"{b} → {BUCKETS[i + 1]}", _pct(m[i, i + 1]), _pct(m[i, i]), _pct(m[i, 0]) if i else "—"))
        lines += ["Roll rates over 30 days (share of each bucket 30 days ago now one bucket worse / same / cured)",
                  _table(["roll", "forward", "stay", "cured"], rows), ""]

    lines += ["Early warning (pd_model score + signals)",
              _table(["level", "accounts", "share"], [(k, f"{c:,}", _pct(s)) for k, c, s in
                                                       pf.counts(decisions["early_warning.level"],
                                                                 ["NONE", "WATCH", "ALERT", "CRITICAL"])]), ""]

    late = book["dpd"].to_numpy() > 0
    lines += ["Overdue accounts by reason and segment",
              _table(["overdue reason", "accounts", "share"],
                     [(k, f"{c:,}", _pct(s)) for k, c, s in
                      pf.counts(decisions["risk_segment.overdue_reason"].filter(late))[:7]]),
              _table(["segment", "accounts", "share"],
                     [(k, f"{c:,}", _pct(s)) for k, c, s in
                      pf.counts(decisions["risk_segment.segment"].filter(late),
                                ["PRIME", "NEAR_PRIME", "SUBPRIME", "DEEP_SUBPRIME"])]), ""]

    high = np.asarray(decisions["risk_segment.high_risk"].to_numpy(zero_copy_only=False), bool)
    prof = pf.profile(book, high & late, ["bureau_score", "debt_to_income", "monthly_income", "dpd",
                                          "promises_broken_90d", "credit_inquiries_6m"])
    lines += [f"High-risk overdue profile ({int(np.sum(high & late)):,} accounts) vs the whole book",
              _table(["feature", "high-risk overdue", "book"], [(k, _num(a), _num(b)) for k, a, b in prof]), ""]

    alert_cols = [c for c in decisions.column_names if c.startswith("vehicle_alerts.") and
                  pa.types.is_boolean(decisions[c].type)]
    rows = [(c.split(".", 1)[1], f"{int(pc.sum(decisions[c]).as_py() or 0):,}") for c in alert_cols]
    lines += ["Vehicle alerts", _table(["alert", "accounts"], rows), ""]

    tier = decisions["collection_tier.tier"]
    rows = []
    for t, c, s in pf.counts(tier, ["NONE", "MILD", "MEDIUM", "SEVERE"]):
        sel = pc.equal(pc.cast(tier, "string"), t)
        ch = pf.counts(decisions["collection_tier.channel"].filter(sel))
        rows.append((t, f"{c:,}", _pct(s), ", ".join(f"{k} {v:,}" for k, v, _ in ch[:2])))
    lines += ["Collection tiers", _table(["tier", "accounts", "share", "channel"], rows), ""]

    act = actions.select(["action", "outcome", "reason_code"])
    rows = []
    for kind, c, _ in pf.counts(act["action"]):
        sel = pc.equal(pc.cast(act["action"], "string"), kind)
        outs = dict((k, v) for k, v, _ in pf.counts(act["outcome"].filter(sel)))
        rows.append((kind, f"{c:,}", f"{outs.get('KEEP', 0):,}", f"{outs.get('DEFER', 0):,}", f"{outs.get('BLOCK', 0):,}"))
    lines += [f"Actions planned ({actions.num_rows:,}) and their compliance outcome",
              _table(["action", "planned", "keep", "defer", "block"], rows)]
    reasons = [(k, f"{c:,}") for k, c, _ in pf.counts(act["reason_code"]) if k != "∅"][:6]
    if reasons:
        lines += ["  top reasons for deferring or blocking:", _table(["reason code", "actions"], reasons)]
    lines.append("")

    lines += ["Sample scripts (话术; the debtor's name masked here)"]
    lines += _sample_scripts(book, actions)
    lines.append("")

    elig = decisions["litigation.eligible"]
    missing = pf.counts(decisions["litigation.missing"].filter(pc.equal(pc.cast(decisions["collection_tier.tier"], "string"), "SEVERE")))
    lines += [f"Litigation: {int(pc.sum(elig).as_py() or 0):,} accounts meet every precondition; "
              "first unmet precondition among SEVERE-tier (31+ DPD) accounts:",
              _table(["missing", "accounts"], [(k, f"{c:,}") for k, c, _ in missing[:6]]), ""]

    lines += _disposal(book, decisions)
    return "\n".join(lines)


def _sample_scripts(book, actions) -> list[str]:
    import pyarrow.compute as pc

    out = []
    if "script" not in actions.column_names:
        return ["  (no scripts)"]
    ids = book["account_id"]
    names = dict(zip(ids.to_pylist(), book["name"].to_pylist()))
    for kind, lang in (("SMS", "zh"), ("PHONE", "zh"), ("FIELD_VISIT", "zh"), ("SMS", "en")):
        sel = pc.and_(pc.equal(pc.cast(actions["action"], "string"), kind),
                      pc.equal(pc.cast(actions["language"], "string"), lang))
        sel = pc.and_(sel, pc.is_valid(actions["script"]))
        rows = actions.filter(sel)
        if rows.num_rows:
            r = rows.slice(0, 1).to_pylist()[0]
            out.append(f"  [{kind} · {lang} · {r['script_id']}] "
                       + _mask_name(r["script"], names.get(r["account_id"], "")).replace("\n", " "))
    return out or ["  (no scripts)"]


def _disposal(book, decisions) -> list[str]:
    import numpy as np
    import pyarrow.compute as pc

    from .. import portfolio as pf

    need = pc.or_(decisions["disposal.repossess"], decisions["disposal.dispose"])
    lines = [f"Asset disposal: {int(pc.sum(decisions['disposal.repossess']).as_py() or 0):,} cars to repossess, "
             f"{int(pc.sum(decisions['disposal.dispose']).as_py() or 0):,} to dispose"]
    if "disposal_channel.channel" not in decisions.column_names or not pc.any(need).as_py():
        return lines
    rows_idx = np.flatnonzero(np.asarray(need.to_numpy(zero_copy_only=False), bool))
    net = decisions["disposal_channel.expected_net"].to_numpy(zero_copy_only=False)[rows_idx]
    order = rows_idx[np.argsort(-np.nan_to_num(net, nan=-np.inf))][:8]
    pick = lambda col, src=decisions: [src[col][int(i)].as_py() for i in order]  # noqa: E731
    rows = zip(pick("account_id", book), pick("brand", book), pick("model", book), pick("model_year", book),
               pick("valuation.price"), pick("disposal_channel.channel"), pick("disposal_channel.expected_net"),
               pick("disposal.shortfall"))
    lines += ["  top disposal recommendations (by expected net proceeds):",
              _table(["account", "brand", "model", "year", "valuation", "channel", "net proceeds", "shortfall"],
                     [(acc, b, m, y, _money(p or 0), ch or "—", _money(nt or 0), _money(sf or 0))
                      for acc, b, m, y, p, ch, nt, sf in rows])]
    by_channel = pf.counts(decisions["disposal_channel.channel"].filter(need))
    lines += ["  channels chosen: " + ", ".join(f"{k} {c:,}" for k, c, _ in by_channel)]
    return lines
