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
back, and asks the contact-time gate what a dialer would ask before it dials. Then compliance:
every deferred or blocked action by reason, and a few accounts told step by step — holds,
consent and opt-out, third parties, the repossession lifecycle to the sale and its deficiency
or surplus — with the reason code each verdict gives (docs/compliance.md).

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
    p.add_argument("--audit", default=None,
                   help="audit log file, appended to (default: [audit] path or $POSTLOAN_AUDIT_PATH when set, else "
                        "a file of this run alone in ~/.local/state/postloan/demo-audit/, the five newest kept)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the case ledger to ingest the events into and decide from (default: a temporary SQLite "
                        "ledger, removed afterwards)")
    p.add_argument("--days", type=a.positive_int, default=7,
                   help="days the HTML report covers: the decision day, then simulated days (default 7)")
    p.add_argument("--report", type=a.output_file, default=None, metavar="FILE",
                   help="the HTML report (default ~/.local/state/postloan/report.html)")
    p.add_argument("--config", type=a.existing_file, default=None,
                   help="configuration file (default $POSTLOAN_CONFIG): plugins, strategy, policies, audit, ledger")
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
        from ..evaluation.demo import demo_config
        config = demo_config(args.config, days=args.days)
        ledger = Ledger(args.store or f"sqlite:///{tmp}/ledger.db", config)
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
        # the whole book's state is read batch by batch now and every simulated day of the
        # report: the events once, then only what each day appended (kernel.ledger.book)
        ledger.keep_events()

        start = time.perf_counter()
        say("loading the bundle (the first run compiles it with Numba; later runs read the cache)…", args.quiet)
        kernel = Kernel.load(args.bundle, progress=False if args.quiet else None)
        from ..evaluation.demo import fresh_audit_path
        pipeline = Pipeline(kernel, audit_path=fresh_audit_path(config, args.audit), ledger=ledger, config=config)
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
        text += "\n\n" + "\n".join(_compliance_report(actions) + _compliance_story(ledger, pipeline, book, as_of, now))
        text += "\n\n" + _html_report(args, pipeline, book, decided, as_of, now)
        ledger.close()
    print(text)
    return 0


def _html_report(args, pipeline, book, decided, as_of, now) -> str:
    """The HTML report (kernel.evaluation): this run and args.days − 1 simulated days."""
    import time

    from pathlib import Path

    from ..evaluation.demo import DEMO_EFFECT, default_audit_folder, default_report_path, simulate_and_report
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
    audit = pipeline.audit.path
    return (f"Portfolio report: {path} ({len(figures['series']['dates'])} runs: {as_of} and "
            f"{args.days - 1} simulated days, {time.perf_counter() - start:.1f} s{found})\n"
            f"Audit log: {audit} ({_size(audit)}"
            f"{'; this run only, the newest few kept' if Path(audit).parent == default_audit_folder() else ''})")


def _size(path) -> str:
    import os
    try:
        return f"{os.path.getsize(path) / 1e6:,.1f} MB"
    except OSError:
        return "not written"


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
        # an account no hold stops (the holds have a story of their own below)
        account = next((r["account_id"] for r in picked.slice(0, 200).to_pylist()
                        if not _held(pipeline.record_with_state(r, now.date(), now))), None)
        if account is None:
            continue
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


#: reason codes by what they are about (the rest: timing and litigation)
_REASON_GROUPS = (
    ("holds", ("HOLD_", "US_CEASE", "US_ATTORNEY", "CN_COMPLAINT")),
    ("consent and opt-out", ("CN_NO_AUTOMATED_CONSENT", "US_TCPA", "REGF_OPT_OUT", "REGF_RESTRICTED", "REGF_NO_OPT")),
    ("third parties", ("THIRD_PARTY_",)),
    ("repossession and disposal", ("CN_NO_GPS", "CN_REPOSSESSION", "US_SCRA", "US_CURE", "DISPOSAL_")),
    ("scripts", ("SCRIPT_", "US_NO_LIMITED")),
    ("time and frequency", ("CN_QUIET", "CN_DAILY", "REGF_INCONVENIENT", "REGF_RECENT", "REGF_7", "US_MA",
                            "US_WORKPLACE", "US_INCONVENIENT")),
    ("litigation", ("LITIGATION_", "US_TIME_BARRED", "CN_LIMITATION")),
)


