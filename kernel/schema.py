"""The data contract: every Arrow schema postloan reads or writes, in one place.

Each column is declared once with its Arrow type, unit, nullability, whether it is
personal data (PII) and what it means. The kernel decides on the *book*: one row per
account, the join ``accounts ⋈ customers ⋈ vehicles`` (keys appear once). Rulesets and
models read book columns by their bare names.

Conventions
- Money (unit ``money``) is in the account's currency, ``currency`` (CNY, USD), as float64
  units of it (yuan, dollars): a book never mixes currencies within a row, and no amount is
  ever shown in another currency than its account's.
- Rates are fractions (0.0599 = 5.99 %), not percentages.
- Dates are ``date32`` (days); instants are ``timestamp[us, tz=UTC]``.
- Enumerations are ``dictionary<int8, string>``; a plain ``string`` column with the same
  members is accepted on input. Their members are listed in :data:`ENUMS`.
- PII columns never reach logs, metrics or error messages (see ``Column.pii``).
- Limits: a string column holds at most ``max_length`` characters (default
  :data:`DEFAULT_MAX_LENGTH`) and an identifier at least ``min_length`` (1); a float is finite; numbers, dates and instants lie within the
  column's range (its own, else its unit's in :data:`UNIT_RANGES`, else the contract's
  :data:`DATE_RANGE` / :data:`INSTANT_RANGE`); a time zone column (``zone``) holds an IANA
  time zone zoneinfo knows.

The module is pure declarations plus the one validator every entry point uses —
:func:`validate` for Arrow tables, :func:`record_checker` for one record of Python scalars,
the same rules and the same words — and holds no business logic. Its messages name the
column and row and never quote a value of a string or personal-data column — but for an
unknown time zone shaped like a zone's name (``Mars/Olympus``, ``UTC+8``), which they quote.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple

import pyarrow as pa

from .errors import PostloanError
from .localtime import known_zone

__all__ = [
    "Column", "ENUMS", "ACCOUNTS", "CUSTOMERS", "VEHICLES", "EVENTS", "STATE", "EXPERIMENT", "INPUT", "DECISIONS", "ACTIONS",
    "BOOK", "TABLES", "SchemaError", "Violation", "validate", "record_checker", "check_value", "columns",
    "pii_columns", "describe", "logical_type", "DEFAULT_MAX_LENGTH", "UNIT_RANGES", "DATE_RANGE",
    "INSTANT_RANGE",
]

TS = pa.timestamp("us", tz="UTC")
ENUM = pa.dictionary(pa.int8(), pa.string())
UTC = dt.timezone.utc

#: Characters a string column holds at most unless it declares its own ``max_length``.
DEFAULT_MAX_LENGTH = 256
#: (lowest, highest) value of a number column by unit, unless the column declares its own.
#: They reject what no loan book holds (a negative amount or count, a 1,000-year delay), not
#: what is merely unusual.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "money": (0, 1e12), "count": (0, 1_000_000), "days": (0, 36_500), "months": (0, 1_200),
    "years": (0, 150), "km": (0, 1e7), "hours": (0, 1e7),
}
#: Every date and instant of the contract lies in these ranges (the kernel's date arithmetic
#: and protobuf's Timestamp are safe well beyond them).
DATE_RANGE = (dt.date(1900, 1, 1), dt.date(2199, 12, 31))
INSTANT_RANGE = (dt.datetime(1900, 1, 1, tzinfo=UTC), dt.datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))


class Violation(NamedTuple):
    """One way a table or record breaks the contract: the column, the first offending row
    (None for the column as a whole or for a record) and what is wrong — never the value
    of a string or personal-data column."""

    field: str
    row: int | None
    message: str


class SchemaError(PostloanError, ValueError):
    """A table does not match the contract; ``field`` names the (first) offending column,
    ``row`` its first offending row, ``violations`` every offending column found."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None,
                 violations: Iterable[Violation] = ()):
        super().__init__(message)
        self.field = field
        self.row = row
        self.violations = list(violations) or ([Violation(field, row, message)] if field else [])


@dataclass(frozen=True)
class Column:
    """One column of the contract, with its limits (see the module's docstring)."""

    name: str
    type: pa.DataType
    unit: str            # "money", "days", "km", "ratio", "count", "" for identifiers/labels
    nullable: bool
    pii: bool
    doc: str
    enum: str | None = None     # key into ENUMS when the column is an enumeration
    max_length: int | None = None   # strings: most characters (default DEFAULT_MAX_LENGTH)
    minimum: Any = None             # numbers, dates, instants: lowest value allowed (default: by unit / type)
    maximum: Any = None             # … highest value allowed
    min_length: int = 0             # strings: fewest characters (1 for identifiers: "" names nothing)
    zone: bool = False              # strings: an IANA time zone zoneinfo knows

    @property
    def is_text(self) -> bool:
        """A free-text string column (not an enumeration)."""
        return self.enum is None and pa.types.is_string(self.type)

    @property
    def length_limit(self) -> int | None:
        """Characters a value may hold at most (text columns), else None."""
        return (self.max_length or DEFAULT_MAX_LENGTH) if self.is_text else None

    @property
    def value_range(self) -> tuple[Any, Any] | None:
        """(lowest, highest) value allowed, either None for no bound; None for columns
        without an order (text, enumerations, bools)."""
        t = self.type
        if self.enum or not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date(t)
                             or pa.types.is_timestamp(t)):
            return None
        if self.minimum is not None or self.maximum is not None:
            return self.minimum, self.maximum
        if pa.types.is_date(t):
            return DATE_RANGE
        if pa.types.is_timestamp(t):
            return INSTANT_RANGE
        return UNIT_RANGES.get(self.unit, (None, None))

    def field(self) -> pa.Field:
        meta = {"unit": self.unit, "pii": str(self.pii).lower(), "doc": self.doc}
        if self.enum:
            meta["enum"] = ",".join(ENUMS[self.enum])
        return pa.field(self.name, self.type, nullable=self.nullable, metadata=meta)


