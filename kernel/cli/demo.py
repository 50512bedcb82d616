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

The book comes with the event history behind it (payments, contact attempts, promises,
disputes, GPS pings…). The demo ingests it into a case ledger (a temporary SQLite file, or
--store), decides every account from book ⋈ state (docs/ledger.md), shows what the state held
back, and asks the contact-time gate what a dialer would ask before it dials.

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
    p.add_argument("--store", default=None, metavar="URL",
                   help="the case ledger to ingest the events into and decide from (default: a temporary SQLite "
                        "ledger, removed afterwards)")
    p.add_argument("--days", type=a.positive_int, default=7,
                   help="days the HTML report covers: the decision day, then simulated days (default 7)")
    p.add_argument("--report", type=a.output_file, default=None, metavar="FILE",
                   help="the HTML report (default ~/.local/state/postloan/report.html)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import tempfile
    import time

    import pyarrow as pa

    from .. import Kernel
    from ..ledger import Ledger
    from ..pipeline import Pipeline
    from ..synth import DEFAULT_AS_OF, iter_book_and_events, snapshot_at
    from .progress import bar, say

    as_of = args.as_of or DEFAULT_AS_OF
    snapshot = snapshot_at(as_of)                     # 10:00 in Beijing: the book is a snapshot of then
    now = args.now or snapshot
    timings = {}

    with tempfile.TemporaryDirectory(prefix="postloan-demo-") as tmp:
        ledger = Ledger(args.store or f"sqlite:///{tmp}/ledger.db")
        start = time.perf_counter()
        batches, ingested, events_read = [], [], 0
        with bar(args.accounts, "generating book and events", unit="acct", disable=args.quiet) as progress:
            for batch, events in iter_book_and_events(args.accounts, args.seed, as_of):
                batches.append(batch)
                ingested.append((events, ledger.ingest(events, now=snapshot)))
                events_read += events.num_rows
                progress.update(batch.num_rows)
        book = pa.Table.from_batches(batches)
        timings["generate"] = time.perf_counter() - start

        start = time.perf_counter()
        say("loading the bundle (the first run compiles it with Numba; later runs read the cache)…", args.quiet)
        kernel = Kernel.load(args.bundle)
        from ..evaluation.demo import demo_config
        pipeline = Pipeline(kernel, audit_path=args.audit, ledger=ledger, config=demo_config(days=args.days))
        timings["load"] = time.perf_counter() - start

        start = time.perf_counter()
        decisions, actions, held, decided = [], [], _Held(), []
        with bar(book.num_rows, "deciding from book ⋈ state", unit="acct", disable=args.quiet) as progress:
            for batch in batches:
                joined = pipeline.with_state(batch, as_of, now)
                result = pipeline.act(joined, kernel.decide(joined, as_of), as_of, now)
                held.count(joined, result.decisions)
                decided.append((joined, result))
                decisions.append(result.decisions)
                actions.append(result.actions)
                progress.update(batch.num_rows)
        decisions = pa.concat_tables(decisions, promote_options="permissive")
        actions = pa.concat_tables(actions, promote_options="permissive")
        timings["decide"] = time.perf_counter() - start

        then = _bucket_30d_ago(kernel, book, as_of)
        text = report(book, decisions, actions, then, as_of, now, timings, kernel)
        text += "\n" + "\n".join(_ledger_report(ledger, pipeline, book, ingested, events_read, held, now,
                                                 timings["generate"]))
        text += "\n\n" + _html_report(args, pipeline, book, decided, as_of, now)
        ledger.close()
    print(text)
    return 0


def _html_report(args, pipeline, book, decided, as_of, now) -> str:
    """The HTML report (kernel.evaluation): this run and args.days − 1 simulated days."""
    import time

    from ..evaluation.demo import DEMO_EFFECT, default_report_path, simulate_and_report
    from .progress import say
    start = time.perf_counter()
    say(f"simulating {args.days - 1} more days for the HTML report…", args.quiet)
    path, figures = simulate_and_report(pipeline, book, decided, as_of, now, args.days,
                                        args.report or default_report_path(), args.seed)
    promise = figures["kpis"]["promise_rate"]["by_arm"]
    found = ""
    if "CHALLENGER" in promise and promise["CHALLENGER"].get("vs_control"):
        d = promise["CHALLENGER"]["vs_control"]
        found = (f"; the simulated debtors promise {DEMO_EFFECT['CHALLENGER']['promise']:.0%} more often after a "
                 f"right-party contact in the CHALLENGER arm, measured {d['value']:+.1%} [{d['low']:+.1%}, "
                 f"{d['high']:+.1%}]")
    return (f"Portfolio report: {path} ({len(figures['series']['dates'])} runs: {as_of} and "
            f"{args.days - 1} simulated days, {time.perf_counter() - start:.1f} s{found})")


class _Held:
    """What the ledger's state held back, over the accounts a tier would act on."""

    def __init__(self):
        self.promised = self.disputed = self.visited = 0

    def count(self, joined, decisions) -> None:
        import numpy as np
        import pyarrow.compute as pc
        acting = np.asarray(pc.not_equal(decisions["collection_tier.tier"].cast("string"), "NONE")
                            .to_numpy(zero_copy_only=False), bool)
        disputed = joined["open_disputes"].to_numpy() > 0
        promised = np.asarray(joined["promise_open"].to_numpy(zero_copy_only=False), bool) & ~disputed
        visit = np.asarray(pc.equal(decisions["collection_tier.channel"].cast("string"), "FIELD_VISIT")
                           .to_numpy(zero_copy_only=False), bool)
        last = joined["last_field_visit_at"].cast("int64").fill_null(np.iinfo(np.int64).min).to_numpy()
        now_us = joined["state_at"][0].value if joined.num_rows else 0
        recent = last > now_us - 7 * 86_400_000_000
        self.promised += int((acting & promised).sum())
        self.disputed += int((acting & disputed).sum())
        self.visited += int((visit & recent & ~disputed & ~promised).sum())


def _ledger_report(ledger, pipeline, book, ingested, events_read, held, now, seconds) -> list[str]:
    """The ledger's part of the report: what went in, what the state held back, the gate."""
    import collections

    import pyarrow.compute as pc

    accepted = sum(r.accepted for _, r in ingested)
    duplicate = sum(r.duplicate for _, r in ingested)
    rejected = sum(len(r.rejected) for _, r in ingested)
    kinds = collections.Counter()
    for events, _ in ingested:
        for item in pc.value_counts(events["kind"].cast("string")).to_pylist():
            kinds[item["values"]] += item["counts"]
    lines = [f"Case ledger ({ledger.url.split('?')[0]}): {events_read:,} events ingested with the book "
             f"({accepted:,} stored or reduced, {duplicate:,} already there, {rejected:,} rejected)",
             "  " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common(8)),
             "  GPS pings are reduced to each car's last ping and offline periods, never stored as rows",
             "  decisions read book ⋈ state; what the state held back among accounts a tier acts on:",
             _table(["hold", "accounts", "what the strategy planned"], [
                 ("open promise to pay, not yet due", f"{held.promised:,}", "an SMS reminder only"),
                 ("open dispute", f"{held.disputed:,}", "nothing"),
                 ("field visit in the last 7 days", f"{held.visited:,}", "no field visit today")]), ""]
    lines += ["The contact-time gate (CheckContact: what a dialer asks before it dials; KEEP reserves the attempt)"]
    lines += _gate_story(ledger, pipeline, book, now)
    return lines