def _compliance_report(actions) -> list[str]:
    """Every deferred or blocked action of the run, by what its reason is about."""
    import collections

    counts = collections.Counter(r for r in actions["reason_code"].to_pylist() if r)
    rows = []
    for group, prefixes in _REASON_GROUPS:
        mine = sorted(((c, n) for c, n in counts.items() if c.startswith(prefixes)), key=lambda x: -x[1])[:6]
        for code, n in mine:
            rows.append((group, code, f"{n:,}"))
            group = ""
    lines = ["Compliance: every deferred or blocked action of the run, by reason (docs/compliance.md)"]
    return lines + ([_table(["about", "reason code", "actions"], rows)] if rows else ["  (none)"]) + [""]


def _compliance_story(ledger, pipeline, book, as_of, now) -> list[str]:
    """Holds, consent, third parties and the repossession lifecycle, told on a few accounts of
    the book: events are added to the ledger as they would happen, and after each the policies
    (through Pipeline.judge, the gate's own question) give their verdict with its reason code."""
    import datetime as dt
    import zoneinfo

    import pyarrow as pa
    import pyarrow.compute as pc

    from ..hookspecs import ACTION, ActionBatch, Batch, Record
    from ..synth import snapshot_at

    lines = ["Compliance, told on a few accounts (events added to the ledger as they happen; after each, the "
             "verdict the policies and the contact-time gate give)"]
    joined = pipeline.with_state(book, as_of, now)
    clear = pc.and_(pc.and_(pc.equal(joined["open_disputes"], 0), pc.invert(joined["promise_open"])),
                    pc.and_(pc.equal(joined["open_complaints"], 0), pc.invert(joined["bankruptcy_open"])))
    start = max(now, snapshot_at(as_of)) + dt.timedelta(minutes=1)
    counter = [0]

    used: set = set()

    def pick(country, extra=None):
        """The first account of ``country`` with no hold yet (and ``extra``), not told already."""
        sel = pc.and_(clear, pc.equal(joined["country"].cast("string"), country))
        if extra is not None:
            sel = pc.and_(sel, extra)
        ids = [a for a in joined.filter(sel)["account_id"].to_pylist() if a not in used]
        if ids:
            used.add(ids[0])
        return ids[0] if ids else None

    records = {r["account_id"]: r for r in book.to_pylist()} if book.num_rows <= 200_000 else None

    def record_of(account):
        if records is not None:
            return records[account]
        return book.filter(pc.equal(book["account_id"], account)).to_pylist()[0]

    def add(account, kind, at, **columns):
        counter[0] += 1
        row = {"event_id": f"demo-story-{counter[0]}", "account_id": account, "kind": kind, "at": at, **columns}
        types = {"at": pa.timestamp("us", tz="UTC"), "amount": pa.float64(), "promise_date": pa.date32()}
        result = ledger.ingest(pa.table({k: pa.array([v], types.get(k, pa.string())) for k, v in row.items()}),
                               now=at)
        assert not result.rejected, result.rejected

    def verdict(account, action, at):
        rec = pipeline.record_with_state(record_of(account), as_of, at)
        outcome, reason, next_allowed, policy, _ = pipeline.judge(rec, action, at, as_of)
        zone = zoneinfo.ZoneInfo(rec["time_zone"])
        shown = f"{outcome}" + (f" {reason}" if reason else "")
        if next_allowed != -(1 << 63):
            until = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=next_allowed)
            shown += f" (until {until.astimezone(zone):%Y-%m-%d %H:%M} local)"
        return shown

    def step(account, when, what, action, at):
        local = at.astimezone(zoneinfo.ZoneInfo(record_of(account)["time_zone"]))
        lines.append(f"    {local:%m-%d %H:%M} {what:<46} {action:<20} → {verdict(account, action, at)}")

    # holds: a dispute, a bankruptcy, a written request to stop (US)
    cn = pick("CN", pc.and_(pc.greater(joined["dpd"], 0), pc.less(joined["connected_calls_today"], 2)))
    if cn:
        t = _office(start, "Asia/Shanghai")
        lines.append(f"  Holds — {cn} (CN)")
        step(cn, t, "no hold", "PHONE", t)
        add(cn, "DISPUTE_OPENED", t)
        step(cn, t, "DISPUTE_OPENED", "PHONE", t + dt.timedelta(minutes=1))
        step(cn, t, "", "REPOSSESSION", t + dt.timedelta(minutes=1))
        add(cn, "DISPUTE_RESOLVED", t + dt.timedelta(hours=2))
        add(cn, "BANKRUPTCY_FILED", t + dt.timedelta(hours=2, minutes=1))
        step(cn, t, "DISPUTE_RESOLVED, BANKRUPTCY_FILED", "LEGAL_REVIEW", t + dt.timedelta(hours=2, minutes=2))
        add(cn, "BANKRUPTCY_CLOSED", t + dt.timedelta(hours=3))
        add(cn, "PROMISE_TO_PAY", t + dt.timedelta(hours=3, minutes=1), amount=500.0,
            promise_date=(t + dt.timedelta(days=3)).date())
        step(cn, t, "BANKRUPTCY_CLOSED, PROMISE_TO_PAY (3 days)", "PHONE", t + dt.timedelta(hours=3, minutes=2))
        step(cn, t, "", "SMS", t + dt.timedelta(hours=3, minutes=2))
    us = pick("US", pc.greater(joined["dpd"], 0))
    if us:
        zone = record_of(us)["time_zone"]
        t = _office(start, zone)
        lines.append(f"  Holds and consent — {us} (US, {zone}; the operator is a third-party collector)")
        add(us, "CONSENT_REVOKED", t, channel="SMS")
        step(us, t, "CONSENT_REVOKED (SMS)", "SMS", t + dt.timedelta(minutes=1))
        step(us, t, "", "VOICE_BOT", t + dt.timedelta(minutes=1))
        add(us, "OPT_OUT", t + dt.timedelta(minutes=2), channel="PHONE")
        step(us, t, "OPT_OUT (PHONE)", "PHONE", t + dt.timedelta(minutes=3))
        add(us, "CEASE_REQUESTED", t + dt.timedelta(minutes=4))
        step(us, t, "CEASE_REQUESTED (in writing)", "FIELD_VISIT", t + dt.timedelta(minutes=5))
        step(us, t, "", "THIRD_PARTY_CONTACT", t + dt.timedelta(minutes=5))

    # third parties: the structural rule and the screen
    tp = pick("CN", pc.and_(pc.and_(pc.invert(joined["phone_valid"]), joined["has_third_party_contact"]),
                            pc.equal(joined["third_party_contacts_30d"], 0)))
    if tp:
        policy = pipeline.plugins.policies()["third_party_contact"]
        rec = pipeline.record_with_state(record_of(tp), as_of, start)
        lines.append(f"  Third parties — {tp} (the emergency contact; scripts screened, templates limited to "
                     "{name}, {caller}, {hotline})")
        for script in ("您好，我是示例汽车金融的工作人员，麻烦您转告他回电。", "他欠我们钱，请他回电。", "请他把分期结清。",
                       "他的车要被收走了。", "Tell him his car note is late."):
            batch = Batch(1, as_of, start, [Record(rec)], pipeline.config)
            acts = ActionBatch(batch, np_zeros(1), np_action(ACTION["THIRD_PARTY_CONTACT"]), np_time(batch.now_us),
                               script=pa.array([script]))
            v = policy.check(acts)
            reason = v.reason_codes()[0]
            lines.append(f"    “{script}” → {('KEEP', 'DEFER', 'BLOCK')[int(v.outcome[0])]}" + (f" {reason}" if reason else ""))

    # the repossession lifecycle, in China and in the US
    for country in ("CN", "US"):
        not_taken = pc.equal(joined["repossession_stage"].cast("string"), "NONE")
        account = pick(country, pc.and_(pc.greater(joined["dpd"], 90), not_taken)) or \
            pick(country, pc.and_(pc.greater(joined["dpd"], 0), not_taken))
        if not account:
            continue
        zone = record_of(account)["time_zone"]
        t = _office(start, zone)
        day = dt.timedelta(days=1)
        lines.append(f"  Repossession and disposal — {account} ({country}, {zone})")
        step(account, t, "nothing recorded", "REPOSSESSION", t)
        if country == "CN":
            add(account, "GPS_CONSENT_GRANTED", t + dt.timedelta(minutes=1))
            step(account, t, "GPS_CONSENT_GRANTED", "REPOSSESSION", t + dt.timedelta(minutes=2))
            add(account, "SURRENDER_AGREED", t + dt.timedelta(minutes=3))
            step(account, t, "SURRENDER_AGREED (written)", "REPOSSESSION", t + dt.timedelta(minutes=4))
        else:
            add(account, "MILITARY_SERVICE_STARTED", t + dt.timedelta(minutes=1))
            step(account, t, "MILITARY_SERVICE_STARTED", "REPOSSESSION", t + dt.timedelta(minutes=2))
            add(account, "COURT_ORDER_GRANTED", t + dt.timedelta(minutes=3))
            step(account, t, "COURT_ORDER_GRANTED", "REPOSSESSION", t + dt.timedelta(minutes=4))
        add(account, "REPOSSESSION_ORDERED", t + dt.timedelta(minutes=5))
        add(account, "REPOSSESSED", t + dt.timedelta(hours=3))
        step(account, t, "REPOSSESSED", "DISPOSAL", t + dt.timedelta(hours=4))
        add(account, "DISPOSAL_NOTICE_SENT", t + day)
        step(account, t, "DISPOSAL_NOTICE_SENT (next day)", "DISPOSAL", t + 2 * day)
        window = 15 if country == "CN" or record_of(account)["region"] == "US-CA" else 10
        step(account, t, f"{window + 1} days after the notice", "DISPOSAL", t + (window + 2) * day)
        sold_at = t + (window + 3) * day
        rec = record_of(account)
        owed = rec["outstanding_principal"] + rec["overdue_interest"] + rec["penalty_interest"]
        valuation = rec["purchase_price"] * 0.45
        add(account, "VEHICLE_SOLD", sold_at, amount=round(valuation, 2))      # a demo price: 45 % of the car's
        from postloan_builtins.compliance import settlement
        s = settlement([owed], [valuation], [1_500.0 if country == "CN" else 900.0])
        c = "¥" if country == "CN" else "$"                                  # the account's currency
        what = f"deficiency {c}{s['deficiency'][0]:,.2f} owed by the debtor" if s["deficiency"][0] > 0 \
            else f"surplus {c}{s['surplus'][0]:,.2f} returned to the debtor"
        lines.append(f"    sold for {c}{valuation:,.2f}; owed {c}{owed:,.2f}, expenses {c}{s['expenses'][0]:,.2f}: {what} "
                     f"(UCC § 9-615/9-616; Civil Code art. 643)")
    return lines + [""]