# Enumeration members, in order (order matters: rulesets may combine enums with max/min).
ENUMS: dict[str, tuple[str, ...]] = {
    "product": ("NEW_CAR_LOAN", "USED_CAR_LOAN", "FINANCE_LEASE"),
    "repayment_method": ("EQUAL_INSTALLMENT", "EQUAL_PRINCIPAL"),
    "overdue_reason": ("NONE", "UNKNOWN", "INCOME_LOSS", "ILLNESS", "BUSINESS_FAILURE",
                       "DISPUTE", "FORGOT", "WILFUL_REFUSAL", "FRAUD_SUSPECTED"),
    "employment_status": ("EMPLOYED", "SELF_EMPLOYED", "UNEMPLOYED", "RETIRED", "STUDENT"),
    "country": ("CN", "US"),
    "currency": ("CNY", "USD"),
    "energy_type": ("ICE", "HEV", "PHEV", "BEV"),
    "condition_grade": ("A", "B", "C", "D", "E"),
    "gps_status": ("ONLINE", "OFFLINE", "TAMPERED", "NO_DEVICE"),
    # The ledger's event kinds (docs/ledger.md). Members are only ever appended: the ledger
    # stores kinds by name, but a reordering would change what max/min mean to a ruleset.
    "event_kind": ("PAYMENT", "CONTACT_ATTEMPT", "PROMISE_TO_PAY", "DISPUTE_OPENED", "DISPUTE_RESOLVED",
                   "COMPLAINT_OPENED", "COMPLAINT_CLOSED", "CEASE_REQUESTED", "ATTORNEY_REPRESENTED",
                   "BANKRUPTCY_FILED", "BANKRUPTCY_CLOSED", "DECEASED", "CONSENT_GRANTED", "CONSENT_REVOKED",
                   "OPT_OUT", "HARDSHIP_DECLARED", "HARDSHIP_ENDED", "GPS_PING", "GPS_TAMPER", "GEOFENCE_EXIT",
                   "INSURANCE_RENEWED", "VIOLATION", "DEMAND_NOTICE_SENT", "REPOSSESSION_ORDERED",
                   "REPOSSESSED", "DISPOSAL_NOTICE_SENT", "REDEEMED", "VEHICLE_SOLD",
                   # compliance holds and legal bases (issue 12; docs/compliance.md)
                   "COMPLAINT_EXTENDED", "EMPLOYER_PROHIBITS_CONTACT", "WORK_HOURS_INCONVENIENT",
                   "MILITARY_SERVICE_STARTED", "MILITARY_SERVICE_ENDED", "COURT_ORDER_GRANTED",
                   "ARBITRAL_AWARD_GRANTED", "SURRENDER_AGREED", "CURE_NOTICE_SENT", "GPS_CONSENT_GRANTED",
                   "GPS_CONSENT_REVOKED", "MORTGAGE_REGISTERED", "CONTRACT_NOTARISED", "ARBITRATION_AGREED"),
    "contact_channel": ("PHONE", "SMS", "VOICE_BOT", "FIELD_VISIT", "EMAIL", "LETTER", "THIRD_PARTY"),
    # UNREPORTED: a contact-time reservation that expired without its outcome (docs/ledger.md)
    "contact_outcome": ("NO_ANSWER", "BUSY", "WRONG_PARTY", "RIGHT_PARTY", "VOICEMAIL", "DELIVERED", "FAILED",
                        "UNREPORTED"),
    "repossession_stage": ("NONE", "ORDERED", "REPOSSESSED", "NOTICE_SENT", "REDEEMED", "SOLD"),
    "action_channel": ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "LEGAL_REVIEW",
                       "THIRD_PARTY_CONTACT", "REPOSSESSION", "DISPOSAL"),
    "compliance_outcome": ("KEEP", "DEFER", "BLOCK"),
    "language": ("zh", "en"),
    # champion/challenger arms (kernel.evaluation.arms, docs/evaluation.md): members are only
    # ever appended; NONE is an account no configured arm owns (or no experiment at all)
    "experiment_arm": ("NONE", "CHAMPION", "CHALLENGER", "CHALLENGER_2", "CHALLENGER_3", "HOLDOUT"),
}


def _c(name, type_, unit, nullable, pii, doc, enum=None, *, max_length=None, minimum=None, maximum=None,
       min_length=0, zone=False) -> Column:
    if enum is not None:
        assert enum in ENUMS, enum
    return Column(name, type_, unit, nullable, pii, doc, enum, max_length, minimum, maximum, min_length, zone)


I64, F64, BOOL, DATE, STR = pa.int64(), pa.float64(), pa.bool_(), pa.date32(), pa.string()

ACCOUNTS: tuple[Column, ...] = (
    _c("account_id", STR, "", False, False, "Loan account identifier; primary key.", max_length=64, min_length=1),
    _c("customer_id", STR, "", False, False, "Borrower; joins customers.customer_id.", max_length=64, min_length=1),
    _c("vin", STR, "", False, False, "Financed vehicle (17-char VIN); joins vehicles.vin.", max_length=32, min_length=1),
    _c("product", ENUM, "", False, False, "Loan product.", "product"),
    _c("contract_date", DATE, "date", False, False, "Date the loan contract was signed and paid out."),
    _c("first_due_date", DATE, "date", False, False, "Due date of installment 1; later ones fall on the same day of month."),
    _c("term_months", I64, "months", False, False, "Number of monthly installments (12–60).", minimum=1, maximum=600),
    _c("principal", F64, "money", False, False, "Amount financed at payout."),
    _c("annual_rate", F64, "ratio", False, False, "Nominal annual interest rate; monthly rate = annual_rate / 12.", minimum=0, maximum=1),
    _c("repayment_method", ENUM, "", False, False, "等额本息 EQUAL_INSTALLMENT or 等额本金 EQUAL_PRINCIPAL.", "repayment_method"),
    _c("installment_amount", F64, "money", False, False, "Amount of the current (next unpaid) scheduled installment."),
    _c("installments_due", I64, "count", False, False, "Installments whose due date fell before the snapshot date."),
    _c("installments_paid", I64, "count", False, False, "Installments fully paid."),
    _c("outstanding_principal", F64, "money", False, False, "Principal not yet repaid (due or not)."),
    _c("next_due_date", DATE, "date", True, False, "Due date of the next unpaid installment; null once the loan is repaid."),
    _c("dpd", I64, "days", False, False, "Days past due of the oldest unpaid installment at the snapshot (0 = current)."),
    _c("overdue_installments", I64, "count", False, False, "Installments past due and unpaid."),
    _c("overdue_principal", F64, "money", False, False, "Principal part of the past-due installments."),
    _c("overdue_interest", F64, "money", False, False, "Interest part of the past-due installments."),
    _c("overdue_amount", F64, "money", False, False, "overdue_principal + overdue_interest (penalty excluded)."),
    _c("penalty_rate_daily", F64, "ratio", False, False, "Contractual penalty (罚息) rate per day on the overdue amount.", minimum=0, maximum=1),
    _c("penalty_interest", F64, "money", False, False, "Charges for paying late, accrued and unpaid: penalty interest (罚息) at penalty_rate_daily, or late fees where the contract charges those (the US book: a fee per installment paid after its grace period, penalty_rate_daily 0)."),
    _c("dpd_30d_ago", I64, "days", False, False, "dpd 30 days before the snapshot (roll rates, rising DPD)."),
    _c("max_dpd_12m", I64, "days", False, False, "Highest dpd seen in the last 12 months."),
    _c("times_overdue_12m", I64, "count", False, False, "Installments paid late or missed in the last 12 months."),
    _c("on_time_ratio_12m", F64, "ratio", True, False, "Share of installments due in 12 months paid on time; null before the first due date.", minimum=0, maximum=1),
    _c("last_payment_date", DATE, "date", True, False, "Date of the last payment received; null if none yet."),
    _c("last_payment_amount", F64, "money", True, False, "Amount of the last payment received."),
    _c("promises_made_90d", I64, "count", False, False, "Promises to pay (承诺还款) recorded in 90 days."),
    _c("promises_kept_90d", I64, "count", False, False, "Promises to pay kept in 90 days."),
    _c("promises_broken_90d", I64, "count", False, False, "Promises to pay broken in 90 days."),
    _c("promises_broken_30d", I64, "count", False, False, "Promises to pay broken in 30 days."),
    _c("promise_date", DATE, "date", True, False, "Date of the open promise to pay, if any."),
    _c("reported_overdue_reason", ENUM, "", False, False, "Overdue reason recorded by the collector (NONE when current).", "overdue_reason"),
    _c("litigation_clause", BOOL, "", False, False, "The contract carries a dispute-resolution (litigation/arbitration) clause."),
    _c("contact_records_kept", BOOL, "", False, False, "Every collection contact is recorded and retained (evidence)."),
    _c("demand_notices_sent", I64, "count", False, False, "Formal written demand notices (催告函) delivered."),
    _c("repossessed", BOOL, "", False, False, "The vehicle has been repossessed and is held for disposal."),
    _c("currency", ENUM, "", True, False, "ISO 4217 currency of every amount of the account, its customer and its vehicle (CNY, USD); null: the currency of the country (CN: CNY, US: USD).", "currency"),
)

