"""A synthetic auto-finance loan book, deterministic by seed, generated in fixed chunks.

The book is one row per account (accounts ⋈ customers ⋈ vehicles, see
:mod:`kernel.schema`). It is built to look like a real post-loan portfolio, not noise:

- a latent credit quality per customer drives bureau score, income, debt ratio, inquiries
  and past delinquencies;
- each account's repayment history is **simulated month by month from origination**
  (:mod:`kernel.synth.process`: an instalment falls due each month; the account pays it,
  falls behind with a hazard from its quality, debt ratio, loan-to-value, term, the loan's
  age and the economy, and once behind cures, stays or rolls by the true cause of its
  arrears and its equity in the car), and the book is that history's snapshot: DPD,
  instalments paid and overdue, balances from the real amortization table
  (:mod:`kernel.schedule`), the 12-month counters, the last payment;
- vehicles depreciate by brand (geometric yearly loss), age and mileage; condition grade
  follows age, mileage and chance, and the neglect of an owner who stopped paying;
- the collection process works each overdue day of the path by DPD tier (SMS and voice
  bot, then agents' calls, then field visits), a conversation may bring a promise to pay,
  kept or broken by the path's own payments (:mod:`kernel.synth.collection`); the book's
  contact and promise counters are read off those events;
- motor insurance renewed yearly from origination until it lapses (more often while
  behind); small shares of GPS-offline or tampered trackers, traffic violations and open
  complaints, all more frequent among delinquent accounts.

The book is a snapshot taken at one instant, :func:`snapshot_at` (``as_of`` at
:data:`SNAPSHOT_TIME` UTC: 10:00 in Beijing, the evening before in the United States), which
the written book carries in its schema metadata (``postloan.snapshot_at``). Its counters are
what the ledger would derive from the account's events as of that instant, in the debtor's
local calendar (:mod:`kernel.synth.history` holds the local calendar,
:mod:`kernel.synth.events` writes the events).

Every chunk of :data:`CHUNK` rows draws from its own generators seeded by ``(seed, chunk)``
(the book's draws) and ``(seed, chunk, 1)`` (the history's), so a row's values depend only on
the seed and its index, never on how the output is batched.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schedule as sched
from ..hookspecs import NULL_TIME
from ..schema import ENUMS, arrow_schema
from ..snapshot import SNAPSHOT_KEY
from . import catalogue as cat
from . import history as hist
from . import collection
from . import process as proc

CHUNK = 16_384
DEFAULT_AS_OF = dt.date(2026, 11, 28)
#: the book is a snapshot at this time of day (UTC) on its as-of date: 10:00 in Beijing (the
#: moment ``postloan demo`` plans actions for), 18:00–21:00 the evening before in the US
SNAPSHOT_TIME = dt.time(2, 0)
#: days a US installment may be late before its late fee is charged
US_GRACE_DAYS = 10
#: months of instalment payments the recent history carries (the book's 12-month counters'
#: window); the last payment is carried however old, and the full history carries every one
PAYMENT_MONTHS = 12
#: days since the epoch of the first of each month since 1970-01
_MONTH_START = np.arange(np.datetime64("1970-01"), np.datetime64("2200-01")).astype("datetime64[D]").astype(np.int64)
_BOOK_SCHEMA = arrow_schema("book")
_REGIONS = cat.CN_REGIONS + cat.US_REGIONS
#: time zones of the regions (sorted) and each region's index into them
ZONES = sorted({r[2] for r in _REGIONS})
_REGION_ZONE = np.array([ZONES.index(r[2]) for r in _REGIONS], np.int64)


def snapshot_at(as_of: dt.date = DEFAULT_AS_OF) -> dt.datetime:
    """The instant the book generated for ``as_of`` is a snapshot of (UTC)."""
    return dt.datetime.combine(as_of, SNAPSHOT_TIME, dt.timezone.utc)


def snapshot_us(as_of: dt.date = DEFAULT_AS_OF) -> int:
    """:func:`snapshot_at` in µs since the epoch."""
    t = SNAPSHOT_TIME
    return ((as_of - dt.date(1970, 1, 1)).days * 86_400 + t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000


def snapshot_metadata(as_of: dt.date = DEFAULT_AS_OF) -> dict[str, str]:
    """The schema metadata a written book or events file carries: ``postloan.snapshot_at``."""
    return {SNAPSHOT_KEY: snapshot_at(as_of).strftime("%Y-%m-%dT%H:%M:%SZ")}


def book_schema(as_of: dt.date = DEFAULT_AS_OF) -> pa.Schema:
    """The contract's book schema with the snapshot instant in its metadata."""
    return _BOOK_SCHEMA.with_metadata({**(_BOOK_SCHEMA.metadata or {}),
                                       **{k.encode(): v.encode() for k, v in snapshot_metadata(as_of).items()}})


def _enum(name: str, codes: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(ENUMS[name]))


def _strings(values) -> pa.Array:
    return pa.array(values, pa.string())


def _digits(x: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(x.astype(np.int64)).cast(pa.string()), width, "0")


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _take(options, idx: np.ndarray) -> pa.Array:
    return pa.array(list(options), pa.string()).take(pa.array(idx))


def _days(d: np.ndarray) -> pa.Array:
    """datetime64[D] → date32."""
    return pa.array(d.astype("datetime64[D]"), pa.date32())