def _office(after, zone):
    """The next 10:30 local in ``zone`` at or after ``after`` (a moment every rule's window allows)."""
    import datetime as dt
    import zoneinfo
    local = after.astimezone(zoneinfo.ZoneInfo(zone))
    target = local.replace(hour=10, minute=30, second=0, microsecond=0)
    if target < local:
        target += dt.timedelta(days=1)
    return target.astimezone(dt.timezone.utc)


def np_zeros(n):
    import numpy as np
    return np.zeros(n, np.int64)


def np_action(code):
    import numpy as np
    return np.array([code], np.int8)


def np_time(us):
    import numpy as np
    return np.array([us], np.int64)


def _held(record) -> bool:
    """Whether a hold of the ledger's state stops the account's collection (docs/compliance.md)."""
    return bool(record.get("promise_open") or record.get("open_disputes") or record.get("open_complaints")
                or record.get("bankruptcy_open") or record.get("hardship") or record.get("deceased"))


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


_SYMBOL = {"CNY": "¥", "USD": "$"}


def _money(x: float, currency: str = "CNY") -> str:
    """An amount in its own currency (the account's ``currency``): never another's symbol."""
    sym = _SYMBOL.get(currency, f"{currency} ")
    return f"-{sym}{-x:,.0f}" if x < 0 else f"{sym}{x:,.0f}"