CUSTOMERS: tuple[Column, ...] = (
    _c("customer_id", STR, "", False, False, "Customer identifier; primary key.", max_length=64, min_length=1),
    _c("name", STR, "", False, True, "Full name.", max_length=128),
    _c("id_number", STR, "", False, True, "National ID number (居民身份证号) or SSN.", max_length=32),
    _c("phone", STR, "", False, True, "Primary mobile number.", max_length=32),
    _c("address", STR, "", False, True, "Home address."),
    _c("age", I64, "years", False, False, "Age at the snapshot."),
    _c("country", ENUM, "", False, False, "Country whose collection law applies.", "country"),
    _c("region", STR, "", False, False, "Province / state code (e.g. CN-GD, US-CA).", max_length=16),
    _c("time_zone", STR, "", False, False, "IANA time zone of the debtor (Asia/Shanghai, America/New_York…).", max_length=64,
       zone=True),
    _c("bureau_score", I64, "points", True, False, "Credit bureau score, 300–900; null if no file.", minimum=0, maximum=1000),
    _c("credit_history_months", I64, "months", False, False, "Age of the oldest credit line."),
    _c("credit_inquiries_6m", I64, "count", False, False, "Hard credit inquiries in 6 months."),
    _c("delinquencies_24m", I64, "count", False, False, "Delinquencies of 30+ days on other credit in 24 months."),
    _c("monthly_income", F64, "money", False, False, "Verified monthly income."),
    _c("total_debt", F64, "money", False, False, "Outstanding debt across all lenders, this loan included."),
    _c("debt_to_income", F64, "ratio", False, False, "Monthly debt service / monthly income.", minimum=0),
    _c("card_utilization", F64, "ratio", True, False, "Revolving credit used / limit; null with no cards.", minimum=0),
    _c("monthly_spending", F64, "money", False, False, "Average monthly card and wallet spending, last 3 months."),
    _c("spending_change_3m", F64, "ratio", False, False, "Spending of the last 3 months / the 3 before, minus 1.", minimum=-1),
    _c("employment_status", ENUM, "", False, False, "Employment status.", "employment_status"),
    _c("employment_years", F64, "years", False, False, "Years with the current employer or business."),
    _c("phone_valid", BOOL, "", False, False, "The primary number reaches the debtor (not disconnected)."),
    _c("has_third_party_contact", BOOL, "", False, False, "An emergency / third-party contact is on file."),
    _c("consent_automated_contact", BOOL, "", False, False, "Consent to automated calls and messages (voice bot, SMS)."),
    _c("contact_opt_out", BOOL, "", False, False, "The debtor asked not to be contacted by phone (Reg F opt-out)."),
    _c("connected_calls_today", I64, "count", False, False, "Collection calls answered today (debtor's local day)."),
    _c("call_attempts_today", I64, "count", False, False, "Call attempts to the primary number today, answered or not."),
    _c("consecutive_failed_attempts", I64, "count", False, False, "Unanswered attempts since the last connected call."),
    _c("calls_7d", I64, "count", False, False, "Call attempts about this debt in the last 7 days."),
    _c("sms_today", I64, "count", False, False, "Collection messages sent today."),
    _c("last_conversation_at", TS, "instant", True, False, "Last time the debtor was actually reached (a conversation)."),
    _c("open_complaints", I64, "count", False, False, "Complaints about collection not yet closed."),
)

VEHICLES: tuple[Column, ...] = (
    _c("vin", STR, "", False, False, "Vehicle identification number; primary key.", max_length=32, min_length=1),
    _c("plate_number", STR, "", False, True, "Licence plate (personal data once linked to the owner).", max_length=16),
    _c("brand", STR, "", False, False, "Make, e.g. Toyota, BYD.", max_length=64),
    _c("model", STR, "", False, False, "Model name.", max_length=64),
    _c("model_year", I64, "year", False, False, "Model year.", minimum=1900, maximum=2100),
    _c("energy_type", ENUM, "", False, False, "Powertrain.", "energy_type"),
    _c("mileage_km", F64, "km", False, False, "Odometer at the last reading."),
    _c("condition_grade", ENUM, "", False, False, "Inspection grade A (as new) … E (salvage).", "condition_grade"),
    _c("purchase_price", F64, "money", False, False, "Invoice price when new (or when bought, for used cars)."),
    _c("insurance_expiry_date", DATE, "date", True, False, "Expiry of the current motor insurance policy; null if none known."),
    _c("gps_status", ENUM, "", False, False, "GPS tracker state.", "gps_status"),
    _c("gps_offline_hours", F64, "hours", True, False, "Hours since the tracker's last ping at the snapshot; null with no device."),
    _c("gps_last_ping_at", TS, "instant", True, False, "Time of the last GPS ping."),
    _c("gps_lat", F64, "degrees", True, True, "Latitude of the last ping (personal data: location).", minimum=-90, maximum=90),
    _c("gps_lon", F64, "degrees", True, True, "Longitude of the last ping (personal data: location).", minimum=-180, maximum=180),
    _c("home_geofence_km", F64, "km", False, False, "Radius of the home geofence around the registered address."),
    _c("km_from_home", F64, "km", True, False, "Distance of the last ping from the geofence centre."),
    _c("geofence_exits_30d", I64, "count", False, False, "Geofence exits in 30 days."),
    _c("violations_90d", I64, "count", False, False, "Traffic violations recorded in 90 days."),
)

BOOK_KEYS = ("customer_id", "vin")


def _join(*tables: tuple[Column, ...]) -> tuple[Column, ...]:
    seen: dict[str, Column] = {}
    for table in tables:
        for col in table:
            if col.name in seen:
                assert col.name in BOOK_KEYS, f"column {col.name} declared twice"
                continue
            seen[col.name] = col
    return tuple(seen.values())