def _add_months(month0: np.ndarray, k: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Dates ``month0 + k`` months on day-of-month ``day`` (1–28)."""
    return (month0 + k).astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")


def _instants(us: np.ndarray, valid: np.ndarray) -> pa.Array:
    """µs since the epoch → timestamp[us, UTC], null where not ``valid``."""
    return pa.array(np.where(valid, us, 0), pa.timestamp("us", tz="UTC"), mask=~valid)


def _chunk(seed: int, chunk: int, n: int, as_of: dt.date) -> pa.RecordBatch:
    """Rows ``chunk·CHUNK … chunk·CHUNK + n − 1`` of the book."""
    return simulate(seed, chunk, n, as_of)[0]


def simulate(seed: int, chunk: int, n: int, as_of: dt.date, people: bool = True,
             history: str = "recent") -> tuple[pa.RecordBatch, dict]:
    """Rows ``chunk·CHUNK … chunk·CHUNK + n − 1`` of the book, and the history behind them
    (the draws :mod:`kernel.synth.events` turns into events). ``people=False`` leaves the
    personal-data columns (names, ids, phones, addresses, plates, VINs) empty: every draw is
    still made, so every other column is the same. ``history`` (``"recent"`` or ``"full"``,
    :mod:`kernel.synth.events`) says which payments, contacts and promises the history
    carries; the book is the same for both."""
    if history not in collection.HISTORIES:
        raise ValueError(f"history: expected one of {', '.join(collection.HISTORIES)}, got {history!r}")
    mode = history                 # (``history`` below is the bureau's credit history)
    rng = np.random.default_rng([seed, chunk])
    rng_h = np.random.default_rng([seed, chunk, 1])
    first_index = chunk * CHUNK
    today = np.datetime64(as_of, "D")
    snapshot = snapshot_us(as_of)

    # --- customer: where, who, latent quality -------------------------------------------
    us = rng.random(n) < 0.05
    regions = _REGIONS
    cn_w = np.array([r[1] for r in cat.CN_REGIONS]); us_w = np.array([r[1] for r in cat.US_REGIONS])
    region_idx = np.where(us, len(cat.CN_REGIONS) + rng.choice(len(us_w), n, p=us_w / us_w.sum()),
                          rng.choice(len(cn_w), n, p=cn_w / cn_w.sum()))
    age = np.clip(np.round(rng.normal(36, 9, n)), 22, 68).astype(np.int64)
    emp = rng.choice(5, n, p=[0.64, 0.26, 0.04, 0.03, 0.03])
    quality = rng.normal(0, 1, n)                       # latent creditworthiness
    rows = np.arange(n)
    clock = hist.Clock.at(snapshot, ZONES, _REGION_ZONE[region_idx])
    quality -= np.where(emp == 2, 1.0, 0.0) + np.where(emp == 4, 0.4, 0.0)
    quality += np.clip((age - 30) / 40, -0.2, 0.5)

    # monthly income in the account's currency: median ≈ 9,000 CNY in China (urban car buyers),
    # ≈ 5,200 USD in the US (auto borrowers' median ≈ 62,000 USD a year)
    income = np.exp(rng.normal(np.where(us, np.log(5_200), np.log(9_000)) + 0.25 * quality,
                               np.where(emp == 1, 0.7, 0.45), n))
    income_at_contract = np.maximum(income, np.where(us, 1_500, 2_500))
    income = np.where(emp == 2, income * 0.35, income)       # lost since the loan was made
    income = np.round(np.maximum(income, np.where(us, 800, 1_500)), -1)
    # bureau score 300–900, centred near 690 (a US auto book: ≈ 60 % prime, Experian 2025)
    # a few files carry an old charge-off or bankruptcy the latent quality does not: the deep-
    # subprime tail (Experian puts 3–5 % of auto borrowers below 500)
    damaged = np.random.default_rng([seed, chunk, 6]).random(n) < 0.035
    bureau = np.clip(np.round(rng.normal(690 + 70 * quality, 35, n) - np.where(damaged, 160, 0)), 300, 900
                     ).astype(np.int64)
    bureau_valid = rng.random(n) > 0.03
    history = np.clip(np.round((age - 20) * 12 * rng.uniform(0.2, 0.9, n)), 0, 480).astype(np.int64)
    inquiries = rng.poisson(np.exp(0.2 - 0.45 * quality)).astype(np.int64)
    past_delinq = rng.poisson(np.exp(-1.6 - 0.9 * quality)).astype(np.int64)

    # --- vehicle and loan ------------------------------------------------------------------
    # each country's own market: brands, models and prices (CNY or USD) of its catalogue
    cn_b = np.array([b[1] for b in cat.BRANDS]); us_b = np.array([b[1] for b in cat.US_BRANDS])
    brand_idx = np.where(us, len(cat.BRANDS) + rng.choice(len(us_b), n, p=us_b / us_b.sum()),
                         rng.choice(len(cn_b), n, p=cn_b / cn_b.sum()))
    n_models = np.array([len(b[4]) for b in cat.ALL_BRANDS])
    model_in_brand = (rng.random(n) * n_models[brand_idx]).astype(np.int64)
    model_offsets = np.concatenate([[0], np.cumsum(n_models)[:-1]])
    flat_models = [m for b in cat.ALL_BRANDS for m in b[4]]
    model_flat = model_offsets[brand_idx] + model_in_brand
    new_price = np.array([p for _, p in flat_models], np.float64)[model_flat]
    depreciation = np.array([b[2] for b in cat.ALL_BRANDS])[brand_idx]
    ev_share = np.array([b[3] for b in cat.ALL_BRANDS])[brand_idx]

    product = rng.choice(3, n, p=[0.70, 0.22, 0.08])
    # terms: 12–60 months in China; 36–72 in the US (the average new-car loan runs ≈ 68 months)
    term = np.where(us, rng.choice(np.array([36, 48, 60, 72]), n, p=[0.10, 0.15, 0.40, 0.35]),
                    rng.choice(np.array([12, 24, 36, 48, 60]), n, p=[0.08, 0.22, 0.40, 0.15, 0.15]))
    mob = np.minimum((rng.random(n) ** 1.3 * (term + 1)).astype(np.int64), term)  # months on book
    contract_day = rng.integers(1, 29, n)
    contract_month = (today.astype("datetime64[M]") - mob).astype("datetime64[M]")
    contract_date = contract_month.astype("datetime64[D]") + (contract_day - 1).astype("timedelta64[D]")
    contract_date = np.minimum(contract_date, today - np.timedelta64(1, "D"))
    contract_year = contract_date.astype("datetime64[Y]").astype(np.int64) + 1970

    used = product == 1
    age_at_purchase = np.where(used, rng.integers(1, 8, n), 0)
    # new cars: this year's or next year's model; used cars: as old as their age at purchase
    model_year = (contract_year - age_at_purchase + np.where(used, 0, rng.integers(0, 2, n))).astype(np.int64)
    price = new_price * rng.uniform(0.9, 1.12, n) * (1 - depreciation) ** age_at_purchase
    price = np.where(us, np.round(price, -1), np.round(price, -2))
    # loan-to-value: in China ≈ 0.68 at banks and captives (30 % down payment) and 0.85–1.0 on
    # the low-down-payment products of auto-finance and fintech lenders (10–15 % down, with the
    # GPS, insurance and service fees financed), which weaker borrowers take more often; in the US ≈ 0.88 (above 1 where negative equity is rolled in)
    low_down = ~us & (rng.random(n) < 1 / (1 + np.exp(1.0 + 0.8 * quality)))
    ltv = np.where(us, np.clip(rng.normal(0.88 - 0.05 * quality, 0.10, n), 0.5, 1.25),
                   np.where(low_down, rng.uniform(0.85, 1.0, n),
                            np.clip(rng.normal(0.68 + 0.04 * quality, 0.07, n), 0.3, 0.8)))
    principal = np.round(price * ltv, -2)
    # rates: ≈ 6.5 % in China; in the US ≈ 7 % new and ≈ 11 % used (Experian, 2025)
    annual_rate = np.round(np.clip(np.where(us, 0.07, 0.065) - np.where(us, 0.025, 0.012) * quality
                                   + np.where(used, np.where(us, 0.04, 0.02), 0.0)
                                   + rng.normal(0, 0.008, n), 0.0, np.where(us, 0.25, 0.18)), 4)
    annual_rate = np.where(rng.random(n) < np.where(us, 0.03, 0.07), 0.0, annual_rate)  # 0 % promotions
    method = np.where((rng.random(n) < 0.85) | us, 0, 1).astype(np.int8)   # US loans: equal installments
    # underwriting: the installment took at most 35 % of the income when the loan was made (a
    # larger down payment otherwise; 50 % on the low-down-payment products, whose lenders
    # stretch) — today's debt ratio exceeds that only where income fell
    affordable = np.where(low_down, 0.5, 0.35) * income_at_contract / np.maximum(
        sched.payment(principal, annual_rate, term, method), 1.0)
    principal = np.round(principal * np.minimum(affordable, 1.0), -2)
    principal = np.maximum(principal, 1_000.0)

    first_month = contract_month + 1
    # installments whose due date fell before the snapshot day
    due_of = lambda k: _add_months(first_month, k - 1, contract_day)  # noqa: E731 (local helper)
    due = np.clip(mob - (due_of(np.maximum(mob, 1)) >= today), 0, term)

    # --- the repayment history, month by month from origination (kernel.synth.process) ---
    dti_pre = rng.uniform(0.05, 0.35, n) - 0.04 * quality
    monthly_payment = sched.payment(principal, annual_rate, term, method)
    dti = np.clip(dti_pre + monthly_payment / income, 0.02, 2.5)
    rng_c = np.random.default_rng([seed, chunk, 3])
    # never meant to pay; found and written off before the 8th instalment, so only young loans
    fraud = (rng_c.random(n) < FRAUD_SHARE) & (due > 0) & (due < proc.WRITE_OFF_MISSED)
    borrower = proc.Borrower(quality, dti, past_delinq.astype(np.float64), principal / price, term.astype(np.float64),
                             _cause_weights(emp, quality, income, monthly_payment), fraud, depreciation,
                             np.where(us, 0.9, 0.7))
    month0 = first_month.astype(np.int64) - (2000 - 1970) * 12 - 1     # instalment k's month: month0 + k
    months = int(max(due.max(initial=0), 1))                           # the due day of each instalment
    days = (_MONTH_START[first_month.astype(np.int64)[:, None] + np.arange(months)[None, :]]
            + (contract_day - 1)[:, None])
    path = proc.history((seed, chunk, 5), borrower, due, days, month0)
    col_now = due - 1                                        # the path's column of the last instalment due
    missed = path.at(col_now)
    cause = path.cause
    delinquent = missed > 0
    paid = due - missed
    oldest_unpaid_due = due_of(paid + 1)
    dpd = np.where(missed > 0, (today - oldest_unpaid_due).astype(np.int64), 0)

    pos = sched.position(principal, annual_rate, term, method, paid, due)
    overdue_amount = np.round(pos.overdue_principal + pos.overdue_interest, 2)
    penalty_rate = np.where(rng.random(n) < 0.8, 0.0005, 0.0003)
    avg_days_late = np.maximum(dpd - 30.4 * (missed - 1) / 2, 0)
    penalty = np.round(overdue_amount * penalty_rate * avg_days_late, 2)
    # US contracts charge a late fee, not penalty interest: 5 % of the installment (at least
    # 15 USD) for each installment more than 10 days late (the usual 10-day grace period)
    late_installments = np.where(missed > 0, np.clip(np.floor((dpd - US_GRACE_DAYS - 1) / 30.4) + 1, 0, missed), 0)
    late_fee = np.round(late_installments * np.maximum(0.05 * monthly_payment, 15.0), 2)
    penalty_rate = np.where(us, 0.0, penalty_rate)
    penalty = np.where(us, late_fee, penalty)
    next_due = due_of(paid + 1)
    repaid = paid >= term

    # the last 12 months, read off the path
    summary = proc.summarise(path, due, days, np.full(n, today.astype(np.int64)))
    dpd_30d_ago, max_dpd = summary["dpd_30d_ago"], np.maximum(summary["max_dpd_12m"], dpd)
    times_overdue = summary["times_overdue_12m"]
    on_time = np.where(due > 0, 1 - times_overdue / np.maximum(np.minimum(due, 12), 1), np.nan)
    first_overdue_day = summary["first_overdue_day"]
    # the last instalment payment, on or before the snapshot's local day (the evening before
    # as_of in the US)
    pay_day = np.minimum(path.pay_day, clock.today[:, None])               # NULL_TIME (no payment) stays
    last_col = summary["last_payment"]

    # --- contactability -------------------------------------------------------------------
    phone_valid = rng.random(n) > np.where(fraud, 0.5, np.where(dpd > 60, 0.2, 0.04))
    third_party = rng.random(n) < 0.85
    consent = rng.random(n) < 0.92
    opt_out = rng.random(n) < np.where(us, 0.05, 0.01)
    complaints = rng.poisson(np.where(missed > 0, 0.04, 0.006))
    contracted = contract_date.astype(np.int64)
    # the instants (whole seconds, on their local days) of the instalment payments the events
    # carry: every one (history "full"), or those of the last PAYMENT_MONTHS months and the
    # last one however old ("recent"); each payment's time of day is drawn whether written or
    # not, so a payment has the same instant in both histories
    cols = np.arange(pay_day.shape[1])[None, :]
    pay_u = rng_h.random(pay_day.shape)
    carried = pay_day != NULL_TIME
    if mode == "recent":
        carried &= (cols >= (due - PAYMENT_MONTHS)[:, None]) | (cols == last_col[:, None])
    pay_rows, pay_cols = np.nonzero(carried)
    pay_at = np.full(pay_day.shape, NULL_TIME, np.int64)
    pay_at[pay_rows, pay_cols] = hist.day_instant(clock, pay_rows, pay_day[pay_rows, pay_cols],
                                                  pay_u[pay_rows, pay_cols])
    installment_paid_at = np.where(last_col >= 0, pay_at[rows, np.maximum(last_col, 0)], NULL_TIME)

    # --- the collection process along the path (kernel.synth.collection): contacts by DPD
    # tier while overdue, promises from conversations, kept or broken by the path's payments;
    # the book's contact and promise counters are read off those events
    coll = collection.simulate(int(rng_h.integers(1 << 31)), clock, path.missed, path.paid, pay_day, due, days,
                               phone_valid, cause == CAUSES.index("WILLINGNESS"), mode)
    attempts_today, connected_today = coll.call_attempts_today, coll.connected_calls_today
    failed_streak, calls_7d, sms_today = coll.consecutive_failed_attempts, coll.calls_7d, coll.sms_today
    last_conversation = coll.last_conversation_at
    spoke = last_conversation != NULL_TIME
    made, kept = coll.promises_made_90d, coll.promises_kept_90d
    broken, broken_30d = coll.promises_broken_90d, coll.promises_broken_30d
    open_promise, promise_date = coll.promise_open, coll.promise_date

    card_valid = rng.random(n) > 0.15
    card_util = np.clip(rng.beta(2, 3, n) - 0.15 * quality, 0, 1.5)
    spending = np.round(income * rng.uniform(0.25, 0.7, n), -1)
    spending_change = np.round(rng.normal(0.02, 0.12, n)
                               - np.where(cause == CAUSES.index("CAPACITY"), 0.25, np.where(missed > 0, 0.05, 0.0)), 3)
    spending_change = np.maximum(spending_change, -0.95)
    total_debt = np.round(pos.outstanding_principal + income * rng.uniform(0, 30, n) * np.clip(1 - 0.3 * quality, 0.2, 2), -2)

    # --- vehicle state -------------------------------------------------------------------
    vehicle_age = np.maximum(contract_year.astype(np.int64) - model_year + mob / 12, 0)
    mileage = np.round(np.maximum(vehicle_age * rng.normal(16_000, 6_000, n), 0) + rng.uniform(0, 3000, n), -1)
    wear = vehicle_age / 4 + mileage / 100_000 + rng.normal(0, 0.7, n)
    condition = np.clip(np.floor(wear), 0, 4).astype(np.int8)
    energy = np.where(rng.random(n) < ev_share, np.where(rng.random(n) < 0.7, 3, 2),
                      np.where(rng.random(n) < 0.1, 1, 0)).astype(np.int8)

    # motor insurance, from origination: the policy bought with the loan runs a year and is
    # renewed at each anniversary before the snapshot, unless it lapses there — more often
    # when the account is behind at the time (the path's arrears at the anniversary's
    # instalment); a lapsed policy stays lapsed
    rng_i = np.random.default_rng([seed, chunk, 7])
    years_on_book = np.maximum(np.ceil((today - contract_date).astype(np.int64) / 365.0).astype(np.int64), 1)
    policies = np.ones(n, np.int64)
    alive = np.ones(n, bool)
    for y in range(1, int(years_on_book.max(initial=1))):
        col = np.minimum(12 * y - 1, due - 1)
        behind = path.at(col) > 0
        renew = alive & (y < years_on_book)
        lapse = rng_i.random(n) < np.where(behind, INSURANCE_LAPSE_BEHIND, INSURANCE_LAPSE)
        alive = renew & ~lapse
        policies += alive
    ins_expiry = contract_date + (365 * policies).astype("timedelta64[D]")
    ins_known = rng_i.random(n) > 0.01

    gps_r = rng.random(n)
    risky = np.clip(dpd / 90, 0, 1)
    gps = np.select([gps_r < 0.025, gps_r < 0.025 + 0.035 + 0.10 * risky, gps_r < 0.065 + 0.10 * risky + 0.004 + 0.02 * risky],
                    [3, 1, 2], default=0).astype(np.int8)
    gps = np.where(fraud & (gps != 3) & (rng_c.random(n) < 0.35), 2, gps).astype(np.int8)   # a fraud strips the tracker
    offline_h = np.select([gps == 0, gps == 1, gps == 2],
                          [rng.uniform(0, 1.5, n), rng.lognormal(np.log(60), 0.9, n), rng.lognormal(np.log(200), 0.6, n)],
                          default=np.nan)
    has_device = gps != 3
    # an OFFLINE tracker has been silent for the state's 2 hours at least; a TAMPERED one sent
    # its alert (with its last ping) within the tamper window; pings are on whole seconds
    offline_h = np.where(gps == 1, np.maximum(offline_h, 2.0), offline_h)
    offline_h = np.where(gps == 2, np.minimum(offline_h, hist.TAMPER_WITHIN_H), offline_h)
    silent_s = np.round(np.where(has_device, offline_h, 0.0) * 3600).astype(np.int64)
    last_ping = snapshot - silent_s * hist.US_SEC
    offline_h = np.where(has_device, (snapshot - last_ping) / hist.US_HOUR, np.nan)
    reg = region_idx
    lat0 = np.array([x[4] for x in regions])[reg]; lon0 = np.array([x[5] for x in regions])[reg]
    fence = np.where(rng.random(n) < 0.7, 30.0, 50.0)
    # beyond the geofence: 0.4 % of current cars, up to 4.4 % of cars 90+ days past due
    far = rng.random(n) < 0.004 + 0.04 * risky
    km = np.where(far, fence + rng.exponential(150, n), rng.exponential(6, n))
    bearing = rng.uniform(0, 2 * np.pi, n)
    lat = lat0 + km * np.cos(bearing) / 111.0
    lon = lon0 + km * np.sin(bearing) / (111.0 * np.cos(np.radians(lat0)))
    exits = rng.poisson(np.where(far, 1.5, 0.006))
    violations = rng.poisson(np.exp(rng.normal(-1.2, 0.9, n)))
    # a tracker reports geofence exits while it pings: none without one or silent for weeks;
    # a car on the book for fewer days than the window had fewer days to leave or be fined
    owned_days = clock.today - contracted
    exits = np.where(has_device & (offline_h < hist.EXITS_NEED_PING_WITHIN_H),
                     rng_h.binomial(exits, np.clip(owned_days / 27, 0, 1)), 0)
    violations = rng_h.binomial(violations, np.clip(owned_days / 88, 0, 1))
    repossessed = (dpd > 90) & (rng.random(n) < 0.3) | (dpd > 60) & (rng.random(n) < 0.05)
    # a car whose owner stopped paying is neglected, and a repossessed one often comes back
    # damaged, without its spare key or service records: one or two grades worse
    neglect = np.where(missed >= 3, np.where(rng_c.random(n) < 0.35, 2, 1), 0)
    condition = np.minimum(condition + neglect, 4).astype(np.int8)

    # overdue reason as a collector records it: the true cause when the debtor says it (or a
    # hardship claim from one who will not pay), UNKNOWN when nothing was learnt
    drawn = _recorded_reason(rng_c, cause, emp, phone_valid)
    reason = np.where(missed > 0, drawn, 0).astype(np.int8)

    # --- personal data (synthetic, but in the real formats) ------------------------------
    idx = np.arange(first_index, first_index + n)
    account_id = _join(pa.array(np.full(n, "AC")), _digits(idx, 10))
    drawn_people = _draw_people(rng, n)
    person = _people(drawn_people, us, reg, brand_idx, model_year, idx, as_of.year - age) if people else \
        dict.fromkeys(("customer_id", "vin", "name", "id_number", "phone", "address", "plate_number"),
                      pa.nulls(n, pa.string()))
    # the draws the columns below make, in the order they always made them
    litigation_clause = rng.random(n) < 0.97
    records_kept = rng.random(n) < 0.9
    notices = rng.poisson(np.where(dpd > 30, dpd / 45, 0.0))
    employment_years = np.round(np.minimum(rng.exponential(5, n), age - 18), 1)

    # the last payment: the path's last (a promise is kept by the path's payments)
    pay_amount = np.round(path.paid * np.round(monthly_payment, 2)[:, None], 2)
    last_payment_amount = np.where(last_col >= 0, pay_amount[rows, np.maximum(last_col, 0)], 0.0)
    last_payment_at = installment_paid_at
    has_payment = last_payment_at != NULL_TIME
    last_payment_day = np.where(has_payment, clock.day_of(rows, np.where(has_payment, last_payment_at, 0)), 0)

    cols = {
        "account_id": account_id, "customer_id": person["customer_id"], "vin": person["vin"],
        "product": _enum("product", product),
        "contract_date": _days(contract_date), "first_due_date": _days(due_of(np.ones(n, np.int64))),
        "term_months": pa.array(term.astype(np.int64)), "principal": pa.array(principal),
        "annual_rate": pa.array(annual_rate), "repayment_method": _enum("repayment_method", method),
        "installment_amount": pa.array(np.round(pos.next_installment, 2)),
        "installments_due": pa.array(due.astype(np.int64)), "installments_paid": pa.array(paid.astype(np.int64)),
        "outstanding_principal": pa.array(pos.outstanding_principal),
        "next_due_date": pa.array(next_due.astype("datetime64[D]"), pa.date32(), mask=repaid),
        "dpd": pa.array(dpd.astype(np.int64)), "overdue_installments": pa.array(missed.astype(np.int64)),
        "overdue_principal": pa.array(pos.overdue_principal), "overdue_interest": pa.array(pos.overdue_interest),
        "overdue_amount": pa.array(overdue_amount), "penalty_rate_daily": pa.array(penalty_rate),
        "penalty_interest": pa.array(penalty), "dpd_30d_ago": pa.array(dpd_30d_ago.astype(np.int64)),
        "max_dpd_12m": pa.array(max_dpd), "times_overdue_12m": pa.array(times_overdue.astype(np.int64)),
        "on_time_ratio_12m": pa.array(np.round(on_time, 4), mask=np.isnan(on_time)),
        "last_payment_date": pa.array(last_payment_day.astype(np.int32), pa.date32(), mask=~has_payment),
        "last_payment_amount": pa.array(last_payment_amount, mask=~has_payment),
        "promises_made_90d": pa.array(made.astype(np.int64)), "promises_kept_90d": pa.array(kept.astype(np.int64)),
        "promises_broken_90d": pa.array(broken.astype(np.int64)), "promises_broken_30d": pa.array(broken_30d.astype(np.int64)),
        "promise_date": pa.array(np.where(open_promise, promise_date, 0).astype(np.int32), pa.date32(),
                                 mask=~open_promise),
        "reported_overdue_reason": _enum("overdue_reason", reason),
        "litigation_clause": pa.array(litigation_clause), "contact_records_kept": pa.array(records_kept),
        "demand_notices_sent": pa.array(notices.astype(np.int64)),
        "repossessed": pa.array(repossessed),
        "currency": _enum("currency", us.astype(np.int8)),
        # customer
        "name": person["name"], "id_number": person["id_number"], "phone": person["phone"],
        "address": person["address"],
        "age": pa.array(age), "country": _enum("country", us.astype(np.int8)),
        "region": _take([x[0] for x in regions], reg), "time_zone": _take([x[2] for x in regions], reg),
        "bureau_score": pa.array(bureau, mask=~bureau_valid),
        "credit_history_months": pa.array(history), "credit_inquiries_6m": pa.array(inquiries),
        "delinquencies_24m": pa.array(past_delinq), "monthly_income": pa.array(income),
        "total_debt": pa.array(total_debt), "debt_to_income": pa.array(np.round(dti, 4)),
        "card_utilization": pa.array(np.round(card_util, 4), mask=~card_valid),
        "monthly_spending": pa.array(spending), "spending_change_3m": pa.array(spending_change),
        "employment_status": _enum("employment_status", emp),
        "employment_years": pa.array(employment_years),
        "phone_valid": pa.array(phone_valid), "has_third_party_contact": pa.array(third_party),
        "consent_automated_contact": pa.array(consent), "contact_opt_out": pa.array(opt_out),
        "connected_calls_today": pa.array(connected_today.astype(np.int64)),
        "call_attempts_today": pa.array(attempts_today.astype(np.int64)),
        "consecutive_failed_attempts": pa.array(failed_streak.astype(np.int64)),
        "calls_7d": pa.array(calls_7d.astype(np.int64)), "sms_today": pa.array(sms_today.astype(np.int64)),
        "last_conversation_at": _instants(last_conversation, spoke),
        "open_complaints": pa.array(complaints.astype(np.int64)),
        # vehicle
        "plate_number": person["plate_number"],
        "brand": _take([b[0] for b in cat.ALL_BRANDS], brand_idx),
        "model": _take([m for m, _ in flat_models], model_flat),
        "model_year": pa.array(model_year), "energy_type": _enum("energy_type", energy),
        "mileage_km": pa.array(mileage), "condition_grade": _enum("condition_grade", condition),
        "purchase_price": pa.array(price),
        "insurance_expiry_date": pa.array(ins_expiry.astype("datetime64[D]"), pa.date32(), mask=~ins_known),
        "gps_status": _enum("gps_status", gps),
        "gps_offline_hours": pa.array(np.where(has_device, offline_h, 0.0), mask=~has_device),
        "gps_last_ping_at": _instants(last_ping, has_device),
        "gps_lat": pa.array(np.round(lat, 5), mask=~has_device), "gps_lon": pa.array(np.round(lon, 5), mask=~has_device),
        "home_geofence_km": pa.array(fence), "km_from_home": pa.array(np.round(km, 2), mask=~has_device),
        "geofence_exits_30d": pa.array(exits.astype(np.int64)), "violations_90d": pa.array(violations.astype(np.int64)),
    }
    batch = pa.RecordBatch.from_arrays([cols[f.name] for f in _BOOK_SCHEMA], schema=book_schema(as_of))
    history = {
        "clock": clock, "collection": coll, "dpd": dpd,
        "phone_valid": phone_valid, "sms_today": sms_today, "contract_day": contracted,
        "oldest_unpaid_day": oldest_unpaid_due.astype(np.int64),
        "payment_at": pay_at, "payment_amount": pay_amount,
        "promise_amount": np.round(monthly_payment, 2),
        "complaints": complaints, "consent": consent, "opt_out": opt_out, "reason": reason,
        "insurance_known": ins_known, "insurance_expiry": ins_expiry.astype(np.int64), "insurance_policies": policies,
        "gps": gps, "last_ping": last_ping, "lat": np.round(lat, 5), "lon": np.round(lon, 5),
        "exits": exits, "violations": violations, "cause": cause.astype(np.int8), "history": mode,
        # the latent state the forward simulation (kernel.synth.outcomes) continues from
        "borrower": borrower, "month0": month0, "missed": missed.astype(np.int64), "due": due.astype(np.int64),
        "redrawn": path.redrawn, "path": path, "days": days,
        "notices": notices, "repossessed": repossessed,
    }
    return batch, history


CAUSES = proc.CAUSES
#: chance a motor policy lapses at an anniversary (not renewed): current, behind at the time
INSURANCE_LAPSE, INSURANCE_LAPSE_BEHIND = 0.015, 0.25
#: share of loans in their first 7 months that are fraudulent (never meant to pay: a first-
#: payment default, written off within 8 months, so an open book holds only young ones)
FRAUD_SHARE = 0.004
_REASON = {name: i for i, name in enumerate(ENUMS["overdue_reason"])}


def _cause_weights(emp, quality, income, payment) -> np.ndarray:
    """The odds of each true cause of a new delinquency (rows × CAPACITY, WILLINGNESS,
    OPERATIONAL, DISPUTE, cumulative): lost capacity (unemployment, illness, a failed
    business — more for the unemployed, the self-employed and weak credit), unwillingness
    (more where income covers the instalment), a forgotten instalment (good payers), a
    dispute over the car or the contract."""
    n = quality.shape[0]
    cap = 0.55 * np.where(emp == 2, 5.0, 1.0) * np.where(emp == 1, 1.4, 1.0) * np.exp(-0.3 * quality)
    will = 0.13 * np.where(income >= 3 * payment, 1.5, 0.6)
    oper = 0.20 * np.where(quality > 0, 1.4, 0.7)
    disp = np.full(n, 0.05)
    return np.cumsum(np.stack([cap, will, oper, disp], axis=1), axis=1)


def _recorded_reason(rng, cause, emp, phone_valid) -> np.ndarray:
    """reported_overdue_reason from the true cause: what the debtor tells the collector."""
    n = cause.shape[0]
    u, v = rng.random(n), rng.random(n)
    r = _REASON
    hardship = np.where(emp == 1, np.where(v < 0.6, r["BUSINESS_FAILURE"], r["INCOME_LOSS"]),
                        np.where(v < 0.75, r["INCOME_LOSS"], r["ILLNESS"]))
    told = np.select(
        [cause == 1, cause == 2, cause == 3, cause == 4, cause == 5],
        [np.where(u < 0.70, hardship, r["UNKNOWN"]),
         np.select([u < 0.35, u < 0.60], [r["WILFUL_REFUSAL"], hardship], r["UNKNOWN"]),
         np.where(u < 0.60, r["FORGOT"], r["UNKNOWN"]),
         np.where(u < 0.85, r["DISPUTE"], r["UNKNOWN"]),
         np.where(u < 0.40, r["FRAUD_SUSPECTED"], r["UNKNOWN"])],
        r["NONE"])
    # a debtor nobody reaches tells nothing half the time
    return np.where((cause > 0) & ~phone_valid & (rng.random(n) < 0.5), r["UNKNOWN"], told)


_VIN_CHARS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"))
_VIN_YEAR = "ABCDEFGHJKLMNPRSTVWXY123456789"  # model-year code, cycling every 30 years from 1980
_ID_AREAS = np.array([440305, 320106, 330106, 370102, 410105, 510107, 420103, 110105, 310115])


def _draw_people(rng, n: int) -> dict[str, np.ndarray]:
    """Every draw the personal-data columns make, in their order (the book draws them even
    when it leaves those columns empty, so that the columns after them stay the same)."""
    d = {}
    d["vin_body"] = rng.integers(0, len(_VIN_CHARS), (n, 5))
    d["cn_surname"] = rng.integers(0, len(cat.CN_SURNAMES), n)
    d["cn_given"] = rng.integers(0, len(cat.CN_GIVEN), n)
    d["us_given"] = rng.integers(0, len(cat.US_GIVEN), n)
    d["us_surname"] = rng.integers(0, len(cat.US_SURNAMES), n)
    d["ssn"] = (rng.integers(100, 900, n), rng.integers(10, 100, n), rng.integers(1000, 10000, n))
    d["cn_id"] = (rng.choice(_ID_AREAS, n), rng.integers(1, 13, n), rng.integers(1, 29, n), rng.integers(0, 1000, n))
    d["us_phone"] = (rng.integers(200, 1000, n), rng.integers(200, 1000, n), rng.integers(0, 10_000, n))
    d["cn_phone"] = (rng.integers(0, 5, n), rng.integers(0, 1_000_000_000, n))
    d["house"] = rng.integers(1, 999, n)
    d["plate"] = (rng.integers(0, 10, n), rng.integers(0, 100_000, n))
    return d


def _people(d: dict, us, reg, brand_idx, model_year, idx, birth_year) -> dict[str, pa.Array]:
    """The personal-data columns from their draws."""
    n = idx.shape[0]
    dash = pa.array(np.full(n, "-"))
    cn_name = _join(_take(cat.CN_SURNAMES, d["cn_surname"]), _take(cat.CN_GIVEN, d["cn_given"]))
    us_name = _join(_take(cat.US_GIVEN, d["us_given"]), pa.array(np.full(n, " ")), _take(cat.US_SURNAMES, d["us_surname"]))
    a, b, c = d["ssn"]
    us_phone, cn_phone = d["us_phone"], d["cn_phone"]
    return {
        "customer_id": _join(pa.array(np.full(n, "CU")), _digits(idx, 10)),
        "vin": _vin(d["vin_body"], brand_idx, model_year, idx),
        "name": pc.if_else(pa.array(us), us_name, cn_name),
        "id_number": pc.if_else(pa.array(us), _join(_digits(a, 3), dash, _digits(b, 2), dash, _digits(c, 4)),
                                _cn_id(d["cn_id"], birth_year)),
        "phone": pc.if_else(pa.array(us),
                            _join(pa.array(np.full(n, "+1-")), _digits(us_phone[0], 3), dash, _digits(us_phone[1], 3),
                                  dash, _digits(us_phone[2], 4)),
                            _join(pa.array(np.full(n, "1")), _take(("3", "5", "7", "8", "9"), cn_phone[0]),
                                  _digits(cn_phone[1], 9))),
        "address": _join(_take([x[6] for x in _REGIONS], reg), pa.array(np.full(n, " No.")), _digits(d["house"], 1)),
        "plate_number": _join(_take([x[3] for x in _REGIONS], reg), _take(list("ABCDEFGHJK"), d["plate"][0]),
                              _digits(d["plate"][1], 5)),
    }


def _vin(body_codes, brand_idx, model_year, idx) -> pa.Array:
    """17-character VINs: maker prefix, random body, model-year letter, serial from the index."""
    n = idx.shape[0]
    wmi = np.array(["LVS", "LFV", "LHG", "LGX", "LRW", "WBA", "WDD", "LFV", "LB3", "LS5", "LGW", "LSG",
                    "LGB", "LJ1", "LW4",                                  # the Chinese market's makers
                    "1FT", "1G1", "4T1", "5J6", "1N4", "KM8", "KNA", "1C4", "1C6", "5YJ"])[brand_idx]
    body = _fast_rows(_VIN_CHARS[body_codes])
    year = np.array(list(_VIN_YEAR))[(model_year - 1980) % 30]
    return _join(pa.array(wmi), pa.array(body), pa.array(np.full(n, "X")), pa.array(year),
                 pa.array(np.full(n, "Z")), _digits(idx % 1_000_000, 6))


def _fast_rows(chars: np.ndarray) -> np.ndarray:
    """Join the characters of each row (a 2-D array of 1-char strings) without a Python loop."""
    return chars.astype("U1").view(f"U{chars.shape[1]}").ravel()


_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


def _cn_id(drawn, birth_year) -> pa.Array:
    """18-digit resident ID numbers with a valid GB 11643 check character."""
    n = birth_year.shape[0]
    digits = np.empty((n, 17), np.int64)
    area, month, day, seq = drawn
    start = 0
    for value, width in ((area, 6), (birth_year, 4), (month, 2), (day, 2), (seq, 3)):
        for d in range(width):
            digits[:, start + d] = (value // 10 ** (width - 1 - d)) % 10
        start += width
    check = _ID_CHECK[(digits * _ID_WEIGHTS).sum(axis=1) % 11]
    text = _fast_rows(digits.astype("U1"))
    return _join(pa.array(text), pa.array(check))


def iter_book(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF) -> Iterator[pa.RecordBatch]:
    """Yield the book as record batches of at most :data:`CHUNK` rows."""
    if accounts < 0:
        raise ValueError("accounts: must not be negative")
    for chunk in range((accounts + CHUNK - 1) // CHUNK):
        rows = min(CHUNK, accounts - chunk * CHUNK)
        # always draw a whole chunk so that a row never depends on the size of the book
        batch = _chunk(seed, chunk, CHUNK, as_of)
        yield batch if rows == CHUNK else batch.slice(0, rows)


def generate(accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF) -> pa.Table:
    """The whole book in memory (use :func:`iter_book` or :func:`write_book` for large books)."""
    return pa.Table.from_batches(list(iter_book(accounts, seed, as_of)), schema=book_schema(as_of))


def write_book(path, accounts: int, seed: int = 0, as_of: dt.date = DEFAULT_AS_OF, progress=None) -> int:
    """Stream the book to a Parquet file batch by batch (memory stays bounded); returns rows.

    The file is written under a temporary name beside it and renamed when complete
    (:func:`kernel.files.open_output`), so a failed or interrupted run never leaves a
    truncated book behind; a symlink keeps pointing at the new file, and ``-`` or a special
    file (a FIFO, /dev/stdout) is written in place, never replaced.
    """
    import pyarrow.parquet as pq

    from ..files import open_output

    rows = 0
    with open_output(str(path)) as sink, pq.ParquetWriter(sink, book_schema(as_of), compression="zstd") as writer:
        for batch in iter_book(accounts, seed, as_of):
            writer.write_batch(batch)
            rows += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
    return rows