def _gate_story(ledger, pipeline, book, now) -> list[str]:
    """Two dialers' questions, answered by the gate from the ledger's state, with the outcome
    reported in between: China's cap on connected calls, Regulation F's seven days."""
    import datetime as dt
    import zoneinfo

    import pyarrow as pa
    import pyarrow.compute as pc

    out = []
    # (country, zone, calls connected today, questions asked); the US debtor has not been
    # reached for a week, so the first call may go ahead
    us_zone = next((z for z in ("America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York")
                    if 8 <= now.astimezone(zoneinfo.ZoneInfo(z)).hour < 20), "America/Los_Angeles")
    cases = (("CN", "Asia/Shanghai", 2, 3), ("US", us_zone, 0, 2))
    for country, zone, connected, asks in cases:
        sel = pc.and_(pc.and_(pc.equal(book["country"].cast("string"), country), pc.equal(book["time_zone"], zone)),
                      pc.and_(pc.equal(book["connected_calls_today"], connected),
                              pc.greater(book["dpd"], 0 if country == "CN" else -1)))
        if country == "US":
            week = pa.scalar(now - dt.timedelta(days=8), pa.timestamp("us", tz="UTC"))
            quiet = pc.or_(pc.is_null(book["last_conversation_at"]), pc.less(book["last_conversation_at"], week))
            sel = pc.and_(pc.and_(sel, pc.fill_null(quiet, True)), pc.invert(book["contact_opt_out"]))
        picked = book.filter(sel)
        if not picked.num_rows:
            continue
        account = picked["account_id"][0].as_py()
        at = now
        for k in range(asks):
            v = ledger.check_contact(account, "PHONE", at, pipeline.judge, now=at)
            when = at.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%H:%M local")
            if v.outcome == "KEEP":
                out.append(f"  {account} ({country}, {when}) PHONE → KEEP, reserved; the dialer reports RIGHT_PARTY")
                ledger.ingest(pa.table({"event_id": [f"demo-{v.reservation_id}"], "account_id": [account],
                                        "kind": ["CONTACT_ATTEMPT"], "at": pa.array([at], pa.timestamp("us", tz="UTC")),
                                        "channel": ["PHONE"], "outcome": ["RIGHT_PARTY"],
                                        "reservation_id": [v.reservation_id]}), now=at + dt.timedelta(minutes=5))
            else:
                nxt = f" (next allowed {v.next_allowed_at.astimezone(zoneinfo.ZoneInfo(zone)):%Y-%m-%d %H:%M} local)" \
                    if v.next_allowed_at else ""
                out.append(f"  {account} ({country}, {when}) PHONE → {v.outcome} {v.reason_code}{nxt}")
            at = at + dt.timedelta(minutes=20)
    return out or ["  (no account to show)"]


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