#: One row per account: what the kernel decides on.
BOOK: tuple[Column, ...] = _join(ACCOUNTS, CUSTOMERS, VEHICLES)

#: What happened to an account: the ledger's input (kernel.ledger, docs/ledger.md). Typed
#: columns, no JSON payload: which columns a kind needs is in ``kernel.ledger.events.KINDS``.
EVENTS: tuple[Column, ...] = (
    _c("event_id", STR, "", False, False, "Unique event id, the idempotency key: a replayed event changes nothing.",
       max_length=128, min_length=1),
    _c("account_id", STR, "", False, False, "Account the event concerns.", max_length=64, min_length=1),
    _c("kind", ENUM, "", False, False, "What happened.", "event_kind"),
    _c("at", TS, "instant", False, False, "When it happened (the state is derived in the order of at, whatever the order of arrival)."),
    _c("recorded_at", TS, "instant", True, False, "When the ledger stored it (set on ingest; a given value is ignored)."),
    _c("amount", F64, "money", True, False, "PAYMENT and VEHICLE_SOLD: the amount; PROMISE_TO_PAY: the amount promised."),
    _c("promise_date", DATE, "date", True, False, "PROMISE_TO_PAY: the date the debtor promised to pay by."),
    _c("channel", ENUM, "", True, False, "CONTACT_ATTEMPT: how; CONSENT_GRANTED / CONSENT_REVOKED / OPT_OUT: the channel concerned (null: every channel).", "contact_channel"),
    _c("outcome", ENUM, "", True, False, "CONTACT_ATTEMPT: what came of it (RIGHT_PARTY is a conversation).", "contact_outcome"),
    _c("lat", F64, "degrees", True, True, "GPS_PING: latitude (personal data: reduced to state on ingest)."),
    _c("lon", F64, "degrees", True, True, "GPS_PING: longitude (personal data: reduced to state on ingest)."),
    _c("expiry_date", DATE, "date", True, False, "INSURANCE_RENEWED: expiry of the renewed policy."),
    _c("reservation_id", STR, "", True, False, "CONTACT_ATTEMPT: the CheckContact reservation this attempt used, if any.", max_length=64),
    _c("agent", STR, "", True, False, "Collector, agency or system that acted (attribution).", max_length=64),
)