def _currencies(book):
    """The book's currency per row (the country's where a book has no currency column)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    country = np.where(np.array(pc.cast(book["country"], pa.string()).to_pylist(), dtype=object) == "US", "USD", "CNY")
    if "currency" in book.column_names:
        given = np.array(pc.cast(book["currency"], pa.string()).to_pylist(), dtype=object)
        return np.where(given == None, country, given).astype(object)  # noqa: E711 (null: the country's)
    return country.astype(object)


def _money_sums(values, currencies, mask=None) -> str:
    """Sums of ``values`` per currency, each in its own: "¥1,234 · $56" — never added across."""
    import numpy as np
    v = np.nan_to_num(np.asarray(values, np.float64))
    keep = np.ones(v.shape[0], bool) if mask is None else np.asarray(mask, bool)
    parts = [_money(float(v[keep & (currencies == c)].sum()), c) for c in ("CNY", "USD")
             if np.any(currencies[keep] == c) or (c == "CNY" and not np.any(keep))]
    parts += [_money(float(v[keep & (currencies == c)].sum()), c) for c in sorted(set(currencies[keep]) - {"CNY", "USD"})]
    return " · ".join(parts) or _money(0.0)


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
    cur = _currencies(book)
    col = lambda name: book[name].to_numpy(zero_copy_only=False)  # noqa: E731
    lines = [f"postloan demo — {n:,} accounts, decided as of {as_of} (actions planned for {now:%Y-%m-%d %H:%M} UTC)",
             f"bundle {kernel.bundle_hash[:12]} · generate {timings['generate']:.1f} s · load {timings['load']:.1f} s · "
             f"decide + act {timings['decide']:.1f} s ({n / timings['decide']:,.0f} accounts/s)", ""]

    lines += ["Portfolio",
              f"  outstanding principal {_money_sums(col('outstanding_principal'), cur)} · overdue amount "
              f"{_money_sums(col('overdue_amount'), cur)} · penalty interest and late fees "
              f"{_money_sums(col('penalty_interest'), cur)} (each currency on its own)",
              f"  overdue rate {_pct(ov.overdue_rate)} of accounts, {_pct(ov.overdue_balance_rate)} of balance · "
              f"30+ {_pct(ov.rate_30_plus)} · 90+ {_pct(ov.rate_90_plus)}", ""]

    bucket = decisions["dpd_bucket.bucket"]
    counts = pf.counts(bucket, BUCKETS)
    pd_col = "early_warning.pd" if "early_warning.pd" in decisions.column_names else "pd_model.probability"
    pd_mean = pf.sums_by(bucket, decisions[pd_col], BUCKETS)
    bucket_of = np.array(pc.cast(bucket, "string").to_pylist(), dtype=object)
    rows = [(b, f"{c:,}", _pct(s), _money_sums(col("outstanding_principal"), cur, bucket_of == b),
             _money_sums(col("overdue_amount"), cur, bucket_of == b), _pct(p / c if c else float("nan")))
            for (b, c, s), p in zip(counts, pd_mean)]
    lines += ["DPD buckets (dpd_bucket ruleset; mean PD: the chance of reaching 61+ DPD within 6 months, 1 once there)",
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
    prof = pf.profile(book, high & late, ["bureau_score", "debt_to_income", "dpd", "promises_broken_90d",
                                          "credit_inquiries_6m"])
    # money is averaged within one currency only
    rows = [(k, _num(a), _num(b)) for k, a, b in prof]
    for c in ("USD", "CNY"):                 # inserted in turn: CNY shows first
        in_c = cur == c
        if (high & late & in_c).any():
            (_, a, b), = pf.profile(book.filter(pa.array(in_c)), (high & late)[in_c], ["monthly_income"])
            rows.insert(2, (f"monthly_income ({c})", _money(a, c), _money(b, c)))
    lines += [f"High-risk overdue profile ({int(np.sum(high & late)):,} accounts) vs the whole book",
              _table(["feature", "high-risk overdue", "book"], rows), ""]

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
    cur = _currencies(book)
    pick = lambda col, src=decisions: [src[col][int(i)].as_py() for i in order]  # noqa: E731
    rows = zip(pick("account_id", book), pick("brand", book), pick("model", book), pick("model_year", book),
               pick("valuation.price"), pick("disposal_channel.channel"), pick("disposal_channel.expected_net"),
               pick("disposal.shortfall"), [cur[int(i)] for i in order])
    lines += ["  top disposal recommendations (by expected net proceeds, each in its account's currency):",
              _table(["account", "brand", "model", "year", "valuation", "channel", "net proceeds", "shortfall"],
                     [(acc, b, m, y, _money(p or 0, c), ch or "—", _money(nt or 0, c), _money(sf or 0, c))
                      for acc, b, m, y, p, ch, nt, sf, c in rows])]
    by_channel = pf.counts(decisions["disposal_channel.channel"].filter(need))
    lines += ["  channels chosen (an unsold auction car is relisted, with its cost, delay and a lower price): "
              + ", ".join(f"{k} {c:,} ({s:.0%})" for k, c, s in by_channel)]
    lines += ["  " + line for line in disposal_outcome(book, decisions, need)]
    return lines


def disposal_outcome(book, decisions, need) -> list[str]:
    """Recovery and loss on the cars sent to repossession or sale, per currency: the exposure
    (principal + overdue interest + late charges), what the chosen channels are expected to
    net, the recovery rate (net proceeds up to the exposure, over the exposure: a surplus
    goes back to the debtor), the expected loss and the days to cash."""
    import numpy as np
    need = np.asarray(need.to_numpy(zero_copy_only=False) if hasattr(need, "to_numpy") else need, bool)
    cur = _currencies(book)
    col = lambda name, src=book: np.nan_to_num(src[name].to_numpy(zero_copy_only=False).astype(np.float64))  # noqa: E731
    exposure = col("outstanding_principal") + col("overdue_interest") + col("penalty_interest")
    net = np.nan_to_num(col("disposal_channel.expected_net", decisions), nan=0.0)
    days = decisions["disposal_channel.expected_days"].to_numpy(zero_copy_only=False).astype(np.float64)
    out = []
    for c in ("CNY", "USD"):
        m = need & (cur == c)
        if not m.any():
            continue
        e, r = exposure[m].sum(), np.minimum(np.maximum(net[m], 0), exposure[m]).sum()
        surplus = np.maximum(net[m] - exposure[m], 0).sum()
        out.append(f"{c}: {int(m.sum()):,} cars, exposure {_money(e, c)}, expected net proceeds {_money(r + surplus, c)} "
                   f"→ recovery {r / e:.1%} of exposure, expected loss {_money(e - r, c)}, surplus to debtors "
                   f"{_money(surplus, c)}; median {np.nanmedian(days[m]):.0f} days to cash")
    return out