#: Per-account state derived from the ledger's events as of a moment (kernel.ledger.state,
#: docs/ledger.md). Columns marked "replaces the book's" carry the same meaning as the book
#: column of that name and replace it when a decision reads state (docs/ledger.md, Precedence).
STATE: tuple[Column, ...] = (
    _c("account_id", STR, "", False, False, "Account.", max_length=64, min_length=1),
    _c("state_at", TS, "instant", False, False, "The moment the state is derived as of."),
    _c("ledger_events", I64, "count", False, False, "Events of the account the ledger holds up to state_at (0: the ledger does not know it)."),
    # contact
    _c("call_attempts_today", I64, "count", False, False, "Call attempts (PHONE, VOICE_BOT) on the debtor's local day, answered or not; replaces the book's."),
    _c("connected_calls_today", I64, "count", False, False, "Calls today that reached the debtor (RIGHT_PARTY; UNREPORTED counts, the cautious reading); replaces the book's."),
    _c("unanswered_attempts_today", I64, "count", False, False, "Call attempts today that did not reach the debtor."),
    _c("consecutive_failed_attempts", I64, "count", False, False, "Call attempts since the last one that reached the debtor; replaces the book's."),
    _c("calls_7d", I64, "count", False, False, "Call attempts on the 7 local days ending today; replaces the book's."),
    _c("sms_today", I64, "count", False, False, "SMS sent on the debtor's local day; replaces the book's."),
    _c("last_conversation_at", TS, "instant", True, False, "Last call that reached the debtor (within the look-back); replaces the book's."),
    _c("last_contact_attempt_at", TS, "instant", True, False, "Last contact attempt of any channel."),
    _c("last_field_visit_at", TS, "instant", True, False, "Last field visit (any outcome)."),
    _c("field_visits_30d", I64, "count", False, False, "Field visits in 30 days."),
    _c("third_party_contacts_30d", I64, "count", False, False, "Contacts of third parties in 30 days."),
    _c("contact_attempts_30d", I64, "count", False, False, "Contact attempts of any channel in 30 days."),
    _c("right_party_contacts_30d", I64, "count", False, False, "Contact attempts that reached the debtor in 30 days."),
    # payments and promises
    _c("last_payment_date", DATE, "date", True, False, "Debtor-local date of the last payment; replaces the book's."),
    _c("last_payment_amount", F64, "money", True, False, "Amount of the last payment; replaces the book's."),
    _c("paid_30d", F64, "money", False, False, "Payments received in 30 days."),
    _c("promise_open", BOOL, "", False, False, "A promise to pay is open: its date plus the grace has not passed and it is not yet kept."),
    _c("promise_date", DATE, "date", True, False, "Date of the open promise to pay; replaces the book's."),
    _c("promise_amount", F64, "money", True, False, "Amount of the open promise."),
    _c("promise_paid", F64, "money", True, False, "Paid towards the open promise since it was made."),
    _c("promises_made_90d", I64, "count", False, False, "Promises to pay made in 90 days; replaces the book's."),
    _c("promises_kept_30d", I64, "count", False, False, "Promises kept (paid in full by the date plus grace) in 30 days."),
    _c("promises_kept_90d", I64, "count", False, False, "Promises kept in 90 days; replaces the book's."),
    _c("promises_broken_30d", I64, "count", False, False, "Promises broken (date plus grace passed, not paid in full) in 30 days; replaces the book's."),
    _c("promises_broken_90d", I64, "count", False, False, "Promises broken in 90 days; replaces the book's."),
    # holds
    _c("open_disputes", I64, "count", False, False, "Disputes opened and not resolved."),
    _c("dispute_opened_at", TS, "instant", True, False, "When the oldest open dispute was opened."),
    _c("open_complaints", I64, "count", False, False, "Complaints opened and not closed; replaces the book's."),
    _c("complaint_opened_at", TS, "instant", True, False, "When the oldest open complaint was opened."),
    _c("complaint_extensions", I64, "count", False, False, "Times the handling deadline of the oldest open complaint was extended (0 when none is open)."),
    _c("cease_requested", BOOL, "", False, False, "The debtor asked in writing to stop communication (FDCPA §805(c))."),
    _c("attorney_represented", BOOL, "", False, False, "The debtor is represented by an attorney for this debt."),
    _c("bankruptcy_open", BOOL, "", False, False, "A bankruptcy was filed and not closed (automatic stay)."),
    _c("deceased", BOOL, "", False, False, "The debtor is reported deceased."),
    _c("hardship", BOOL, "", False, False, "A hardship arrangement is declared and not ended."),
    _c("military_service", BOOL, "", False, False, "The debtor is in active military service (started and not ended; SCRA)."),
    _c("military_service_since", TS, "instant", True, False, "When the current military service started (null when not in service)."),
    _c("employer_prohibits_contact", BOOL, "", False, False, "The debtor said the employer prohibits contact at work (FDCPA §805(a)(3))."),
    _c("work_hours_inconvenient", BOOL, "", False, False, "The debtor said contact during working hours is inconvenient (FDCPA §805(a)(1))."),
    # consent and opt-out, per channel
    _c("consent_sms", BOOL, "", True, False, "Latest consent to SMS (null: never stated in the ledger)."),
    _c("consent_voice_bot", BOOL, "", True, False, "Latest consent to automated / artificial-voice calls (null: never stated)."),
    _c("consent_phone", BOOL, "", True, False, "Latest consent to calls to the mobile number (null: never stated)."),
    _c("consent_email", BOOL, "", True, False, "Latest consent to email (null: never stated)."),
    _c("consent_automated_contact", BOOL, "", True, False, "Consent to both SMS and voice bot, where the ledger states them; replaces the book's where not null."),
    _c("consent_gps", BOOL, "", True, False, "Latest separate consent to GPS tracking of the car (PIPL: whereabouts are sensitive; null: never stated)."),
    _c("opt_out_phone", BOOL, "", False, False, "The debtor opted out of calls (and has not consented since)."),
    _c("opt_out_sms", BOOL, "", False, False, "The debtor opted out of SMS."),
    _c("opt_out_email", BOOL, "", False, False, "The debtor opted out of email."),
    _c("contact_opt_out", BOOL, "", True, False, "Same as opt_out_phone where the ledger knows the account; replaces the book's."),
    # vehicle
    _c("gps_last_ping_at", TS, "instant", True, False, "Last GPS ping (null: none in the ledger); replaces the book's where not null."),
    _c("gps_offline_hours", F64, "hours", True, False, "Hours from the last ping to state_at; replaces the book's where not null."),
    _c("gps_status", ENUM, "", True, False, "TAMPERED (a tamper alert in the tamper window), OFFLINE (offline past the threshold) or ONLINE; null with no ping or alert; replaces the book's where not null.", "gps_status"),
    _c("gps_tamper_30d", I64, "count", False, False, "GPS tamper alerts in 30 days."),
    _c("geofence_exits_30d", I64, "count", False, False, "Geofence exits in 30 days; replaces the book's."),
    _c("violations_90d", I64, "count", False, False, "Traffic violations in 90 days; replaces the book's."),
    _c("insurance_expiry_date", DATE, "date", True, False, "Expiry of the latest renewed policy; replaces the book's where not null."),
    # repossession and disposal
    _c("demand_notices_sent", I64, "count", False, False, "Formal demand notices sent; replaces the book's."),
    _c("repossession_stage", ENUM, "", False, False, "Where the car is in repossession and disposal.", "repossession_stage"),
    _c("repossession_ordered_at", TS, "instant", True, False, "When repossession was ordered."),
    _c("repossessed_at", TS, "instant", True, False, "When the car was repossessed."),
    _c("disposal_notice_at", TS, "instant", True, False, "When the notice of disposition was sent."),
    _c("redeemed_at", TS, "instant", True, False, "When the debtor redeemed the car."),
    _c("sold_at", TS, "instant", True, False, "When the car was sold."),
    _c("sale_amount", F64, "money", True, False, "What the sale raised."),
    _c("repossessed", BOOL, "", False, False, "The car is held for disposal (stage REPOSSESSED or NOTICE_SENT); replaces the book's."),
    _c("cure_notice_at", TS, "instant", True, False, "When the last notice of the right to cure the default was sent."),
    _c("surrender_agreed_at", TS, "instant", True, False, "When the debtor last agreed in writing to hand the car over."),
    _c("court_order_at", TS, "instant", True, False, "When a court last authorised repossession or enforcement."),
    _c("arbitral_award_at", TS, "instant", True, False, "When an arbitral award for the debt was last made."),
    # the contract's enforcement routes, as recorded
    _c("mortgage_registered", BOOL, "", False, False, "The car's mortgage is registered for the lender (机动车抵押登记)."),
    _c("contract_notarised", BOOL, "", False, False, "The loan contract is notarised with enforcement effect (赋强公证)."),
    _c("arbitration_agreed", BOOL, "", False, False, "The parties agreed to arbitration (an arbitration clause or agreement)."),
    # temporal patterns (kernel.ledger.patterns): alerts rulesets read
    _c("alert_gps_offline_then_exit", BOOL, "", False, False, "The tracker went offline (offline gps_offline_after_hours or more, or a tamper alert) and then the car left its geofence within 48 hours, in the last 30 days ([ledger.patterns.gps_offline_then_exit])."),
    _c("alert_gps_offline_then_exit_at", TS, "instant", True, False, "When the latest such geofence exit happened."),
    _c("alert_promise_partial_silence", BOOL, "", False, False, "A promise to pay, then within 30 days a payment smaller than the promise, then no payment and no conversation (RIGHT_PARTY) for 7 days up to state_at ([ledger.patterns.promise_partial_silence])."),
    _c("alert_promise_partial_silence_at", TS, "instant", True, False, "When the latest such silence reached 7 days (the partial payment plus 7 days)."),
)

#: The fixed part of a decision row; every ruleset and model output follows as
#: ``<ruleset>.<output>`` / ``<model>.<output>`` columns plus ``<ruleset>.rule``.
DECISIONS: tuple[Column, ...] = (
    _c("account_id", STR, "", False, False, "Account decided.", max_length=64, min_length=1),
    _c("as_of", DATE, "date", False, False, "Decision date given with the request."),
    _c("bundle_hash", STR, "", False, False, "Content hash of the bundle that decided."),
)

ACTIONS: tuple[Column, ...] = (
    _c("account_id", STR, "", False, False, "Account the action is for.", max_length=64, min_length=1),
    _c("action", ENUM, "", False, False, "What to do.", "action_channel"),
    _c("priority", F64, "score", False, False, "Higher first; queues sort by it."),
    _c("earliest_at", TS, "instant", False, False, "Earliest time the action may happen."),
    _c("script_id", STR, "", True, False, "Template of the script (话术) used."),
    _c("language", ENUM, "", True, False, "Language of the script.", "language"),
    _c("script", STR, "", True, True, "Rendered script; may name the debtor (PII).", max_length=65_536),
    _c("outcome", ENUM, "", False, False, "Compliance outcome.", "compliance_outcome"),
    _c("reason_code", STR, "", True, False, "Why the action was deferred or blocked (e.g. CN_QUIET_HOURS)."),
    _c("next_allowed_at", TS, "instant", True, False, "When a deferred action may next be tried."),
    _c("policy", STR, "", True, False, "Policy that deferred or blocked it."),
)

#: Columns the pipeline adds to every decision's input besides the book and the state
#: (kernel.evaluation.arms): rulesets read them like book columns.
EXPERIMENT: tuple[Column, ...] = (
    _c("experiment_arm", ENUM, "", False, False, "Champion/challenger arm of the account: a stable hash of the account id into the slot ranges of [experiment.arms] (docs/evaluation.md); NONE without an experiment or outside every arm.", "experiment_arm"),
)

#: What a decision reads: the book, its counters replaced by the ledger's state, plus the
#: state's own columns (kernel.ledger.join) and the experiment's arm. Rulesets and models may
#: read any of these.
INPUT: tuple[Column, ...] = BOOK + tuple(c for c in STATE if c.name not in {b.name for b in BOOK}) + EXPERIMENT

TABLES: dict[str, tuple[Column, ...]] = {
    "accounts": ACCOUNTS, "customers": CUSTOMERS, "vehicles": VEHICLES, "book": BOOK,
    "events": EVENTS, "state": STATE, "experiment": EXPERIMENT, "input": INPUT, "decisions": DECISIONS, "actions": ACTIONS,
}

_BY_NAME = {name: {c.name: c for c in cols} for name, cols in TABLES.items()}


def columns(table: str = "book") -> dict[str, Column]:
    """The contract's columns of ``table`` by name."""
    try:
        return _BY_NAME[table]
    except KeyError:
        raise SchemaError(f"unknown table {table!r}; known: {', '.join(TABLES)}") from None


def pii_columns(table: str = "book") -> frozenset[str]:
    """Names of the personal-data columns of ``table`` (never logged)."""
    return frozenset(c.name for c in TABLES[table] if c.pii)


def arrow_schema(table: str = "book") -> pa.Schema:
    """The Arrow schema of ``table`` with per-field metadata (unit, pii, doc, enum)."""
    return pa.schema([c.field() for c in TABLES[table]], metadata={"postloan.table": table})


def logical_type(col: Column) -> str | dict:
    """The ruleset-language type of a contract column: int, float, bool, date, {enum: [...]}
    or ``"string"`` / ``"timestamp"`` for columns rulesets cannot read directly."""
    t = col.type
    if col.enum:
        return {"enum": list(ENUMS[col.enum])}
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return "string"


# -- the one validator ---------------------------------------------------------------------------
# Tables (validate) and single records (record_checker) break the same rules, worded the same
# way. No message quotes a value of a text or personal-data column: a request's strings may be
# anything (a name in the wrong column, a megabyte of junk), and messages reach logs.

REQUIRED = "required (the contract says it is never null)"


def _quotable(col: Column) -> bool:
    return not (col.pii or col.is_text or col.enum)


def _shown(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if abs(value) >= 1e7 and float(value).is_integer() and math.log10(abs(value)).is_integer():
            return f"{'-' if value < 0 else ''}1e{int(math.log10(abs(value)))}"
        if float(value).is_integer():
            return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
        return f"{value:g}"
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _range_text(col: Column) -> str:
    lo, hi = col.value_range
    if lo is not None and hi is not None:
        return f"{_shown(lo)} – {_shown(hi)}"
    return f"at least {_shown(lo)}" if lo is not None else f"at most {_shown(hi)}"


def _out_of_range(col: Column, value) -> str:
    shown = f"{_shown(value)} is " if _quotable(col) and value is not None else ""
    return f"{shown}outside the contract's range {_range_text(col)}"


def _too_long(col: Column, length: int) -> str:
    return f"{length:,} characters, more than the contract's {col.length_limit:,}"


#: an identifier column's value that names nothing
EMPTY_TEXT = "empty (an identifier needs at least one character)"


NOT_FINITE = "not a finite number (NaN or infinity; leave the value out for a null)"

#: what a zone's name is made of (IANA's names: ASCII letters, digits, "/", "_", "+", "-", a
#: letter first); only a value so shaped is quoted (a name or a phone number in the wrong
#: column is not: it would reach the logs)
_ZONE_SHAPED = re.compile(r"[A-Za-z][A-Za-z0-9/_+\-]*")


def _unknown_zone(value: str) -> str:
    if not value:
        return "empty, not an IANA time zone"
    shown = repr(value) if _ZONE_SHAPED.fullmatch(value) else f"a value of {len(value)} characters (not shown)"
    return f"{shown} is not an IANA time zone zoneinfo knows (e.g. Asia/Shanghai, America/New_York)"


def _not_member(col: Column) -> str:
    return f"not one of {', '.join(ENUMS[col.enum])}"


def _type_accepts(col: Column, actual: pa.DataType) -> bool:
    expected = col.type
    if col.enum:
        return (pa.types.is_string(actual) or pa.types.is_large_string(actual)
                or (pa.types.is_dictionary(actual) and (pa.types.is_string(actual.value_type)
                                                       or pa.types.is_large_string(actual.value_type))))
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):          # (not half floats: Arrow's kernels cannot compare them)
        return (pa.types.is_floating(actual) and actual.bit_width >= 32) or pa.types.is_integer(actual)
    if pa.types.is_date(expected):
        return pa.types.is_date(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or (
            pa.types.is_dictionary(actual) and pa.types.is_string(actual.value_type))
    return actual.equals(expected)


def _describe_type(col: Column) -> str:
    return f"enum {{{', '.join(ENUMS[col.enum])}}}" if col.enum else str(col.type)


def validate(data: pa.Table | pa.RecordBatch, table: str = "book", *, required: Iterable[str] | None = None,
             check_values: bool = True, source: str | None = None) -> None:
    """Check ``data`` against the contract's ``table``; raise :class:`SchemaError` naming the
    first offending column (and row, for a bad value), with every offending column in
    ``violations``.

    ``required`` limits the check to those columns (default: every column of the table);
    each must be present exactly once. Extra columns are allowed: they pass through,
    unchecked. With ``check_values``, each checked column's Arrow data must be well formed
    (offsets, dictionary indices, UTF-8: data read from outside may not be) — checked before
    anything computes on it — non-nullable columns must hold no nulls, enum columns only
    their members, text at most its ``length_limit`` characters, numbers, dates and instants
    lie within their ``value_range`` and floats be finite.
    """
    where = f"{source}: " if source else ""
    cols = columns(table)
    names = list(required) if required is not None else list(cols)
    problems: list[Violation] = []
    missing = [n for n in names if not data.schema.get_all_field_indices(n)]
    for name in missing:
        problems.append(Violation(name, None, f"missing column {name!r} (table {table})"))
    for name in names:
        if name in missing:
            continue
        found = len(data.schema.get_all_field_indices(name))
        if found > 1:
            problems.append(Violation(name, None, f"column {name!r} appears {found} times"))
            continue
        col = cols[name]
        actual = data.schema.field(name).type
        if not _type_accepts(col, actual):
            problems.append(Violation(name, None, f"column {name!r} has type {actual}, expected {_describe_type(col)}"))
            continue
        if check_values:
            problem = _check_values(col, data.column(name))
            if problem is not None:
                problems.append(problem)
    if not problems:
        return
    first = problems[0]
    if missing:            # listed first
        message = f"missing column {missing[0]!r} (table {table}" + (
            f"; {len(missing) - 1} more missing" if len(missing) > 1 else "") + ")"
        more = len(problems) - len(missing)
    else:
        message, more = first.message, len(problems) - 1
    if more > 0:
        message += f"; {more} more column{'s' if more > 1 else ''} with problems"
    raise SchemaError(where + message, field=first.field, row=first.row, violations=problems)


def _check_values(col: Column, arr) -> Violation | None:
    """The first problem of one column's values, or None."""
    import pyarrow.compute as pc

    name = col.name
    try:
        arr.validate(full=True)
    except (pa.ArrowException, UnicodeDecodeError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return Violation(name, None, f"column {name!r}: not valid Arrow data ({reason})")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        if not col.nullable:
            row = int(pc.index(pc.is_null(arr), True).as_py())
            return Violation(name, row, f"column {name!r} must not be null (first null at row {row})")
        if arr.null_count == len(arr):
            return None
    if col.enum:
        return _check_enum(arr, col)
    limit = col.length_limit
    if limit is not None:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        lengths = pc.utf8_length(arr)
        shortest, longest = pc.min_max(lengths).values()
        if longest.as_py() is not None and longest.as_py() > limit:
            row = int(pc.index(pc.greater(lengths, limit), True).as_py())
            return Violation(name, row, f"column {name!r} row {row}: {_too_long(col, lengths[row].as_py())}")
        if shortest.as_py() is not None and shortest.as_py() < col.min_length:
            row = int(pc.index(pc.less(lengths, col.min_length), True).as_py())
            return Violation(name, row, f"column {name!r} row {row}: {EMPTY_TEXT}")
        return _check_zones(arr, col) if col.zone else None
    bounds = col.value_range
    if bounds is None:
        return None
    bad = None
    if pa.types.is_floating(arr.type):
        bad = pc.invert(pc.is_finite(arr))
        if pc.any(bad).as_py():
            row = int(pc.index(bad, True).as_py())
            return Violation(name, row, f"column {name!r} row {row}: {NOT_FINITE}")
    outside = None
    for bound, compare in ((bounds[0], pc.less), (bounds[1], pc.greater)):
        scalar = _bound_scalar(bound, arr.type, below=compare is pc.less)
        if scalar is not None:
            side = compare(arr, scalar)
            outside = side if outside is None else pc.or_kleene(outside, side)
    if outside is not None and pc.any(outside).as_py():
        row = int(pc.index(outside, True).as_py())
        try:
            value = arr[row].as_py()
        except (OverflowError, ValueError):      # a date Python cannot hold (year 10000 and on)
            value = None
        return Violation(name, row, f"column {name!r} row {row}: {_out_of_range(col, value)}")
    return None


def _bound_scalar(bound, arrow_type: pa.DataType, below: bool):
    """``bound`` as a scalar of ``arrow_type`` to compare a column with; None when no value
    of that type can pass it (an int8 column is never above 10¹²)."""
    if bound is None:
        return None
    if pa.types.is_integer(arrow_type) and isinstance(bound, float):
        bound = math.ceil(bound) if below else math.floor(bound)
    try:
        return pa.scalar(bound, type=arrow_type)
    except (pa.ArrowInvalid, OverflowError, TypeError, ValueError):
        return None


def _check_zones(arr: pa.Array, col: Column) -> Violation | None:
    """The first row whose value is not a zone :func:`~kernel.localtime.known_zone` knows:
    one set lookup per distinct value (a book holds a handful of zones), in the order they
    first appear — so the first unknown one is the first offending row's."""
    import pyarrow.compute as pc
    for value in pc.unique(arr).to_pylist():
        if value is not None and not known_zone(value):
            row = int(pc.index(arr, value).as_py())
            return Violation(col.name, row, f"column {col.name!r} row {row}: {_unknown_zone(value)}")
    return None


def _check_enum(arr: pa.Array, col: Column) -> Violation | None:
    import pyarrow.compute as pc
    members = pa.array(ENUMS[col.enum], pa.string())
    values = arr.dictionary if pa.types.is_dictionary(arr.type) else arr
    bad = pc.and_kleene(pc.invert(pc.is_in(values, value_set=members)), pc.is_valid(values))
    if not pc.any(bad).as_py():
        return None
    if pa.types.is_dictionary(arr.type):
        # A dictionary may carry unused members; only referenced ones count.
        decoded = arr.dictionary_decode()
        bad = pc.and_kleene(pc.invert(pc.is_in(decoded, value_set=members)), pc.is_valid(decoded))
        if not pc.any(bad).as_py():
            return None
    row = int(pc.index(bad, True).as_py())
    return Violation(col.name, row, f"column {col.name!r} row {row}: {_not_member(col)}")


def record_checker(table: str = "book", prefix: str = "") -> Callable[[dict], list[Violation]]:
    """A function checking one record — a dict of Python scalars by column name, None for
    null (enumerations as member names, dates as ``datetime.date``, instants as aware
    ``datetime``) — against ``table``'s columns by the rules of :func:`validate`, returning
    one :class:`Violation` per offending column (field ``prefix + name``), in contract order.
    A column missing from the record is a null.

    Built once per table. A record that passes costs one comparison per column, kind by kind
    (the single-account path is latency-bound); only a record that fails is checked column by
    column for the words."""
    cols = TABLES[table]
    plan = [(col.name, prefix + col.name, col.nullable, _value_test(col)) for col in cols]

    def explain(record: dict) -> list[Violation]:
        found = []
        get = record.get
        for name, field, nullable, test in plan:
            value = get(name)
            if value is None:
                if not nullable:
                    found.append(Violation(field, None, REQUIRED))
                continue
            problem = test(value)
            if problem is not None:
                found.append(Violation(field, None, problem))
        return found

    def bounds(col: Column, floor, ceiling):
        lo, hi = col.value_range
        return (floor if lo is None else lo), (ceiling if hi is None else hi)

    required = tuple(c.name for c in cols if not c.nullable)
    texts = tuple((c.name, c.min_length, c.length_limit) for c in cols if c.is_text)
    zones = tuple(c.name for c in cols if c.zone)
    enums = tuple((c.name, frozenset(ENUMS[c.enum])) for c in cols if c.enum)
    bools = tuple(c.name for c in cols if pa.types.is_boolean(c.type))
    # ±float max, not ±inf: infinity must fail the comparison
    floats = tuple((c.name, *bounds(c, -sys.float_info.max, sys.float_info.max))
                   for c in cols if not c.enum and pa.types.is_floating(c.type))
    ints = tuple((c.name, *bounds(c, -(1 << 63), (1 << 63) - 1)) for c in cols if not c.enum and pa.types.is_integer(c.type))
    dates = tuple((c.name, *c.value_range) for c in cols if pa.types.is_date(c.type))
    instants = tuple((c.name, *c.value_range) for c in cols if pa.types.is_timestamp(c.type))

    def check(record: dict) -> list[Violation]:
        get = record.get
        try:
            for name in required:
                if get(name) is None:
                    return explain(record)
            for name, shortest, limit in texts:
                value = get(name)
                if value is not None and (type(value) is not str or not shortest <= len(value) <= limit):
                    return explain(record)
            for name in zones:
                value = get(name)
                if value is not None and not known_zone(value):
                    return explain(record)
            for name, members in enums:
                value = get(name)
                if value is not None and value not in members:
                    return explain(record)
            for name in bools:
                value = get(name)
                if value is not None and type(value) is not bool:
                    return explain(record)
            for name, lo, hi in floats:      # NaN fails every comparison
                value = get(name)
                if value is not None and (type(value) is bool or not lo <= value <= hi):
                    return explain(record)
            for name, lo, hi in ints:
                value = get(name)
                if value is not None and (type(value) is not int or not lo <= value <= hi):
                    return explain(record)
            for group in (dates, instants):  # a date against a datetime, naive against aware: TypeError
                for name, lo, hi in group:
                    value = get(name)
                    if value is not None and not lo <= value <= hi:
                        return explain(record)
        except TypeError:
            return explain(record)
        return []

    return check


def check_value(col: Column, value) -> str | None:
    """What is wrong with one non-null ``value`` for ``col`` by the contract's rules (None:
    nothing), in :func:`validate`'s words — for request fields outside a table's records
    (a valuation's region, a decision date)."""
    return _value_test(col)(value)


def _value_test(col: Column) -> Callable[[Any], str | None]:
    """The check of one non-null value of ``col``: None when it passes, else what is wrong."""
    t = col.type
    if col.enum:
        members = frozenset(ENUMS[col.enum])
        wrong = _not_member(col)
        return lambda value: None if value in members else wrong
    if col.is_text:
        limit, shortest, zone = col.length_limit, col.min_length, col.zone

        def text(value):
            if type(value) is not str:
                return f"expected a string, got {type(value).__name__}"
            if len(value) > limit:
                return _too_long(col, len(value))
            if len(value) < shortest:
                return EMPTY_TEXT
            return None if not zone or known_zone(value) else _unknown_zone(value)
        return text
    if pa.types.is_boolean(t):
        return lambda value: None if isinstance(value, bool) else f"expected a bool, got {type(value).__name__}"
    lo, hi = col.value_range or (None, None)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        is_float = pa.types.is_floating(t)

        def number(value):
            kind = type(value)
            if kind is bool or not (kind is int or (is_float and kind is float)):
                return f"expected {'a number' if is_float else 'an integer'}, got {kind.__name__}"
            if kind is float and not math.isfinite(value):
                return NOT_FINITE
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return _out_of_range(col, value)
            return None
        return number
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        is_instant = pa.types.is_timestamp(t)

        def moment(value):
            if is_instant:
                if not isinstance(value, dt.datetime):
                    return f"expected a datetime, got {type(value).__name__}"
                if value.tzinfo is None:
                    value = value.replace(tzinfo=UTC)
            elif not isinstance(value, dt.date) or isinstance(value, dt.datetime):
                return f"expected a date, got {type(value).__name__}"
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return _out_of_range(col, value)
            return None
        return moment
    return lambda value: None


def describe(table: str = "book") -> str:
    """A Markdown table documenting ``table`` (used to generate docs/data-contract.md)."""
    lines = [f"### {table}", "", "| column | type | unit | nullable | PII | limits | meaning |",
             "|---|---|---|---|---|---|---|"]
    for c in TABLES[table]:
        lines.append(f"| `{c.name}` | {_describe_type(c)} | {c.unit} | {'yes' if c.nullable else 'no'} | "
                     f"{'**PII**' if c.pii else ''} | {_describe_limits(c)} | {c.doc} |")
    return "\n".join(lines) + "\n"


def _describe_limits(col: Column) -> str:
    if col.length_limit is not None:
        chars = f"{col.min_length}–{col.length_limit} chars" if col.min_length else f"≤ {col.length_limit} chars"
        return f"{chars}, an IANA time zone" if col.zone else chars
    if col.value_range is None:
        return ""
    lo, hi = col.value_range
    finite = "finite" if pa.types.is_floating(col.type) else ""
    if lo is None and hi is None:
        return finite
    if isinstance(lo, dt.datetime) or isinstance(hi, dt.datetime):
        span = f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}"
    else:
        span = _range_text(col)
    return f"{finite}, {span}" if finite else span


def markdown() -> str:
    """docs/data-contract.md, generated from the declarations above."""
    head = ["# The data contract", "",
            "Generated from `kernel/schema.py`, the single source of truth; regenerate with",
            "`python -m kernel.schema > docs/data-contract.md` (a test fails when this page is stale).", "",
            "The kernel decides on the **book**: one row per account, the join of accounts, customers and",
            "vehicles (keys `customer_id` and `vin` appear once). Rulesets and models read book columns by",
            "their bare names. Money (unit `money`) is in the account's `currency` (CNY, USD: a",
            "Chinese loan in yuan, a US loan in dollars; amounts are never shown in another); rates are",
            "fractions; dates are `date32`; instants are UTC `timestamp[us]`; enumerations are",
            "`dictionary<int8, string>` (plain strings accepted on input). **PII** columns never reach logs,",
            "metrics or error messages.", ""]
    limits = ["## Limits", "",
              "Every entry point — `Decide`, `DecideBatch`, `Explain`, `Valuate`, the connectors and so",
              "`postloan decide` — checks its input with one validator (`kernel.schema.validate` for tables,",
              "`kernel.schema.record_checker` for one record), by the column limits in the tables below:",
              f"text holds at most the characters shown (default {DEFAULT_MAX_LENGTH}), and an identifier",
              "(`account_id`, `customer_id`, `vin`, `event_id`) at least one: an empty one names nothing",
              "(proto3 cannot tell an empty string from an unset one); floats are finite (NaN",
              "and infinity are refused: leave a value out for a null); numbers lie in their column's range,",
              f"else their unit's (below); dates lie in {DATE_RANGE[0]} – {DATE_RANGE[1]} and instants in the",
              "same days (UTC); a time zone (`time_zone`) is an IANA zone Python's `zoneinfo` knows",
              "(`Asia/Shanghai`, `America/New_York`, `UTC`; not `Mars/Olympus`, `UTC+8` or an empty",
              "text), checked once per distinct value. An error names the column and the row, never the",
              "value of a text or personal-data column — but for an unknown time zone shaped like a",
              "zone's name (ASCII letters, digits, `/ _ + -`), which it quotes.", "",
              "| unit | range |", "|---|---|"]
    limits += [f"| {unit} | {_shown(lo)} – {_shown(hi)} |" for unit, (lo, hi) in UNIT_RANGES.items()]
    enums = ["## Enumerations", "", "| enum | members (in order) |", "|---|---|"]
    enums += [f"| `{k}` | {', '.join(v)} |" for k, v in ENUMS.items()]
    body = [f"## {t}\n\n" + describe(t).split("\n", 2)[2]
            for t in ("accounts", "customers", "vehicles", "events", "state", "experiment", "decisions", "actions")]
    return "\n".join(head + limits) + "\n\n" + "\n".join(body) + "\n" + "\n".join(enums) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
