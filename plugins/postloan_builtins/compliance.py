"""Built-in compliance policies: holds, China's collection rules, US federal and state rules,
third-party contact, scripts, repossession and disposal, litigation preconditions.

Each policy here *declares* a rule — its name, the actions it judges, its parameters, its
reason codes, the sources it rests on and whom it binds (:class:`Rule`, rendered into
docs/compliance.md by :func:`rulebook`) — and the rule itself is a compiled function in
:mod:`.compliance_kernels`. The :class:`Engine` feeds those functions: it reads the
account's columns once per batch (book ⋈ ledger state), prepares the per-action facts (calls
planned before, what each script says) and the debtor's zones, then runs the policies of a
set in one compiled call — the pipeline fuses consecutive built-in policies of a set that
way; a policy's own :meth:`~CompiledPolicy.check` runs it alone through the same call.

Times are the debtor's local time (book column ``time_zone``, DST included) at the moment
the action would happen (``max(earliest_at, now)``); ``now`` is given to the pipeline, never
read from the clock.
"""
from __future__ import annotations

import array
import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import (ACTION, NULL_TIME, US_PER_DAY, ActionBatch, Batch, CompliancePolicy, Verdicts,
                              _datetime_us, _scalar_days, _scalar_us, _zone_table)
from kernel.schema import BOOK, ENUMS

from . import compliance_kernels as K
from . import screen_kernel

__all__ = [
    "Rule", "Engine", "ENGINE", "CompiledPolicy", "POLICIES", "rulebook", "screen_scripts",
    "QuietHours", "CallLimits", "ComplaintPause", "AutomatedConsent", "ThirdPartyContact", "RegFOptOut",
    "RegFRestrictedMedium", "RegFHours", "RegFConversation", "RegFCallFrequency", "LitigationPreconditions",
    "PromiseHold", "DisputeHold", "CeaseCommunication", "AttorneyRepresented", "BankruptcyStay", "SCRARepossession",
    "DeceasedHold", "HardshipHold", "TCPAConsent", "InconvenientTimes", "LimitationPeriod", "CNScriptContent",
    "USScriptContent", "SMSCap", "GPSConsent", "RepossessionBasis", "RightToCure", "DisposalNotice",
    "MassachusettsCalls", "CONTACT", "CALLS", "AUTOMATED", "ENFORCEMENT", "DEBT_TERMS", "mentions_debt",
    "OPERATORS", "IDENTITY_MARKERS", "VOICEMAIL_MARKERS", "settlement",
]

#: actions that contact a person (debtor or third party)
CONTACT = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT")
#: telephone calls to the debtor (a voice bot call is a call)
CALLS = ("PHONE", "VOICE_BOT")
#: automated contact, which needs the debtor's consent
AUTOMATED = ("SMS", "VOICE_BOT")
#: steps to enforce the debt
ENFORCEMENT = ("LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL")
ALL_ACTIONS = tuple(ACTION)

# --------------------------------------------------------------------------------------------
# The script screen: what a rendered script says
# --------------------------------------------------------------------------------------------

#: words that reveal a debt (a prefix for English words); a third-party script must contain none
DEBT_TERMS = ("逾期", "欠", "债", "催", "还款", "还钱", "罚息", "贷款", "车贷", "分期", "结清", "月供", "车款", "本金",
              "利息", "违约", "起诉", "诉讼", "法院", "律师函", "收车", "收走", "拖车", "扣车", "车要被", "车被", "征信",
              "账单", "拖欠",
              "debt", "overdue", "owe", "owing", "collect", "payment", "loan", "past due", "delinquen", "default",
              "penalt", "arrears", "lawsuit", "repossess", "repo ", "balance", "car note", "behind on",
              "installment", "late fee", "credit report")
#: English words that reveal a debt only as whole words ("late" but not "later")
DEBT_WORDS = ("late", "bill", "bills", "pay", "paid", "owes", "owed", "tow", "towed", "sue", "sued")
_DEBT_PATTERN = "(" + "|".join([re.escape(t) if not t.isascii() else r"\b" + re.escape(t) for t in DEBT_TERMS]
                               + [r"\b" + w + r"\b" for w in DEBT_WORDS]) + ")"
#: the same pattern for Python's re, for a few texts (re.ASCII: \b as in RE2, Arrow's engine)
_DEBT_RE = re.compile("(?i)" + _DEBT_PATTERN, re.ASCII)

#: the marker a script puts where the debtor's identity is confirmed: no debt before it
IDENTITY_MARKERS = ("【确认本人后】", "[Identity confirmed]")
#: the marker opening a voice bot's limited-content voicemail (Reg F § 1006.2(j)): no debt after it
VOICEMAIL_MARKERS = ("【语音留言】", "[Voicemail]")
_CHECKS = {
    "opt_out": r"(?i)(\b(reply|text)\s+stop\b|退订)",
    "recording": r"(?i)(录音|\brecorded\b|\brecording\b)",
    "paid_ignore": r"(?i)(如已还款请忽略|\bif you have already paid\b)",
    "anonymous": r"(?i)(客户服务中心|客服中心|\b(this is|calling from|i am from|i'm from)\s+(the\s+)?([\w-]+\s+)?customer service\b)",
    "threat": r"(黑名单|坐牢|拘留|子女|曝光|通讯录|刑事)",
}
_CHECK_RE = {name: re.compile(pattern, re.ASCII) for name, pattern in _CHECKS.items()}


def mentions_debt(texts: pa.Array, among: np.ndarray | None = None) -> np.ndarray:
    """Mask of the texts that contain a debt term (null → False); with ``among``, only the
    texts in that mask are searched (the others are False)."""
    n = len(texts)
    if n <= 16:                          # a request's few scripts: Python's re beats Arrow's per-call cost
        wanted = [True] * n if among is None else among.tolist()
        return np.array([w and t is not None and _DEBT_RE.search(t) is not None
                         for t, w in zip(texts.to_pylist(), wanted)], bool)
    if among is not None:
        out = np.zeros(n, bool)
        idx = among.nonzero()[0]
        if idx.size:
            out[idx] = mentions_debt(texts.take(pa.array(idx)))
        return out
    hits = pc.match_substring_regex(texts, _DEBT_PATTERN, ignore_case=True)
    return pc.fill_null(hits, False).to_numpy(zero_copy_only=False).astype(bool)


#: ASCII letters lowered, nothing else (lengths stay, so positions agree with the original)
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
#: non-ASCII characters whose lower case is ASCII or longer (the Kelvin sign, dotted İ) — or not
#: lowered at all by the regex engines' ASCII folding, while str.lower lowers them (any letter
#: outside ASCII is fine: it never matches an ASCII term either way)
_ODD_LOWER = re.compile("[\u212a\u0130\u212b]")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CJK_TERMS = tuple(t for t in DEBT_TERMS if not t.isascii())
_ASCII_TERMS = tuple(t.lower() for t in DEBT_TERMS if t.isascii())
_WHOLE_WORDS = tuple(w.lower() for w in DEBT_WORDS)
#: the literal checks (the others are small regexes): what each one's bit needs
_LITERAL_CHECKS = ((K.S_OPT_OUT_NOTICE, ("退订",)), (K.S_RECORDING_NOTICE, ("录音",)),
                   (K.S_PAID_IGNORE, ("如已还款请忽略",)), (K.S_ANONYMOUS, ("客户服务中心", "客服中心")),
                   (K.S_FALSE_THREAT, ("黑名单", "坐牢", "拘留", "子女", "曝光", "通讯录", "刑事")))
#: (bit, a word the lowered text must hold for the pattern to be worth running, the pattern)
_ENGLISH_CHECKS = ((K.S_OPT_OUT_NOTICE, "stop", re.compile(r"(?i)\b(reply|text)\s+stop\b", re.ASCII)),
                   (K.S_RECORDING_NOTICE, "record", re.compile(r"(?i)\b(recorded|recording)\b", re.ASCII)),
                   (K.S_PAID_IGNORE, "already paid", re.compile(r"(?i)\bif you have already paid\b", re.ASCII)),
                   (K.S_ANONYMOUS, "customer service",
                    re.compile(r"(?i)\b(this is|calling from|i am from|i'm from)\s+(the\s+)?([\w-]+\s+)?"
                               r"customer service\b", re.ASCII)))


#: the English terms as one pattern over lowered text, each alternative a literal (a whole
#: word followed by ``\b``) so that the search skips to the letters terms begin with; that a
#: term also starts a word is checked at each hit (:func:`_debt_at`: the first hit that does)
_ASCII_DEBT_RE = re.compile("|".join([re.escape(t) for t in _ASCII_TERMS] + [re.escape(w) + r"\b" for w in _WHOLE_WORDS]),
                            re.ASCII)


#: the Chinese terms as one pattern: a search finds the leftmost start of any of them (the same
#: position as the least of their ``str.find``s, one scan instead of one per term)
_CJK_DEBT_RE = re.compile("|".join(re.escape(t) for t in _CJK_TERMS))


def _debt_at(low: str, pos: int = 0) -> int:
    """The first start, at or after ``pos``, of a debt term in ASCII-lowered text (−1: none):
    the Chinese terms and the English ones (:data:`_ASCII_DEBT_RE`)."""
    m = _CJK_DEBT_RE.search(low, pos)
    first = m.start() if m is not None else -1
    search = _ASCII_DEBT_RE.search
    m = search(low, pos)
    while m is not None:                   # the first hit at a word's start (\b before a term's letter)
        at = m.start()
        if at == 0 or low[at - 1] not in _WORD:
            if first < 0 or at < first:
                first = at
            break
        m = search(low, at + 1)
    return first


def _screen_one(text: str | None) -> int:
    """The screen's bits for one script in plain Python: the screen as a reader would write
    it, the reference the compiled pass (:func:`_screen_text`, :func:`_screen_many`) is tested
    against (``test_the_compiled_screen_reads_many_scripts_as_the_plain_one_reads_each``)."""
    if text is None:
        return 0
    bits = K.S_HAS_SCRIPT
    for bit, words in _LITERAL_CHECKS:
        for w in words:
            if w in text:
                bits |= bit
                break
    # ASCII letters lowered (as RE2's and re's ASCII case folding); str.lower is far cheaper than
    # translate and gives the same text unless a non-ASCII letter lowers to ASCII or lengthens
    low = text.lower() if text.isascii() or not ("\u212a" in text or "\u0130" in text or "\u212b" in text) \
        else text.translate(_ASCII_LOWER)              # the characters of _ODD_LOWER: three finds beat its search
    for bit, word, pattern in _ENGLISH_CHECKS:
        if not bits & bit and word in low and pattern.search(text):
            bits |= bit
    first = _debt_at(low)
    if first >= 0:
        bits |= K.S_DEBT
        identity = min((p for p in (text.find(m) for m in IDENTITY_MARKERS) if p >= 0), default=len(text) + 1)
        if first < identity:
            bits |= K.S_DEBT_BEFORE_IDENTITY
    voicemail = min((p for p in (text.find(m) for m in VOICEMAIL_MARKERS) if p >= 0), default=-1)
    # the voicemail holds no debt: no term starts after its marker
    if voicemail >= 0 and (first < 0 or first <= voicemail and _debt_at(low, voicemail + 1) < 0):
        bits |= K.S_VOICEMAIL_OK
    return bits


def _screen_text(text: str) -> int:
    """The screen's bits for one script (not None): the compiled pass over its UTF-8 bytes
    (:func:`.screen_kernel.scan_text`, :func:`_screen_many`'s pass), then each English pattern
    the pass found the word of, in Python's ``re`` (as :func:`_screen_one` runs them)."""
    bits, words = screen_kernel.scan_text(np.frombuffer(text.encode(), np.uint8), _SCREEN_TABLE)
    if words:
        for bit, _, pattern in _ENGLISH_CHECKS:
            if words & bit and not bits & bit and pattern.search(text):
                bits |= bit
    return bits


def _matches(texts: pa.Array, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(texts, pattern), False).to_numpy(zero_copy_only=False).astype(bool)


def _screen_patterns():
    """Every literal the screen looks for, as the compiled screen's patterns (its table)."""
    S = screen_kernel
    patterns = [(w.encode(), False, S.P_LITERAL, bit) for bit, words in _LITERAL_CHECKS for w in words]
    patterns += [(t.encode(), False, S.P_DEBT, 0) for t in _CJK_TERMS]
    patterns += [(t.encode(), True, S.P_DEBT_PREFIX, 0) for t in _ASCII_TERMS]
    patterns += [(w.encode(), True, S.P_DEBT_WORD, 0) for w in _WHOLE_WORDS]
    patterns += [(m.encode(), False, S.P_IDENTITY, 0) for m in IDENTITY_MARKERS]
    patterns += [(m.encode(), False, S.P_VOICEMAIL, 0) for m in VOICEMAIL_MARKERS]
    patterns += [(word.encode(), True, S.P_WORD, bit) for bit, word, _ in _ENGLISH_CHECKS]
    return screen_kernel.build_table(patterns, (K.S_HAS_SCRIPT, K.S_DEBT, K.S_DEBT_BEFORE_IDENTITY, K.S_VOICEMAIL_OK))


_SCREEN_TABLE = _screen_patterns()
#: text above which the screen spreads over Numba's threads (≈ 5 ms of scanning on one thread,
#: about what starting the threads costs on a busy machine)
_PARALLEL_BYTES = 1 << 20


def _screen_many(texts: pa.Array) -> np.ndarray:
    """The screen's bits for many scripts: the compiled pass over their bytes
    (:mod:`.screen_kernel`: the same literals, boundaries and positions as :func:`_screen_one`),
    then each English pattern on the scripts holding its word (Arrow's RE2)."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(1, np.uint8)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    bits = np.empty(n, np.int64)
    words = np.empty(n, np.int64)
    scan = screen_kernel.scan_many if offsets[-1] - offsets[0] > _PARALLEL_BYTES else screen_kernel.scan
    scan(data, offsets, valid, _SCREEN_TABLE, bits, words)
    for bit, _, pattern in _ENGLISH_CHECKS:
        idx = np.flatnonzero((words & bit != 0) & (bits & bit == 0))
        if idx.size:
            bits[idx[_matches(arr.take(pa.array(idx)), pattern.pattern)]] |= bit
    return bits


def screen_scripts(texts: pa.Array, among: np.ndarray | None = None) -> np.ndarray:
    """What each script says, as the bits of :mod:`.compliance_kernels` (``S_*``); with
    ``among``, only the scripts in that mask are read (the others give 0)."""
    n = len(texts)
    out = np.zeros(n, np.int64)
    idx = np.arange(n) if among is None else np.flatnonzero(among)
    if idx.size == 0:
        return out
    if n <= 64:
        out[:] = _screen_listed(texts.to_pylist(), [True] * n if among is None else among.tolist())
        return out
    out[idx] = _screen_many(texts if idx.size == n else texts.take(pa.array(idx)))
    return out


def _screen_listed(listed: list, wanted: list) -> list[int]:
    """:func:`_screen_text` of a request's few scripts (``listed``: Python strings or None)
    where ``wanted`` (0 elsewhere); an account's calls share their script: read once."""
    seen: dict = {}
    out = []
    for text, w in zip(listed, wanted):
        if not w or text is None:
            out.append(0)
            continue
        bits = seen.get(text)
        if bits is None:
            bits = seen[text] = _screen_text(text)
        out.append(bits)
    return out


# --------------------------------------------------------------------------------------------
# Jurisdiction data
# --------------------------------------------------------------------------------------------

#: who collects: a third-party debt collector (bound by the FDCPA and Regulation F) or a
#: creditor collecting its own loans (bound by state law where it says so)
OPERATORS = ("third_party_collector", "creditor")
#: IANA zones of the US states that span two (a debtor known only by state may be in either);
#: every other state has one and the debtor's own ``time_zone`` covers it
US_STATE_ZONES = {
    "US-FL": ("America/New_York", "America/Chicago"), "US-IN": ("America/New_York", "America/Chicago"),
    "US-KY": ("America/New_York", "America/Chicago"), "US-MI": ("America/New_York", "America/Chicago"),
    "US-TN": ("America/New_York", "America/Chicago"), "US-KS": ("America/Chicago", "America/Denver"),
    "US-NE": ("America/Chicago", "America/Denver"), "US-ND": ("America/Chicago", "America/Denver"),
    "US-SD": ("America/Chicago", "America/Denver"), "US-TX": ("America/Chicago", "America/Denver"),
    "US-ID": ("America/Denver", "America/Los_Angeles"), "US-OR": ("America/Los_Angeles", "America/Denver"),
    "US-AZ": ("America/Phoenix", "America/Denver"), "US-AK": ("America/Anchorage", "America/Adak"),
}
#: states whose law requires every party's consent to record a call (the recording notice)
ALL_PARTY_RECORDING_STATES = ("US-CA", "US-FL", "US-IL", "US-MD", "US-MA", "US-MT", "US-NH", "US-PA", "US-WA")
#: states that give a consumer a right to cure a default before repossession: days of the
#: cure period after the notice (see docs/compliance.md for the statutes and how sure each is)
RIGHT_TO_CURE_DAYS = {"US-IA": 20, "US-KS": 20, "US-ME": 14, "US-MA": 21, "US-MO": 20, "US-SC": 20, "US-WV": 10,
                      "US-WI": 15}


# --------------------------------------------------------------------------------------------
# Rules: what the rulebook in docs/compliance.md says of each reason code
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One rule as a compliance officer reads it."""

    reason: str            # the reason code it gives
    jurisdiction: str      # CN, US, US-CA …, or "all"
    source: str            # the law or standard and its section
    binds: str             # whom it binds
    does: str              # what it does
    boundary: str          # where the line falls (the minute, the count, the day)
    sure: str              # how sure the citation is: well-known, recalled, unchecked, or the lender's policy


def _minutes(text: Any, where: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise PostloanError(f"{where}: expected a time of day HH:MM, got {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


class _Policy(CompliancePolicy):
    """A built-in policy with parameters from ``[policy."<name>"]`` in the configuration:
    whole numbers ≥ 0, times of day ``HH:MM`` (defaults written so), true/false, lists of
    region codes, and tables of region code → whole number."""

    defaults: Mapping[str, Any] = {}

    def __init__(self, **params):
        where = f'[policy."{self.name}"]'
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise PostloanError(f"{where}: unknown parameter {unknown[0]!r} "
                                f"(parameters: {', '.join(self.defaults) or 'none'})")
        self.params = {**self.defaults, **params}
        for key, default in self.defaults.items():
            value = self.params[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise PostloanError(f"{where} {key}: expected true or false, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise PostloanError(f"{where} {key}: expected a whole number ≥ 0, got {value!r}")
            elif isinstance(default, str) and re.fullmatch(r"\d\d:\d\d", default):
                _minutes(value, f"{where} {key}")
            elif isinstance(default, (list, tuple)):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise PostloanError(f"{where} {key}: expected a list of region codes, got {value!r}")
            elif isinstance(default, Mapping):
                if not isinstance(value, Mapping) or not all(
                        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                        for k, v in value.items()):
                    raise PostloanError(f"{where} {key}: expected a table of region code = whole number ≥ 0, "
                                        f"got {value!r}")
        self._where = where


# --------------------------------------------------------------------------------------------
# The engine: account features, per-action facts, zones → one compiled call
# --------------------------------------------------------------------------------------------

_BOOK_COLUMNS = frozenset(c.name for c in BOOK)
_ENUM_MEMBERS = {"litigation_missing": K.LITIGATION_MISSING}
_ENUM_INDEX: dict[str, dict] = {}
#: instants and dates a rule compares with local dates: the zone tables must cover them
_TIME_FEATURES = frozenset(name for name, kind, _ in K.FEATURES if kind == "time")
#: how far ahead of an action a rule may defer it (the zone tables cover it): a promise's date
#: (≤ 90 days), a cure period, a redemption window
_HORIZON_US = 400 * US_PER_DAY
#: actions per compiled call on large batches (bounds the feature matrix: features × chunk)
_CHUNK = 1 << 17
#: up to this many actions are judged on one thread: starting Numba's threads cost ≈ 7 ms on the
#: busy 2-core machine (measured: judge_many of 0 policies over 25,192 actions 6.7 ms, judge
#: 0.04 ms), ≈ 2,000 actions' verdicts
_SERIAL = 4096


def _members(kind: str) -> tuple[str, ...]:
    key = kind.split(":", 1)[1]
    return _ENUM_MEMBERS.get(key) or ENUMS[key]


def _convert_scalar(kind: str, value) -> int:
    """A record's value as the engine's int64."""
    if kind == "int":
        return 0 if value is None else int(value)
    if kind == "bool":
        return 1 if value else 0
    if kind == "tri":
        return -1 if value is None else (1 if value else 0)
    if kind == "time":
        return NULL_TIME if value is None else _scalar_us(value)
    if kind == "day":
        return NULL_TIME if value is None else _scalar_days(value)
    if value is None:
        return -1
    index = _ENUM_INDEX.get(kind)
    if index is None:
        index = _ENUM_INDEX[kind] = {m: i for i, m in enumerate(_members(kind))}
    return index.get(value, -1) if isinstance(value, str) else int(value)


def _convert_column(batch, kind: str, column: str) -> np.ndarray:
    """A batch column as the engine's int64 per account."""
    if kind == "int":
        return batch.int(column, 0)
    if kind == "bool":
        return batch.bool(column, False).astype(np.int64)
    if kind == "tri":
        return np.where(batch.valid(column), batch.bool(column, False), -1).astype(np.int64)
    if kind == "time":
        return batch.time_us(column)
    if kind == "day":
        return batch.days(column)
    return batch.enum(column, _members(kind)).astype(np.int64)


def _null_of(kind: str) -> int:
    return NULL_TIME if kind in ("time", "day") else -1 if kind in ("tri",) or kind.startswith("enum") else 0




class _Accounts:
    """Per-account values of one batch: from its records (one account as Python scalars: each
    accessor then gives a plain int) or its columns (int64 arrays, one value per account)."""

    def __init__(self, batch):
        self.batch = batch
        # one account: its values by column, the first source's (worked out once per batch)
        self.merged = batch.merged
        self.records = None if self.merged is None else (self.merged,)
        self.n = 1 if self.records is not None else batch.n

    def has(self, column: str) -> bool:
        if self.records is not None:
            return column in self.merged
        return self.batch.has(column)

    def value(self, column: str):
        return self.merged.get(column)

    def feature(self, k: int):
        """Feature ``k`` of every account. A feature read from no column present is null when
        all its columns are the ledger's (or a ruleset's) — the state as the book alone says
        it — and an error naming the column when one is a book column (fail closed)."""
        name, kind, columns = K.FEATURES[k]
        if self.records is not None:
            merged = self.merged
            for column in columns:
                if column in merged:
                    return _convert_scalar(kind, merged[column])
        else:
            for column in columns:
                if self.batch.has(column):
                    return _convert_column(self.batch, kind, column)
        if _REQUIRED[k]:
            raise PostloanError(f"column {columns[0]!r} is neither a book column nor a decision column of this batch")
        return _null_of(kind)

    def text(self, column: str) -> tuple[list, np.ndarray]:
        """A text column's distinct values and each account's index among them (−1: null)."""
        if self.records is not None:
            v = self.value(column)
            return ([v], np.zeros(1, np.int64)) if v is not None else ([], np.full(1, -1, np.int64))
        return self.batch.categories(column)

    def country(self):
        """Each account's country code (−1: null or unknown)."""
        if self.records is not None:
            return _convert_scalar("enum:country", self.value("country"))
        return self.batch.enum("country").astype(np.int64)

    def lookup(self, column: str, table: Mapping[str, int], default: int):
        """``table[value]`` of a text column per account (``default`` when absent or null)."""
        if self.records is not None:
            return table.get(self.value(column), default)
        names, index = self.text(column)
        lut = np.array([table.get(n, default) for n in names] + [default], np.int64)
        return lut[index]

    def where(self, condition, yes, no):
        """``np.where`` for arrays, a plain choice for one record's ints."""
        if self.records is not None:
            return yes if condition else no
        return np.where(condition, yes, no)


_REQUIRED = tuple(any(c in _BOOK_COLUMNS for c in columns) for _, _, columns in K.FEATURES)


#: each kind's conversion of a record's value ``v`` (not missing) to the engine's int64, as an
#: expression (the same as :func:`_convert_scalar`'s; ``I`` is an enum's index of members)
#: A record's own plain value is converted first, without a call: an int as it is, a str's code,
#: an aware datetime's µs (``_datetime_us``, what ``us`` gives it), a date's days
_KIND_EXPR = {"int": "v if type(v) is int else 0 if v is None else int(v)", "bool": "1 if v else 0",
              "tri": "-1 if v is None else (1 if v else 0)",
              "time": "instant_us(v) if type(v) is datetime and v.tzinfo is not None else NULL if v is None else us(v)",
              "day": "(v - EPOCH_DAY).days if type(v) is date else NULL if v is None else days(v)"}
_ENUM_EXPR = "I{k}.get(v, -1) if type(v) is str else -1 if v is None else (I{k}.get(v, -1) if isinstance(v, str) " \
             "else int(v))"
_MISSING = object()
_READERS: dict = {}


def _feature_reader(features: tuple[int, ...]):
    """:meth:`_Accounts.feature` of one account's record for each of ``features`` (indexes of
    :data:`K.FEATURES`), as one function ``read(record, out)`` writing each one's value into
    ``out[k]`` (the others are left as they are: a run's buffer of the compiled call's ``X``
    holds 0 there, never written): generated once per set of features, each feature's columns
    looked up in order and its value converted inline — no call per feature, no list to
    convert into an array."""
    found = _READERS.get(features)
    if found is not None:
        return found
    env = {"NULL": NULL_TIME, "us": _scalar_us, "days": _scalar_days, "MISSING": _MISSING, "Error": PostloanError,
           "instant_us": _datetime_us, "datetime": dt.datetime, "date": dt.date, "EPOCH_DAY": _EPOCH_DAY}
    lines = ["def read(m, out):"]
    for k in features:
        _, kind, columns = K.FEATURES[k]
        lines.append(f"    v = m.get({columns[0]!r}, MISSING)")
        for column in columns[1:]:
            lines += ["    if v is MISSING:", f"        v = m.get({column!r}, MISSING)"]
        if _REQUIRED[k]:
            env[f"E{k}"] = (f"column {columns[0]!r} is neither a book column nor a decision column of this "
                            f"batch")
            lines += ["    if v is MISSING:", f"        raise Error(E{k})"]
            missing = None
        else:
            missing = _null_of(kind)
        if kind.startswith("enum"):
            env[f"I{k}"] = {m: i for i, m in enumerate(_members(kind))}
            expr = _ENUM_EXPR.format(k=k)
        else:
            expr = _KIND_EXPR[kind]
        if missing is None:
            lines.append(f"    out[{k}] = {expr}")
        else:
            lines.append(f"    out[{k}] = {missing} if v is MISSING else {expr}")
    if not features:
        lines.append("    pass")
    exec(compile("\n".join(lines) + "\n", f"<features {len(features)}>", "exec"), env)
    if len(_READERS) > 256:
        _READERS.clear()
    found = _READERS[features] = env["read"]
    return found


def _derived_column(derived: list) -> np.ndarray:
    """One account's derived values as the compiled call's ``D`` (one column)."""
    return np.array(derived, np.int64).reshape(-1, 1)


@dataclass
class _Run:
    """What a run of policies needs, worked out once per run (the pipeline asks with the
    same policies for every request)."""

    kernels: np.ndarray
    scopes: np.ndarray
    params: np.ndarray
    base: np.ndarray
    packed: np.ndarray                      # the four above as one call takes them (K.pack_run)
    derived: int
    features: tuple[int, ...]
    time_features: tuple[int, ...]
    calls: bool
    sms: bool
    third: bool
    zones: bool
    needs: int                              # calls, sms and third as K.judge_one's bits (K.NEEDS_*)
    scripts: np.ndarray                     # per action code: whether a policy reads its script
    any_scripts: bool                       # whether any policy reads a script
    derivers: tuple                         # the policies with derived values, in order
    read_one: Any                           # one account's features (_feature_reader of ``features``)
    day_features: frozenset                 # the time features that are dates (days, not µs)
    script_codes: tuple = ()                # ``scripts`` as Python bools, by action code
    #: whether every deriver is a policy of this module, whose ``derive`` reads the account's
    #: country and region only: one account's derived values are then kept by those two
    derived_by_place: bool = False
    derived_seen: dict = field(default_factory=dict)
    #: one account's action codes as the compiled call's column, by their tuple (only read)
    codes_seen: dict = field(default_factory=dict)
    #: this thread's buffers of one account's compiled call (:meth:`buffers`)
    local: threading.local = field(default_factory=threading.local)

    def derived_of(self, batch: Batch) -> np.ndarray:
        """One account's derived values (:meth:`Engine._derive`) as the compiled call's
        column (read only: the rules never write an input) — kept by its country and region
        when only they are read (:attr:`derived_by_place`)."""
        if not self.derived_by_place:
            return _derived_column(Engine._derive(self, _Accounts(batch)))
        merged = batch.merged
        key = (merged.get("country"), merged.get("region"))
        try:
            found = self.derived_seen.get(key)
        except TypeError:                       # an unhashable value: derived (and refused) there
            return _derived_column(Engine._derive(self, _Accounts(batch)))
        if found is None:
            found = _derived_column(Engine._derive(self, _Accounts(batch)))
            if len(self.derived_seen) >= 1024:
                self.derived_seen.clear()
            self.derived_seen[key] = found
        return found

    def codes_of(self, codes: list) -> np.ndarray:
        """``codes`` as the compiled call's action column, kept by their tuple: a pipeline
        plans a few combinations of actions over and over (only read: the rules never write
        an input)."""
        key = tuple(codes)
        found = self.codes_seen.get(key)
        if found is None:
            found = np.array(codes, np.int64)
            if len(self.codes_seen) >= 512:
                self.codes_seen.clear()
            self.codes_seen[key] = found
        return found

    def buffers(self, m: int) -> "_OneCall":
        """This thread's buffers of one account's compiled call with ``m`` actions, made once
        and reused: a request pays for no array of its own (the verdicts are read back as
        Python lists before the call returns, and a thread makes one call at a time)."""
        local = self.local
        try:
            return local.by_m[m]
        except AttributeError:
            local.by_m = {}
            local.values = array.array("q", bytes(8 * len(K.FEATURES)))
        except KeyError:
            pass
        found = local.by_m[m] = _OneCall(local.values, m)
        return found


#: one action's scripts: none (the gate's question)
_NO_SCRIPT = [None]


class _OneCall:
    """One thread's inputs and outputs of one account's compiled call with ``m`` actions, for
    one run: the features (``values``, an ``array('q')`` the run's reader writes into, the
    ``X`` column viewing its memory — shared by every ``m``; the features no policy of the run
    reads stay 0), each action's instant (``at``, viewed as ``at_us``), the per-action facts
    (their rows are either never written — 0 — or written whole on every call: the script's
    screen here, the planned calls before each by the compiled call) and the verdicts."""

    __slots__ = ("values", "X", "at", "at_us", "facts", "out", "screened")

    def __init__(self, values: array.array, m: int):
        self.values = values
        self.X = np.frombuffer(values, np.int64).reshape(-1, 1)
        self.at = array.array("q", bytes(8 * m))
        self.at_us = np.frombuffer(self.at, np.int64)
        self.facts = np.zeros((K.N_ACTION_FACTS, m), np.int64)
        self.out = np.empty((4, m), np.int64)
        self.screened = False                   # whether the script row may hold a screen's bits


class Engine:
    """Runs compiled policies (:class:`CompiledPolicy`) on an :class:`ActionBatch`.

    The pipeline judges consecutive policies of one engine with one :meth:`judge` call (their
    verdicts combined in order, as it combines any policies); each policy's ``check`` is
    :meth:`verdicts` of itself alone."""

    def __init__(self):
        self._zones: dict = {}
        self._zones_one: dict = {}                  # one account's zone names → (covered from, to, tables)
        self._places_one: dict = {}                 # (zone, region or None, actions) → (zone names, zone ids)
        self._runs: dict = {}

    # -- the public protocol the pipeline uses ---------------------------------------------
    def judge(self, policies: Sequence["CompiledPolicy"], actions: ActionBatch):
        """``policies`` on ``actions``: (outcome int8, reason code object array, next allowed
        µs, policy name object array), combined in order (strictest wins, first reason, later
        deferral)."""
        m = actions.n
        run = self._run_of(policies)
        if m and actions.batch.merged is not None:      # one account's record (a request)
            outcome, reasons, until, names = self._judge_one(policies, run, actions.batch, actions.action.tolist(),
                                                             actions.at_us.tolist(), actions.listed_script())
            return (np.array(outcome, np.int8), np.array(reasons, dtype=object), np.array(until, np.int64),
                    np.array(names, dtype=object))
        outcome = np.zeros(m, np.int64)
        reason = np.empty(m, np.int64)
        reason.fill(-1)
        until = np.empty(m, np.int64)
        until.fill(NULL_TIME)
        winner = reason.copy()
        if m:
            self._judge(policies, run, actions, outcome, reason, until, winner)
        return self._named(policies, outcome, reason, until, winner)

    def judge_request(self, policies: Sequence["CompiledPolicy"], batch: Batch, action: np.ndarray,
                      earliest_at_us: np.ndarray, script) -> tuple[list, list, list, list] | None:
        """:meth:`judge` of one account's few actions (a request: ``batch`` holds one record,
        ``action`` 1 to 64 codes) given as the plan's columns — the action codes, earliest
        times and scripts (a list of str / None, an Arrow array or None) an
        :class:`ActionBatch` would be made of —, the verdicts as plain lists: (outcome codes,
        reason codes, next allowed µs, policy names). The pipeline's one-account path
        (:meth:`kernel.pipeline.Pipeline._judge_request`) checks them and makes the columns
        once, with no ActionBatch and no arrays read back; the same compiled call as
        :meth:`judge` (:meth:`_judge_one`). None when ``batch`` is not one record (columns)
        or there are not 1 to 64 actions: then :meth:`judge` is the way."""
        m = action.shape[0]
        if not 1 <= m <= 64 or batch.merged is None:
            return None
        if type(script) is not list:
            script = [None] * m if script is None or script.null_count == m else script.to_pylist()
        now = batch.now_us
        return self._judge_one(policies, self._run_of(policies), batch, action.tolist(),
                               [t if t > now else now for t in earliest_at_us.tolist()], script)

    def judge_action(self, policies: Sequence["CompiledPolicy"], batch: Batch, code: int,
                     at_us: int) -> tuple[int, str | None, int, str | None] | None:
        """:meth:`judge_request` of one action — code ``code``, at ``at_us`` (or the batch's
        moment if later), no script: the contact-time gate's question — its verdict as plain
        values (outcome code, reason code, next allowed µs, policy name): the same compiled
        call (:meth:`_judge_one`) without the plan's columns and lists around one action.
        None when ``batch`` is not one record."""
        if batch.merged is None:
            return None
        now = batch.now_us
        outcome, reasons, until, names = self._judge_one(policies, self._run_of(policies), batch, [code],
                                                         [at_us if at_us > now else now], _NO_SCRIPT)
        return outcome[0], reasons[0], until[0], names[0]

    def verdicts(self, policy: "CompiledPolicy", actions: ActionBatch) -> Verdicts:
        """One policy's verdicts (its ``check``)."""
        outcome, reasons, until, _ = self.judge([policy], actions)
        v = Verdicts(actions.n)
        v.outcome[:] = outcome
        v.next_allowed_us[:] = until
        codes = sorted({c for c in reasons.tolist() if c is not None})
        v.codes = codes
        index = {c: k for k, c in enumerate(codes)}
        v.reason[:] = [index.get(c, -1) if c is not None else -1 for c in reasons.tolist()]
        return v

    # -- inputs ---------------------------------------------------------------------------
    def _run_of(self, policies) -> _Run:
        key = tuple(policies)
        run = self._runs.get(key)
        if run is not None:
            return run
        width = max([len(p.param_values) for p in policies] + [1])
        params = np.zeros((len(policies), width), np.int64)
        base = np.full(len(policies), -1, np.int64)
        derived = 0
        for j, p in enumerate(policies):
            params[j, :len(p.param_values)] = p.param_values
            if p.DERIVED:
                base[j] = derived
                derived += p.DERIVED
        features = tuple(sorted({K.FEATURE_INDEX[f] for p in policies for f in p.FEATURES}))
        needs = {n for p in policies for n in p.NEEDS}
        scripts = np.zeros(len(ACTION), bool)
        for p in policies:
            for a in p.SCRIPTS:
                scripts[ACTION[a]] = True
        kernels = np.array([p.kernel for p in policies], np.int64)
        scopes = np.array([p.scope_bits for p in policies], np.int64)
        need_bits = sum(bit for name, bit in (("calls", K.NEEDS_CALLS), ("sms", K.NEEDS_SMS), ("third", K.NEEDS_THIRD))
                        if name in needs)
        run = _Run(kernels, scopes, params, base, K.pack_run(kernels, scopes, base, params), derived, features,
                   tuple(k for k in features if K.FEATURES[k][1] in ("time", "day")),
                   "calls" in needs, "sms" in needs, "third" in needs, "zones" in needs, need_bits,
                   scripts, bool(scripts.any()),
                   tuple(p for p in policies if p.DERIVED), _feature_reader(features),
                   frozenset(k for k in features if K.FEATURES[k][1] == "day"), tuple(scripts.tolist()),
                   all(type(p).__module__ == __name__ for p in policies if p.DERIVED))
        if len(self._runs) > 256:
            self._runs.clear()
        self._runs[key] = run
        return run

    def _judge(self, policies, run: _Run, actions, outcome, reason, until, winner) -> None:
        """Many accounts' actions (a batch of columns); one account's: :meth:`_judge_one`."""
        accounts = _Accounts(actions.batch)
        per_account = {k: accounts.feature(k) for k in run.features}
        derived = self._derive(run, accounts)
        m = actions.n
        at = actions.at_us
        action = actions.action.astype(np.int64)
        as_of = (actions.batch.as_of - _EPOCH_DAY).days
        zone, zst, zen, zts, zoff, zob = self._zone_inputs(run, accounts, actions, per_account)
        facts = np.zeros((K.N_ACTION_FACTS, m), np.int64)
        script = actions.script
        if run.any_scripts and script.null_count < m:     # a null script's screen is 0: nothing to read
            among = run.scripts[actions.action]
            if among.any():
                facts[K.A_SCRIPT] = screen_scripts(script, among)
        n_features = len(K.FEATURES)
        if run.calls or run.sms or run.third:       # planned calls, SMS, third-party contacts before each
            whole = K.Inputs(action, at, actions.rows, _NO_X, facts, _NO_D, run.params, run.base, zone, zst, zen, zts,
                             zoff, zob, actions.now_us, as_of)
            K.prepare_facts(whole, actions.rows, run.calls, run.sms, run.third, facts)
        for lo in range(0, m, _CHUNK):
            hi = min(lo + _CHUNK, m)
            rows = actions.rows[lo:hi]
            X = np.zeros((n_features, hi - lo), np.int64)
            for k, v in per_account.items():
                X[k] = v[rows] if isinstance(v, np.ndarray) else v
            D = np.zeros((len(derived), hi - lo), np.int64)
            for k, v in enumerate(derived):
                D[k] = v[rows] if isinstance(v, np.ndarray) else v
            inp = K.Inputs(action[lo:hi], at[lo:hi], np.arange(hi - lo, dtype=np.int64), X, facts[:, lo:hi], D,
                           run.params, run.base, zone[lo:hi], zst, zen, zts, zoff, zob, actions.now_us, as_of)
            judge = K.judge if hi - lo <= _SERIAL else K.judge_many
            judge(run.kernels, run.scopes, inp, outcome[lo:hi], reason[lo:hi], until[lo:hi], winner[lo:hi])

    @staticmethod
    def _derive(run: _Run, accounts: _Accounts) -> list:
        """The policies' derived values (``D``), each deriver's in order."""
        derived: list = []
        for p in run.derivers:
            rows = p.derive(accounts)
            if len(rows) != p.DERIVED:
                raise PostloanError(f"policy {p.name!r} derived {len(rows)} values, declared {p.DERIVED}")
            derived.extend(rows)
        return derived

    def _judge_one(self, policies, run: _Run, batch: Batch, codes: list, at: list, scripts: list):
        """:meth:`judge` of one account's record (the gRPC request's form) — its actions'
        codes, instants (µs, each ``max(earliest_at, now)``) and scripts, as lists —, as plain
        lists: the same inputs as :meth:`_judge` builds, written into this thread's buffers of
        the run (:meth:`_Run.buffers`) — the features by the run's generated reader, the
        derived values, action codes and zones kept per run by what they read — one compiled
        call (:func:`K.judge_one`: :func:`K.judge_planned`, the batch's functions) and the
        verdicts read back as plain values. Pinned to the batch path by
        ``test_one_accounts_verdicts_are_its_rows_of_the_batchs``."""
        merged = batch.merged
        m = len(codes)
        call = run.buffers(m)
        values = call.values
        run.read_one(merged, values)
        derived = run.derived_of(batch)
        call.at[:] = array.array("q", at)
        zone, zones = self._zone_inputs_one(run, merged, at, batch.now_us, values)
        facts = call.facts
        # a request's few scripts as plain values; a null script's screen is 0 (nothing to
        # read: the gate's question has none), as is one no policy of the run reads
        wanted = [run.script_codes[a] for a in codes] if run.any_scripts and scripts.count(None) != m else ()
        if any(wanted):
            facts[K.A_SCRIPT] = _screen_listed(scripts, wanted)
            call.screened = True
        elif call.screened:
            facts[K.A_SCRIPT] = 0
            call.screened = False
        out = call.out
        K.judge_one(run.packed, run.codes_of(codes), call.at_us, call.X, facts, derived, zone, zones, batch.now_us,
                    (batch.as_of - _EPOCH_DAY).days, run.needs, out)
        outcome, reason, until, winner = out.tolist()
        reasons = [None] * m
        names = [None] * m
        for i, j in enumerate(winner):
            if j >= 0:
                p = policies[j]
                reasons[i] = p.reason_of(reason[i])
                names[i] = p.name
        return outcome, reasons, until, names

    def _zone_inputs_one(self, run: _Run, merged: Mapping, at: list, now_us: int, values) -> tuple:
        """:meth:`_zone_inputs` of one account's record (``merged``; ``at``: each action's
        instant, ``values``: its features): each action's zone ids, kept by the zone names,
        region and number of actions they are made of (the arrays are only read: the compiled
        rules never write an input), and its zones' tables packed in one array
        (:func:`K.pack_zones`), the last ones when they cover the span."""
        name = merged.get("time_zone")
        if name is None:
            raise PostloanError("column 'time_zone': null at account 0")
        m = len(at)
        region = merged.get("region") if run.zones else None
        place = (name, region, m)
        try:
            found = self._places_one.get(place)
        except TypeError:                           # an unhashable region: worked out each time
            place, found = None, None
        if found is None:
            zone_names = [name]
            ids = [0, -1, -1]
            if run.zones:
                for k, extra in enumerate(US_STATE_ZONES.get(region, ())):
                    if extra not in zone_names:
                        zone_names.append(extra)
                    ids[1 + k] = zone_names.index(extra)
            found = (tuple(zone_names), np.array(ids * m, np.int64).reshape(m, 3))
            if place is not None:
                if len(self._places_one) > 1024:
                    self._places_one.clear()
                self._places_one[place] = found
        zone_names, zone = found
        # the span: every action and deferral ahead, and every instant a rule converts
        lo = min(min(at), now_us)
        days = run.day_features
        for k in run.time_features:
            v = values[k]
            if v != NULL_TIME:
                if k in days:
                    v *= US_PER_DAY
                if v < lo:
                    lo = v
        hi = max(at) + _HORIZON_US
        hit = self._zones_one.get(zone_names)
        if hit is not None and hit[0] <= lo and hi <= hit[1]:
            return zone, hit[2]
        return zone, self._zone_tables(zone_names, lo, hi, one=True)

    def _zone_inputs(self, run: _Run, accounts: _Accounts, actions: ActionBatch, per_account):
        """Each action's zones (its debtor's, then the state's when a policy reads both) and
        the zones' offset tables, concatenated, covering every instant a rule looks up."""
        m = actions.n
        at = actions.at_us
        zone = np.full((m, 3), -1, np.int64)
        names, index = accounts.text("time_zone")
        if (index < 0).any():
            raise PostloanError(f"column 'time_zone': null at account {int(np.flatnonzero(index < 0)[0])}")
        zone_names = list(names)
        zone[:, 0] = index[actions.rows]
        if run.zones:
            regions, rindex = accounts.text("region")
            extra = []
            for region in regions:
                ids = []
                for name in US_STATE_ZONES.get(region, ()):
                    if name not in zone_names:
                        zone_names.append(name)
                    ids.append(zone_names.index(name))
                extra.append((ids + [-1, -1])[:2])
            zone[:, 1:] = np.array(extra + [[-1, -1]], np.int64)[rindex[actions.rows]]
        low = None
        for k in run.time_features:
            v = per_account[k]
            v = v if isinstance(v, np.ndarray) else np.array([v], np.int64)
            known = v[v != NULL_TIME]
            if known.size:
                first = int(known.min()) * (US_PER_DAY if K.FEATURES[k][1] == "day" else 1)
                low = first if low is None else min(low, first)
        first_at, last_at = int(at.min()), int(at.max())
        # the span: every action and deferral ahead, and every instant a rule converts
        lo = min(first_at, actions.now_us)
        if low is not None:
            lo = min(lo, low)
        return (zone, *self._zone_tables(zone_names, lo, last_at + _HORIZON_US))

    def _zone_tables(self, zone_names, lo: int, hi: int, one: bool = False):
        """The offset tables of ``zone_names`` covering [lo, hi], concatenated: (starts,
        ends, transition instants, offsets, offsets' starts); ``one``: one account's zones,
        the same packed in one array (:func:`K.pack_zones`, what :func:`K.judge_one` takes),
        kept as its last tables with the span all of them cover."""
        tables = [_zone_table(name, lo, hi) for name in zone_names]
        key = tuple((name, t[0], t[1]) for name, t in zip(zone_names, tables))   # a table's span names its content
        built = self._zones.get(key)
        if built is None:
            starts = [t[2] for t in tables]
            offsets = [t[3] for t in tables]
            zst = np.cumsum([0] + [s.shape[0] for s in starts])[:-1].astype(np.int64)
            zen = zst + np.array([s.shape[0] for s in starts], np.int64)
            zob = np.cumsum([0] + [o.shape[0] for o in offsets])[:-1].astype(np.int64)
            arrays = (zst, zen, np.concatenate(starts).astype(np.int64), np.concatenate(offsets).astype(np.int64), zob)
            built = (arrays, K.pack_zones(*arrays))
            if len(self._zones) > 64:
                self._zones.clear()
            self._zones[key] = built
        if one:
            # any tables covering [lo, hi] give the rules the same offsets (as the key above
            # names a table by its span); kept with the span all of them cover
            if len(self._zones_one) > 256:
                self._zones_one.clear()
            self._zones_one[zone_names] = (max(t[0] for t in tables), min(t[1] for t in tables), built[1])
            return built[1]
        return built[0]

    @staticmethod
    def _named(policies, outcome, reason, until, winner):
        m = outcome.shape[0]
        codes = np.empty(m, dtype=object)
        names = np.empty(m, dtype=object)
        if m <= 64:
            for i, (j, r) in enumerate(zip(winner.tolist(), reason.tolist())):
                if j >= 0:
                    codes[i] = policies[j].reason_of(r)
                    names[i] = policies[j].name
        else:
            judged = np.flatnonzero(winner >= 0)
            if judged.size:
                key = winner[judged] * (1 << 40) + reason[judged]
                distinct, inverse = np.unique(key, return_inverse=True)
                table_codes = np.array([policies[k >> 40].reason_of(int(k & ((1 << 40) - 1))) for k in distinct.tolist()],
                                       dtype=object)
                table_names = np.array([policies[k >> 40].name for k in distinct.tolist()], dtype=object)
                codes[judged] = table_codes[inverse]
                names[judged] = table_names[inverse]
        return outcome.astype(np.int8), codes, until, names


_NO_X = np.zeros((1, 1), np.int64)
_EPOCH_DAY = dt.date(1970, 1, 1)

_NO_D = np.zeros((0, 1), np.int64)


#: the engine every built-in policy uses (one per process; it holds the zones' tables)
ENGINE = Engine()


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------

_OPERATOR = {"US": "third_party_collector", "CN": "third_party_collector"}
#: the account columns every compiled policy may read besides its features
_ALWAYS_READ = frozenset(("country", "region", "time_zone"))


class CompiledPolicy(_Policy):
    """A built-in policy whose rule is a compiled function (:mod:`.compliance_kernels`).

    Subclasses declare ``kernel`` (the function's id), ``REASONS`` (its reason codes in the
    order the function numbers them), ``RULES`` (the rulebook), ``FEATURES`` (the account
    columns it reads), ``PARAMS`` (its parameters in the function's order; ``HH:MM`` defaults
    are times of day, passed as minutes), ``NEEDS`` (per-action facts: ``calls``, ``sms``,
    ``third``, ``zones``), ``SCRIPTS`` (actions whose scripts it reads) and :meth:`derive`
    (per-account values the engine passes as ``D``)."""

    kernel: int = -1
    REASONS: tuple[tuple[str, str], ...] = ()
    RULES: tuple[Rule, ...] = ()
    FEATURES: tuple[str, ...] = ()
    PARAMS: tuple[str, ...] = ()
    NEEDS: tuple[str, ...] = ()
    SCRIPTS: tuple[str, ...] = ()
    #: whom a US rule binds: collectors everywhere, creditors in these states (None: everyone)
    CREDITOR_REGIONS: tuple[str, ...] | None = None
    #: how many per-account values :meth:`derive` gives (by default: whether the rule binds)
    DERIVED: int = 0
    engine = ENGINE

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.REASONS:
            cls.reason_codes = dict(cls.REASONS)
            cls._codes = tuple(code for code, _ in cls.REASONS)
        if "DERIVED" not in cls.__dict__ and cls.CREDITOR_REGIONS is not None:
            cls.DERIVED = 1

    def __init__(self, operator: Mapping[str, str] | None = None, **params):
        super().__init__(**params)
        self.operator = {**_OPERATOR, **(operator or {})}
        self.scope_bits = sum(1 << ACTION[a] for a in (self.actions or ALL_ACTIONS))
        # per country code (and −1, unknown, last): whether its operator is a third-party collector
        self._collector = [int(self.operator.get(c) == "third_party_collector") for c in ENUMS["country"]] + [1]
        self._creditor_regions = dict.fromkeys(self.CREDITOR_REGIONS or (), 1)
        values = []
        for key in self.PARAMS:
            default, value = self.defaults[key], self.params[key]
            if isinstance(default, str) and re.fullmatch(r"\d\d:\d\d", default):
                values.append(_minutes(value, f"{self._where} {key}"))
            else:
                values.append(int(value))
        self.param_values = values

    def reason_of(self, r: int) -> str:
        return self._codes[r]

    @property
    def columns_read(self) -> frozenset | None:
        """Every account column the rule may read — its features' columns, and the debtor's
        country, region and zone (whom it binds, state tables, local time) — for this
        module's policies; None (not known) for a subclass elsewhere, whose ``derive`` may
        read any column."""
        if type(self).__module__ != __name__:
            return None
        return frozenset(c for f in self.FEATURES for c in K.FEATURES[K.FEATURE_INDEX[f]][2]) | _ALWAYS_READ

    def derive(self, accounts: _Accounts) -> list:
        """Per-account values the rule reads as ``D`` (an int for every account, or an array)."""
        if self.CREDITOR_REGIONS is None:
            return []
        return [self._bound(accounts)]

    def _bound(self, accounts: _Accounts):
        """1 where the rule binds the account's collector: a third-party collector (by the
        operator of the account's country; an unknown country binds), or a creditor in one of
        the rule's ``CREDITOR_REGIONS``."""
        collector, regions = self._collector, self._creditor_regions
        country = accounts.country()
        if accounts.records is not None:
            return 1 if collector[country] or (regions and accounts.lookup("region", regions, 0)) else 0
        bound = np.array(collector, np.int64)[country]
        return bound | accounts.lookup("region", regions, 0) if regions else bound

    def check(self, actions: ActionBatch) -> Verdicts:
        return self.engine.verdicts(self, actions)


class _Hold(CompiledPolicy):
    """A hold binds whoever collects, creditor or collector (where the law binds only
    collectors, the lender's policy extends it): its one derived value is always 1."""

    DERIVED = 1

    def derive(self, accounts):
        return [1]


def _collector_binds(regions: Sequence[str]) -> str:
    return "third-party debt collectors" + (f"; creditors in {', '.join(r.removeprefix('US-') for r in regions)}"
                                            if regions else "")


# -- China: time and counts -------------------------------------------------------------------

_CBA = "CBA consumer-loan collection guideline (2026)"
_UNVERIFIED = "not checked against the published text: the number is postloan's default, for the lender to confirm"


class QuietHours(CompiledPolicy):
    """No collection contact between 22:00 and 08:00 in the debtor's local time."""

    name = "cn.quiet_hours"
    kernel = K.K_QUIET_HOURS
    REASONS = (("CN_QUIET_HOURS", "Contact in the debtor's local quiet hours (22:00–08:00); deferred to 08:00."),)
    actions = CONTACT
    defaults = {"start": "22:00", "end": "08:00"}
    PARAMS = ("end", "start")                  # the quiet hours' end opens the contact window
    RULES = (Rule("CN_QUIET_HOURS", "CN", f"{_CBA}; GB/T 45251-2025", "lenders and their agencies",
                  "no SMS, call, visit or third-party contact from `start` to `end` local time; DEFER to `end`",
                  "21:59 KEEP, 22:00 DEFER; 07:59 DEFER, 08:00 KEEP", "recalled: the 22:00–08:00 window is the "
                  "industry rule the seed states; sections not checked"),)


class CallLimits(CompiledPolicy):
    """At most 3 connected calls a day per debtor and 6 unanswered attempts a day per number."""

    name = "cn.call_limits"
    kernel = K.K_CALL_LIMITS
    REASONS = (
        ("CN_DAILY_CONNECTED_CALLS", "The debtor already had 3 connected collection calls today; deferred to tomorrow 08:00."),
        ("CN_DAILY_UNANSWERED_ATTEMPTS", "The number already had 6 unanswered attempts today; deferred to tomorrow 08:00."),
    )
    actions = CALLS
    defaults = {"max_connected_calls": 3, "max_unanswered_attempts": 6, "day_starts": "08:00"}
    PARAMS = ("max_connected_calls", "max_unanswered_attempts", "day_starts")
    NEEDS = ("calls",)
    FEATURES = ("connected_calls_today", "call_attempts_today")
    RULES = (
        Rule("CN_DAILY_CONNECTED_CALLS", "CN", _CBA, "lenders and their agencies",
             "at most 3 calls that reach the debtor per local day (planned calls count); DEFER to tomorrow 08:00",
             "2 connected today: KEEP; 3: DEFER", "recalled (the seed's figure)"),
        Rule("CN_DAILY_UNANSWERED_ATTEMPTS", "CN", _CBA, "lenders and their agencies",
             "at most 6 unanswered attempts per number per local day; DEFER to tomorrow 08:00",
             "5 unanswered: KEEP; 6: DEFER", "recalled (the seed's figure)"),
    )


class ComplaintPause(CompiledPolicy):
    """No collection contact while a complaint about collection is open; past its handling
    deadline the reason escalates."""

    name = "cn.complaint_pause"
    kernel = K.K_COMPLAINT
    REASONS = (
        ("CN_COMPLAINT_OPEN", "A complaint about collection is open; contact is paused until it is closed."),
        ("CN_COMPLAINT_OVERDUE", "A complaint is open past its handling deadline (15 days, or 30/60 once extended): "
                                 "escalate; contact stays paused until it is closed."),
    )
    actions = CONTACT
    defaults = {"deadline_days": 15, "extended_deadline_days": 30, "final_deadline_days": 60}
    PARAMS = ("deadline_days", "extended_deadline_days", "final_deadline_days")
    FEATURES = ("open_complaints", "complaint_opened_at", "complaint_extensions")
    _SOURCE = "《银行业保险业消费投诉处理管理办法》(CBIRC Order 2020 No. 3): decide within 15 days, extendable"
    RULES = (
        Rule("CN_COMPLAINT_OPEN", "CN", f"{_SOURCE}; {_CBA}", "lenders and their agencies",
             "no contact while a complaint is open (BLOCK); the pause ends when COMPLAINT_CLOSED is recorded",
             "open: BLOCK; closed: KEEP", "recalled: the 15/30/60-day structure; article numbers to be checked"),
        Rule("CN_COMPLAINT_OVERDUE", "CN", _SOURCE, "lenders and their agencies",
             "the same pause, named overdue once the handling deadline has passed (escalate to a supervisor)",
             "day 15 after the complaint's local date: OPEN; day 16: OVERDUE (30/31 after one extension, "
             "60/61 after two)", "recalled"),
    )


class AutomatedConsent(CompiledPolicy):
    """No automated calls or messages (voice bot, SMS) without the debtor's consent to that channel."""

    name = "cn.automated_consent"
    kernel = K.K_AUTOMATED_CONSENT
    REASONS = (("CN_NO_AUTOMATED_CONSENT", "The debtor has not consented to automated calls and messages on this channel."),)
    actions = AUTOMATED
    FEATURES = ("consent_sms", "consent_voice_bot", "consent_automated_contact")
    RULES = (Rule("CN_NO_AUTOMATED_CONSENT", "CN", "PIPL arts. 13–14 (consent); 《个人信息保护法》; "
                  "MIIT rules on commercial SMS", "lenders and their agencies",
                  "no SMS or voice-bot call without consent to that channel (consent_sms / consent_voice_bot, "
                  "else the book's consent_automated_contact)", "consent true: KEEP; false or never stated: BLOCK",
                  "recalled"),)


class SMSCap(CompiledPolicy):
    """At most a few collection SMS a local day."""

    name = "cn.sms_cap"
    kernel = K.K_SMS_CAP
    REASONS = (("CN_DAILY_SMS_CAP", "The daily cap on collection SMS is reached; deferred to tomorrow 08:00."),)
    actions = ("SMS",)
    defaults = {"max_per_day": 2, "day_starts": "08:00"}
    PARAMS = ("max_per_day", "day_starts")
    NEEDS = ("sms",)
    FEATURES = ("sms_today",)
    RULES = (Rule("CN_DAILY_SMS_CAP", "CN", f"{_CBA}; GB/T 45251-2025 (frequency of contact)",
                  "lenders and their agencies", "at most `max_per_day` (2) collection SMS per local day, planned "
                  "ones included; DEFER to tomorrow 08:00", "1 sent today: KEEP; 2: DEFER", _UNVERIFIED),)


# -- third parties ----------------------------------------------------------------------------

class ThirdPartyContact(CompiledPolicy):
    """Third parties: on file, only when the debtor is unreachable, never told of the debt, rarely."""

    name = "third_party_contact"
    kernel = K.K_THIRD_PARTY
    REASONS = (
        ("THIRD_PARTY_NONE_ON_FILE", "No third-party (emergency) contact is on file."),
        ("THIRD_PARTY_DEBTOR_REACHABLE", "The debtor is reachable (valid number, fewer than 3 consecutive failed attempts)."),
        ("THIRD_PARTY_DEBT_DISCLOSED", "The script for the third party mentions the debt."),
        ("THIRD_PARTY_CONTACT_CAP", "A third party was already contacted in the last 30 days."),
    )
    actions = ("THIRD_PARTY_CONTACT",)
    defaults = {"unreachable_after_failed_attempts": 3, "max_contacts_30d": 1}
    PARAMS = ("unreachable_after_failed_attempts", "max_contacts_30d")
    NEEDS = ("third",)
    SCRIPTS = ("THIRD_PARTY_CONTACT",)
    FEATURES = ("has_third_party_contact", "phone_valid", "consecutive_failed_attempts", "third_party_contacts_30d")
    RULES = (
        Rule("THIRD_PARTY_NONE_ON_FILE", "CN, US", f"{_CBA} (emergency contacts only); FDCPA § 804 (location "
             "information)", "everyone collecting", "only the emergency contact on file is contacted",
             "on file: KEEP; none: BLOCK", "recalled"),
        Rule("THIRD_PARTY_DEBTOR_REACHABLE", "CN, US", "FDCPA § 804 (only to acquire location information); "
             f"{_CBA}", "everyone collecting", "only when the debtor cannot be reached: invalid number or 3 "
             "consecutive failed calls", "2 failed: BLOCK; 3: KEEP", "recalled"),
        Rule("THIRD_PARTY_DEBT_DISCLOSED", "CN, US", "FDCPA § 804(2), § 805(b); PIPL art. 10; "
             f"{_CBA} (爆通讯录 forbidden)", "everyone collecting", "the third party is never told of the debt: "
             "templates for third parties may use only {name}, {caller} and {hotline} (checked when they load) and "
             "every script is screened for debt words (欠, 分期, 结清, 收走, late, car note …)",
             "“请转告他回电”: KEEP; “他欠我们钱”: BLOCK", "recalled"),
        Rule("THIRD_PARTY_CONTACT_CAP", "CN, US", "FDCPA § 804(3) (once, unless asked); "
             f"{_CBA} (third-party contact limited)", "everyone collecting",
             "at most `max_contacts_30d` (1) third-party contact in 30 days, planned ones included",
             "0 in 30 days: KEEP; 1: BLOCK", "recalled; the ledger counts 30 days, not each person's lifetime"),
    )


# -- United States: Regulation F, FDCPA, TCPA ----------------------------------------------------

class RegFOptOut(CompiledPolicy):
    """Reg F § 1006.6(e): no SMS to a debtor who opted out of them; every SMS says how to opt out."""

    name = "us.regf_opt_out"
    kernel = K.K_REGF_OPT_OUT
    REASONS = (
        ("REGF_OPT_OUT_SMS", "The debtor opted out of text messages (Reg F § 1006.6(e))."),
        ("REGF_NO_OPT_OUT_NOTICE", "The text message does not say how to opt out (Reg F § 1006.6(e))."),
    )
    actions = ("SMS",)
    CREDITOR_REGIONS = ()
    SCRIPTS = ("SMS",)
    FEATURES = ("opt_out_sms", "country")
    RULES = (
        Rule("REGF_OPT_OUT_SMS", "US", "12 CFR 1006.6(e)", _collector_binds(()),
             "no text message to a debtor who opted out of them", "opt_out_sms false: KEEP; true: BLOCK",
             "well-known section; text recalled"),
        Rule("REGF_NO_OPT_OUT_NOTICE", "US", "12 CFR 1006.6(e)", _collector_binds(()),
             "every text message carries a clear opt-out instruction (“Reply STOP to opt out”)",
             "with the instruction: KEEP; without: BLOCK", "well-known section; text recalled"),
    )


class RegFRestrictedMedium(CompiledPolicy):
    """Reg F § 1006.14(h): no call to a debtor who asked not to be called."""

    name = "us.regf_restricted_medium"
    kernel = K.K_RESTRICTED_MEDIUM
    REASONS = (("REGF_RESTRICTED_MEDIUM", "The debtor asked not to be called (Reg F § 1006.14(h))."),)
    actions = CALLS
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("opt_out_phone", "country")
    RULES = (Rule("REGF_RESTRICTED_MEDIUM", "US", "12 CFR 1006.14(h); Cal. Civ. Code § 1788.17 (Rosenthal "
                  "incorporates 15 U.S.C. §§ 1692b–1692j)", _collector_binds(("US-CA",)),
                  "no phone or voice-bot call to a debtor who asked not to be called (opt_out_phone)",
                  "opt-out false: KEEP; true: BLOCK", "well-known sections"),)


class RegFHours(CompiledPolicy):
    """FDCPA § 805(a)(1) / Reg F § 1006.6(b)(1)(i): no communication before 08:00 or from 21:00
    local time — in every zone the debtor may be in."""

    name = "us.regf_hours"
    kernel = K.K_REGF_HOURS
    REASONS = (("REGF_INCONVENIENT_TIME", "Outside 08:00–21:00 in a time zone the debtor may be in; deferred "
                                          "until every such zone allows."),)
    actions = CONTACT
    defaults = {"start": "08:00", "end": "21:00"}
    PARAMS = ("start", "end")
    NEEDS = ("zones",)
    CREDITOR_REGIONS = ("US-CA", "US-FL", "US-MA")
    FEATURES = ("country",)
    RULES = (Rule("REGF_INCONVENIENT_TIME", "US", "15 U.S.C. § 1692c(a)(1); 12 CFR 1006.6(b)(1)(i) (two zones: "
                  "both); Cal. Civ. Code § 1788.17; Fla. Stat. § 559.72(17); 940 CMR 7.04(1)",
                  _collector_binds(("US-CA", "US-FL", "US-MA")),
                  "communication only in [08:00, 21:00) local time, in the debtor's zone and, for a state that spans "
                  "two zones, in both; DEFER until every zone allows",
                  "20:59 KEEP, 21:00 DEFER; 07:59 DEFER, 08:00 KEEP; Texas 08:30 Central = 07:30 Mountain: DEFER",
                  "well-known sections; the Florida and Massachusetts hours recalled"),)


class RegFConversation(CompiledPolicy):
    """Reg F § 1006.14(b)(2)(i)(B): no call within 7 days after a telephone conversation."""

    name = "us.regf_conversation"
    kernel = K.K_REGF_CONVERSATION
    REASONS = (("REGF_RECENT_CONVERSATION", "A conversation took place within the last 7 days; deferred to the 8th day."),)
    actions = CALLS
    defaults = {"days": 7, "day_starts": "08:00"}
    PARAMS = ("days", "day_starts")
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("last_conversation_at", "country")
    RULES = (Rule("REGF_RECENT_CONVERSATION", "US", "12 CFR 1006.14(b)(2)(i)(B)", _collector_binds(("US-CA",)),
                  "no call within 7 days after a conversation (its local date is day 1); DEFER to day 8, 08:00",
                  "6 days after: DEFER; 7 days after: KEEP", "well-known section; applying it to California "
                  "creditors is the cautious reading of Rosenthal, not settled law"),)


class RegFCallFrequency(CompiledPolicy):
    """Reg F § 1006.14(b)(2)(i)(A): at most 7 calls in 7 days about a debt."""

    name = "us.regf_call_frequency"
    kernel = K.K_REGF_FREQUENCY
    REASONS = (("REGF_7_IN_7", "7 calls were already placed in the last 7 days; deferred to tomorrow 08:00 for a re-check."),)
    actions = CALLS
    defaults = {"max_calls": 7, "day_starts": "08:00"}
    PARAMS = ("max_calls", "day_starts")
    NEEDS = ("calls",)
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("calls_7d", "country")
    RULES = (Rule("REGF_7_IN_7", "US", "12 CFR 1006.14(b)(2)(i)(A)", _collector_binds(("US-CA",)),
                  "at most 7 calls in 7 days (planned calls count); DEFER to tomorrow 08:00",
                  "6 in 7 days: KEEP; 7: DEFER", "well-known section"),)


class MassachusettsCalls(CompiledPolicy):
    """Massachusetts: at most 2 calls in 7 days to a debtor in MA."""

    name = "us.ma_call_frequency"
    kernel = K.K_MA_CALLS
    REASONS = (("US_MA_2_IN_7", "Massachusetts: 2 calls were already placed in the last 7 days; deferred to tomorrow 08:00."),)
    actions = CALLS
    defaults = {"max_calls": 2, "day_starts": "08:00"}
    PARAMS = ("max_calls", "day_starts")
    NEEDS = ("calls",)
    FEATURES = ("calls_7d",)
    RULES = (Rule("US_MA_2_IN_7", "US-MA", "940 CMR 7.04(1)(f) (creditors); 209 CMR 18.14(1)(d) (collectors)",
                  "creditors and collectors, debtors in Massachusetts",
                  "at most 2 calls in 7 days (planned calls count); DEFER to tomorrow 08:00",
                  "1 in 7 days: KEEP; 2: DEFER", "recalled: the 2-in-7 rule; its letters and whether texts count "
                  "(they may: the ledger's 7-day count holds calls only) to be confirmed"),)

    DERIVED = 1

    def derive(self, accounts):
        return [accounts.lookup("region", {"US-MA": 1}, 0)]


class TCPAConsent(CompiledPolicy):
    """TCPA: artificial-voice calls and texts to a mobile need prior express consent."""

    name = "us.tcpa_consent"
    kernel = K.K_TCPA
    REASONS = (("US_TCPA_NO_CONSENT", "No prior express consent to automated (artificial-voice) calls or texts "
                                      "to this mobile number (TCPA)."),)
    actions = ("SMS", "VOICE_BOT", "PHONE")
    defaults = {"phone_autodialed": False}
    PARAMS = ("phone_autodialed",)
    FEATURES = ("consent_sms", "consent_voice_bot", "consent_phone", "consent_automated_contact")
    RULES = (Rule("US_TCPA_NO_CONSENT", "US", "47 U.S.C. § 227(b)(1)(A)(iii); FCC Declaratory Ruling FCC 24-17 "
                  "(2024: AI-generated voices are “artificial”)", "everyone calling (creditors and collectors)",
                  "no voice-bot call and no text to the debtor's mobile without prior express consent to that "
                  "channel; agents' calls too when `phone_autodialed` = true",
                  "consent true: KEEP; false or never stated: BLOCK",
                  "well-known section; the FCC ruling recalled"),)

    def __init__(self, operator=None, **params):
        super().__init__(operator, **params)
        if not self.params["phone_autodialed"]:
            self.actions = ("SMS", "VOICE_BOT")
            self.scope_bits = sum(1 << ACTION[a] for a in self.actions)


class InconvenientTimes(CompiledPolicy):
    """FDCPA § 805(a)(3) and (a)(1): the workplace and the hours the debtor said are inconvenient."""

    name = "us.inconvenient_times"
    kernel = K.K_INCONVENIENT
    REASONS = (
        ("US_WORKPLACE_PROHIBITS_CONTACT", "The debtor's employer prohibits contact at work: no call during working "
                                           "hours; deferred to their end."),
        ("US_INCONVENIENT_TIME_STATED", "The debtor said working hours are inconvenient; deferred to their end."),
    )
    actions = ("PHONE", "VOICE_BOT", "FIELD_VISIT")
    defaults = {"work_starts": "09:00", "work_ends": "17:00"}
    PARAMS = ("work_starts", "work_ends")
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("employer_prohibits_contact", "work_hours_inconvenient", "country")
    RULES = (
        Rule("US_WORKPLACE_PROHIBITS_CONTACT", "US", "15 U.S.C. § 1692c(a)(3); 12 CFR 1006.6(b)(3)",
             _collector_binds(("US-CA",)), "when the debtor said the employer prohibits contact at work: no call "
             "Monday–Friday in [09:00, 17:00) local (a call to the mobile reaches them at work); DEFER to 17:00",
             "Tue 16:59 DEFER, 17:00 KEEP; Saturday KEEP", "well-known sections; reading a mobile call in working "
             "hours as contact at work is postloan's cautious interpretation"),
        Rule("US_INCONVENIENT_TIME_STATED", "US", "15 U.S.C. § 1692c(a)(1); 12 CFR 1006.6(b)(1)(i)",
             _collector_binds(("US-CA",)), "when the debtor said working hours are inconvenient: no call or visit "
             "then; DEFER to 17:00", "Tue 09:00 DEFER, 08:59 KEEP", "well-known sections; the ledger records the "
             "statement, not other windows (an event column for a window is future work)"),
    )


class LimitationPeriod(CompiledPolicy):
    """No legal action on a time-barred debt (US § 1006.26(b); CN Civil Code art. 188)."""

    name = "limitation_period"
    kernel = K.K_LIMITATION
    REASONS = (
        ("US_TIME_BARRED_DEBT", "The statute of limitations has run: no suit or threat of suit (Reg F § 1006.26(b))."),
        ("CN_LIMITATION_EXPIRED", "The 3-year limitation period (Civil Code art. 188) has run since the last "
                                  "payment, conversation or due date."),
    )
    actions = ("LEGAL_REVIEW",)
    defaults = {"us_years": 4, "cn_years": 3, "us_years_by_state": {}}
    FEATURES = ("country", "dpd", "last_payment_date", "last_conversation_at")
    RULES = (
        Rule("US_TIME_BARRED_DEBT", "US", "12 CFR 1006.26(b); UCC § 2-725 (4 years, the default; states differ: "
             "`us_years_by_state`)", "everyone (a collector may not sue; a creditor's suit would fail)",
             "no legal review once `us_years` (4) years have passed since the oldest unpaid due date (as_of − dpd); "
             "payments do not restart it here (the cautious reading)", "the day before the anniversary: KEEP; "
             "the anniversary: BLOCK", "well-known sections; each state's period to be set by counsel"),
        Rule("CN_LIMITATION_EXPIRED", "CN", "Civil Code arts. 188 (3 years), 195 (interruption by demand, "
             "acknowledgement, payment)", "everyone", "no legal review once 3 years have passed since the latest of "
             "the oldest unpaid due date, the last payment and the last conversation (a demand that reached the "
             "debtor)", "the day before the anniversary: KEEP; the anniversary: BLOCK",
             "well-known articles; treating a connected call as a demand is postloan's reading"),
    )

    DERIVED = 1

    def __init__(self, operator=None, **params):
        super().__init__(operator, **params)
        self._us_years = dict(self.params["us_years_by_state"])

    def derive(self, accounts):
        """D0: the limitation period in years for the account (0: none applies)."""
        country = accounts.country()
        us_years = accounts.lookup("region", self._us_years, self.params["us_years"])
        return [accounts.where(country == K.COUNTRY_CN, self.params["cn_years"],
                               accounts.where(country == K.COUNTRY_US, us_years, 0))]


class USScriptContent(CompiledPolicy):
    """What a script to a US debtor must and must not say."""

    name = "us.script_content"
    kernel = K.K_SCRIPT
    REASONS = (
        ("SCRIPT_ANONYMOUS_CALLER", "The script identifies the caller anonymously (never “Customer Service”)."),
        ("SCRIPT_FALSE_THREAT", "The script makes a threat a lender may not make."),
        ("SCRIPT_DEBT_BEFORE_IDENTITY", "The script gives debt details before the debtor's identity is confirmed."),
        ("SCRIPT_NO_RECORDING_NOTICE", "The call script lacks the notice that the call is recorded."),
        ("SCRIPT_NO_PAID_NOTICE", "The SMS lacks “if you have already paid, please ignore this message”."),
        ("US_NO_LIMITED_CONTENT_VOICEMAIL", "The voice-bot script has no limited-content voicemail free of the debt "
                                            "(Reg F § 1006.2(j))."),
    )
    actions = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")
    defaults = {"recording_notice_states": list(ALL_PARTY_RECORDING_STATES)}
    SCRIPTS = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("country",)
    RULES = (
        Rule("SCRIPT_ANONYMOUS_CALLER", "US", "15 U.S.C. § 1692d(6) (meaningful disclosure of the caller's "
             "identity), § 1692e(14)", "everyone calling", "no script that identifies the caller only as "
             "“customer service”", "“this is Example Auto Finance”: KEEP; “calling from customer service”: BLOCK",
             "well-known sections"),
        Rule("SCRIPT_DEBT_BEFORE_IDENTITY", "US", "15 U.S.C. § 1692c(b) (no disclosure to third parties); "
             "12 CFR 1006.6(d)", _collector_binds(("US-CA",)), "calls and visits give debt details only after the "
             "identity marker [Identity confirmed]", "debt after the marker: KEEP; before: BLOCK",
             "well-known sections"),
        Rule("SCRIPT_NO_RECORDING_NOTICE", "US-CA and 8 other all-party states", "Cal. Penal Code § 632; the "
             "all-party consent statutes of FL, IL, MD, MA, MT, NH, PA, WA", "everyone calling",
             "call scripts to debtors in those states say the call is recorded", "with the notice: KEEP; "
             "without: BLOCK", "CA well-known; the list of states recalled"),
        Rule("US_NO_LIMITED_CONTENT_VOICEMAIL", "US", "12 CFR 1006.2(j) (limited-content message), "
             "1006.6(d)(2)", _collector_binds(("US-CA",)), "a voice-bot script carries a voicemail section "
             "([Voicemail]) naming the business, asking for a reply and giving a number, without the debt",
             "voicemail without debt: KEEP; none, or with the debt: BLOCK", "well-known sections"),
    )

    DERIVED = 1

    def derive(self, accounts):
        """D0: the checks for each account (bits: see _p_script_content)."""
        bound = self._bound(accounts)
        recording = accounts.lookup("region", dict.fromkeys(self.params["recording_notice_states"], 1), 0)
        return [16 | accounts.where(bound > 0, 1 | 8, 0) | accounts.where(recording > 0, 2, 0)]


class CNScriptContent(CompiledPolicy):
    """What a script to a debtor in China must and must not say."""

    name = "cn.script_content"
    kernel = K.K_SCRIPT
    REASONS = USScriptContent.REASONS
    actions = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")
    SCRIPTS = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT")
    FEATURES = ("country",)
    RULES = (
        Rule("SCRIPT_ANONYMOUS_CALLER", "CN", f"{_CBA} (truthful identification: the institution's name); "
             "GB/T 45251-2025", "lenders and their agencies", "no script that names the caller only as 客户服务中心 "
             "(the strategy also refuses such a `caller` when it loads)", "“我是示例汽车金融的…”: KEEP; "
             "“我是客户服务中心”: BLOCK", "recalled"),
        Rule("SCRIPT_FALSE_THREAT", "CN", f"{_CBA}; 《商业银行信用卡业务监督管理办法》 (its collection article: no threats, "
             "no harassment of others)", "lenders and their agencies", "no 黑名单, 坐牢, 拘留, 子女, 曝光, 通讯录, 刑事 "
             "in a script (the credit-reporting consequence is stated as the fact: reported to the credit reference "
             "system)", "“逾期记录将依法报送征信系统”: KEEP; “上黑名单”: BLOCK", "recalled; the word list is postloan's"),
        Rule("SCRIPT_DEBT_BEFORE_IDENTITY", "CN", "PIPL art. 10; 《个人信用信息基础数据库管理暂行办法》; "
             f"{_CBA}", "lenders and their agencies", "calls and visits give debt details only after the "
             "identity marker 【确认本人后】", "debt after the marker: KEEP; before: BLOCK", "recalled"),
        Rule("SCRIPT_NO_RECORDING_NOTICE", "CN", f"{_CBA} (calls recorded and the debtor told)",
             "lenders and their agencies", "every call script says 本次通话将被录音", "with: KEEP; without: BLOCK",
             "recalled"),
        Rule("SCRIPT_NO_PAID_NOTICE", "CN", f"{_CBA}", "lenders and their agencies",
             "every collection SMS ends with 如已还款请忽略", "with: KEEP; without: BLOCK", "recalled"),
    )

    DERIVED = 1

    def derive(self, accounts):
        return [16 | 32 | 1 | 2 | 4]


# -- holds ------------------------------------------------------------------------------------

class PromiseHold(CompiledPolicy):
    """An open promise to pay not yet due: SMS reminders only until the promised date plus grace."""

    name = "hold.promise"
    kernel = K.K_PROMISE
    REASONS = (("HOLD_PROMISE_OPEN", "A promise to pay is open and not yet due; only reminders until the promised "
                                     "date plus grace."),)
    actions = ("VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT") + ENFORCEMENT
    defaults = {"grace_days": 1, "day_starts": "08:00"}
    PARAMS = ("grace_days", "day_starts")
    FEATURES = ("promise_open", "promise_date")
    RULES = (Rule("HOLD_PROMISE_OPEN", "all", "fair treatment: FDCPA § 806 (harassment), "
                  f"{_CBA}; the lender's policy", "everyone collecting", "while a promise to pay is open (state "
                  "`promise_open`), nothing but an SMS reminder until the promised date plus `grace_days` (1, as "
                  "[ledger] promise_grace_days); DEFER to 08:00 the day after", "on the last day of grace: DEFER; "
                  "the day after: KEEP", "the lender's policy (no statute sets it)"),)


class DisputeHold(_Hold):
    """An open dispute stops collection until it is resolved."""

    name = "hold.dispute"
    kernel = K.K_DISPUTE
    REASONS = (("HOLD_DISPUTE_OPEN", "The debt is disputed; no collection until the dispute is resolved (verified)."),)
    actions = ALL_ACTIONS
    FEATURES = ("open_disputes",)
    RULES = (Rule("HOLD_DISPUTE_OPEN", "all", "15 U.S.C. § 1692g(b) (cease until verification; the validation "
                  "period of 12 CFR 1006.34); CN: 异议处理, " + _CBA, "US collectors by law; everyone by the "
                  "lender's policy", "no action of any kind while a dispute is open; ends with DISPUTE_RESOLVED "
                  "(the verification sent)", "open_disputes 1: BLOCK; 0: KEEP", "well-known sections"),)


class CeaseCommunication(CompiledPolicy):
    """FDCPA § 805(c): a written request to stop communication is honoured."""

    name = "us.cease_communication"
    kernel = K.K_CEASE
    REASONS = (("US_CEASE_COMMUNICATION", "The debtor asked in writing that communication stop (FDCPA § 805(c))."),)
    actions = CONTACT
    CREDITOR_REGIONS = ("US-CA",)
    FEATURES = ("cease_requested", "country")
    RULES = (Rule("US_CEASE_COMMUNICATION", "US", "15 U.S.C. § 1692c(c); 12 CFR 1006.6(c); Cal. Civ. Code "
                  "§ 1788.17", _collector_binds(("US-CA",)), "no SMS, call, visit or third-party contact once the "
                  "debtor asked in writing to stop; legal steps stay possible (§ 1692c(c)(2)–(3))",
                  "cease_requested false: KEEP; true: BLOCK (no end: only the debtor can restart contact)",
                  "well-known sections"),)


class AttorneyRepresented(CompiledPolicy):
    """FDCPA § 805(a)(2): a debtor represented by an attorney is contacted through the attorney."""

    name = "us.attorney_represented"
    kernel = K.K_ATTORNEY
    REASONS = (("US_ATTORNEY_REPRESENTED", "The debtor is represented by an attorney for this debt; contact the "
                                           "attorney (FDCPA § 805(a)(2))."),)
    actions = CONTACT
    CREDITOR_REGIONS = ("US-CA", "US-FL")
    FEATURES = ("attorney_represented", "country")
    RULES = (Rule("US_ATTORNEY_REPRESENTED", "US", "15 U.S.C. § 1692c(a)(2), § 1692b(6); 12 CFR 1006.6(b)(2); Cal. Civ. Code "
                  "§ 1788.14(c); Fla. Stat. § 559.72(18)", _collector_binds(("US-CA", "US-FL")),
                  "no contact with the debtor or third parties once an attorney represents the debtor",
                  "attorney_represented false: KEEP; true: BLOCK", "well-known sections; FL recalled"),)


class BankruptcyStay(_Hold):
    """The automatic stay: nothing while a bankruptcy is open."""

    name = "hold.bankruptcy"
    kernel = K.K_BANKRUPTCY
    REASONS = (("HOLD_BANKRUPTCY_STAY", "A bankruptcy is open (automatic stay): no collection, legal action, "
                                        "repossession or sale."),)
    actions = ALL_ACTIONS
    FEATURES = ("bankruptcy_open",)
    RULES = (Rule("HOLD_BANKRUPTCY_STAY", "all", "11 U.S.C. § 362(a) (automatic stay); CN: 《深圳经济特区个人破产"
                  "条例》 (Shenzhen only), 企业破产法 art. 19", "everyone (creditors included)",
                  "no action of any kind — repossession and sale included — while a bankruptcy is open; ends with "
                  "BANKRUPTCY_CLOSED (relief from the stay is not modelled: record the case closed or dismissed)",
                  "bankruptcy_open true: BLOCK; false: KEEP", "US well-known; CN recalled"),)


class SCRARepossession(CompiledPolicy):
    """SCRA: no repossession during military service without a court order."""

    name = "us.scra"
    kernel = K.K_SCRA
    REASONS = (("US_SCRA_COURT_ORDER_REQUIRED", "The debtor is in military service and the contract predates it: "
                                                "repossession needs a court order (SCRA)."),)
    actions = ("REPOSSESSION",)
    FEATURES = ("military_service", "military_service_since", "contract_date", "court_order_at")
    RULES = (Rule("US_SCRA_COURT_ORDER_REQUIRED", "US", "50 U.S.C. § 3952(a)", "everyone (creditors included)",
                  "no repossession, during military service, of a car financed by a contract made before the "
                  "service began, without a court order made during it", "contract the day before service: "
                  "BLOCK; on the day service began: KEEP; a court order: KEEP", "well-known section"),)


class DeceasedHold(_Hold):
    """A deceased debtor is not contacted; the estate is dealt with."""

    name = "hold.deceased"
    kernel = K.K_DECEASED
    REASONS = (("HOLD_DECEASED", "The debtor is reported deceased: no collection contact or repossession; deal with "
                                 "the estate."),)
    actions = CONTACT + ("REPOSSESSION",)
    FEATURES = ("deceased",)
    RULES = (Rule("HOLD_DECEASED", "all", "12 CFR 1006.6(a) (the estate's representative is treated as the consumer); "
                  "CN Civil Code arts. 1159, 1161 (debts paid from the estate, to its value)", "everyone collecting",
                  "no SMS, call, visit, third-party contact or repossession once the debtor is reported deceased; "
                  "claims go to the estate (legal review stays possible)", "deceased true: BLOCK; false: KEEP",
                  "well-known sections; the hold itself is the lender's policy"),)


class HardshipHold(_Hold):
    """A hardship arrangement in force: reminders only."""

    name = "hold.hardship"
    kernel = K.K_HARDSHIP
    REASONS = (("HOLD_HARDSHIP", "A hardship arrangement is in force: reminders only until it ends."),)
    actions = ("VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT") + ENFORCEMENT
    FEATURES = ("hardship",)
    RULES = (Rule("HOLD_HARDSHIP", "all", "the lender's policy (CN: NFRA guidance on 延期还款 and 个性化分期)",
                  "the lender", "while a hardship arrangement is in force, nothing but SMS reminders; ends with "
                  "HARDSHIP_ENDED", "hardship true: BLOCK; false: KEEP", "the lender's policy"),)


# -- China: GPS, repossession basis ------------------------------------------------------------

class GPSConsent(CompiledPolicy):
    """PIPL: locating the car by its tracker needs the debtor's separate consent."""

    name = "cn.gps_consent"
    kernel = K.K_GPS_CONSENT
    REASONS = (("CN_NO_GPS_CONSENT", "No separate consent to GPS tracking (PIPL: whereabouts are sensitive); the "
                                     "car may not be located by its tracker."),)
    actions = ("REPOSSESSION",)
    FEATURES = ("consent_gps", "gps_status")
    RULES = (Rule("CN_NO_GPS_CONSENT", "CN", "PIPL arts. 28–29 (行踪轨迹 is sensitive personal information: separate "
                  "consent)", "lenders and their agencies", "no repossession of a car with a tracker (gps_status not "
                  "NO_DEVICE) unless the debtor gave separate GPS consent (GPS_CONSENT_GRANTED)",
                  "consent_gps true: KEEP; false or never stated: BLOCK; no device: KEEP", "well-known articles"),)


class RepossessionBasis(CompiledPolicy):
    """China: a repossession needs its legal basis recorded; never self-help by force."""

    name = "cn.repossession_basis"
    kernel = K.K_BASIS
    REASONS = (("CN_REPOSSESSION_NO_LEGAL_BASIS", "No legal basis for repossession is recorded (the debtor's written "
                                                  "agreement, a court ruling or an arbitral award)."),)
    actions = ("REPOSSESSION",)
    FEATURES = ("surrender_agreed_at", "court_order_at", "arbitral_award_at")
    RULES = (Rule("CN_REPOSSESSION_NO_LEGAL_BASIS", "CN", "Civil Code arts. 410 (realising a mortgage: agreement "
                  "or the court), 642 (retained title: take back by agreement, else the security-interest "
                  "procedure); Civil Procedure Law, special procedure 实现担保物权", "lenders and their agencies",
                  "no repossession without SURRENDER_AGREED, COURT_ORDER_GRANTED or ARBITRAL_AWARD_GRANTED recorded "
                  "(an award is enforced through the court); never by force", "none: BLOCK; any: KEEP",
                  "well-known articles"),)


class RightToCure(CompiledPolicy):
    """US states with a right to cure: no repossession before the cure notice and period."""

    name = "us.right_to_cure"
    kernel = K.K_CURE
    REASONS = (
        ("US_CURE_NOTICE_REQUIRED", "The state requires a notice of the right to cure before repossession; none was sent."),
        ("US_CURE_PERIOD", "The cure period after the notice has not passed; deferred to its end."),
    )
    actions = ("REPOSSESSION",)
    defaults = {"days_by_state": dict(RIGHT_TO_CURE_DAYS), "day_starts": "08:00"}
    PARAMS = ("day_starts",)
    FEATURES = ("cure_notice_at",)
    RULES = (
        Rule("US_CURE_NOTICE_REQUIRED", "US-IA, KS, ME, MA, MO, SC, WV, WI", "Iowa Code § 537.5110–5111; K.S.A. "
             "16a-5-110–111; 9-A M.R.S. § 5-110–111; M.G.L. c. 255B § 20A; Mo. Rev. Stat. § 408.554–555; S.C. Code "
             "§ 37-5-110–111; W. Va. Code § 46A-2-106; Wis. Stat. § 425.104–105", "creditors and their assignees",
             "no repossession in these states until a notice of the right to cure was sent (CURE_NOTICE_SENT)",
             "no notice: BLOCK", "recalled: the states and statutes; each period (`days_by_state`) to be confirmed "
             "by counsel"),
        Rule("US_CURE_PERIOD", "same", "same", "creditors and their assignees", "none until the cure period's days "
             "after the notice's local date have passed (MA 21, IA/KS/MO/SC 20, WI 15, ME 14, WV 10); DEFER to "
             "08:00 the day after", "MA: day 21 after the notice DEFER, day 22 KEEP", "recalled"),
    )

    DERIVED = 1

    def derive(self, accounts):
        return [accounts.lookup("region", self.params["days_by_state"], 0)]


class DisposalNotice(CompiledPolicy):
    """No sale before the notice of disposition and the redemption window."""

    name = "disposal_notice"
    kernel = K.K_DISPOSAL
    REASONS = (
        ("DISPOSAL_NOT_HELD", "The car is not held for disposal (not repossessed, redeemed or already sold)."),
        ("DISPOSAL_NO_NOTICE", "No notice of disposition was sent after the repossession."),
        ("DISPOSAL_REDEMPTION_WINDOW", "The notice period or the redemption window has not passed; deferred to its end."),
    )
    actions = ("DISPOSAL",)
    defaults = {"us_notice_days": 10, "us_redemption_days": 10, "cn_notice_days": 0, "cn_redemption_days": 15,
                "notice_days_by_state": {"US-CA": 15}, "redemption_days_by_state": {"US-CA": 15},
                "day_starts": "08:00"}
    PARAMS = ("day_starts",)
    FEATURES = ("repossession_stage", "repossessed_at", "disposal_notice_at", "country")
    RULES = (
        Rule("DISPOSAL_NOT_HELD", "all", "UCC § 9-610; CN Civil Code arts. 642–643", "everyone", "only a car held "
             "after repossession (stage REPOSSESSED or NOTICE_SENT) is sold", "redeemed or sold: BLOCK",
             "well-known sections"),
        Rule("DISPOSAL_NO_NOTICE", "all", "UCC §§ 9-611, 9-613, 9-614 (notice of disposition, consumer goods); "
             "Cal. Civ. Code § 2983.2; CN Civil Code art. 643 (回赎)", "everyone", "no sale without a notice of "
             "disposition sent after the repossession", "no notice: BLOCK", "well-known sections"),
        Rule("DISPOSAL_REDEMPTION_WINDOW", "all", "UCC § 9-612 (10 days: the safe harbour), § 9-623 (redemption); "
             "Cal. Civ. Code § 2983.2 (15 days); CN Civil Code art. 643 (a reasonable redemption period)",
             "everyone", "no sale before `notice_days` after the notice and `redemption_days` after the actual "
             "repossession (US 10/10, CA 15/15, CN 0/15); DEFER to the later, 08:00", "CN: day 14 after "
             "repossession DEFER, day 15 KEEP", "US well-known; CN's 15 days is the lender's reasonable period"),
    )

    DERIVED = 2

    def derive(self, accounts):
        p = self.params
        cn = accounts.country() == K.COUNTRY_CN
        notice_us = accounts.lookup("region", p["notice_days_by_state"], p["us_notice_days"])
        redeem_us = accounts.lookup("region", p["redemption_days_by_state"], p["us_redemption_days"])
        return [accounts.where(cn, p["cn_notice_days"], notice_us), accounts.where(cn, p["cn_redemption_days"], redeem_us)]


# -- litigation --------------------------------------------------------------------------------

_LITIGATION_ORDER = ("LITIGATION_NO_DECISION", "LITIGATION_NO_CLAUSE", "LITIGATION_NO_CONTACT_RECORDS",
                     "LITIGATION_NO_DEMAND_NOTICE", "LITIGATION_EVIDENCE_INCOMPLETE", "LITIGATION_NOT_SEVERE",
                     "LITIGATION_NO_WILFUL_DEFAULT", "LITIGATION_BELOW_THRESHOLD", "LITIGATION_NOT_ELIGIBLE")


class LitigationPreconditions(CompiledPolicy):
    """A LEGAL_REVIEW goes ahead only with the contract clause, complete evidence and the
    litigation ruleset's thresholds met; otherwise blocked, naming every missing one (``+``)."""

    name = "litigation_preconditions"
    kernel = K.K_LITIGATION
    reason_codes = {
        "LITIGATION_NO_CLAUSE": "The contract has no dispute-resolution (litigation/arbitration) clause.",
        "LITIGATION_NO_CONTACT_RECORDS": "Collection contacts were not all recorded and kept (evidence).",
        "LITIGATION_NO_DEMAND_NOTICE": "No formal written demand notice (催告函) was delivered.",
        "LITIGATION_EVIDENCE_INCOMPLETE": "The litigation ruleset found the evidence incomplete.",
        "LITIGATION_NOT_SEVERE": "The account is not severely delinquent (litigation ruleset).",
        "LITIGATION_NO_WILFUL_DEFAULT": "No wilful default established (litigation ruleset).",
        "LITIGATION_BELOW_THRESHOLD": "Below the amount or days-past-due threshold (litigation ruleset).",
        "LITIGATION_NOT_ELIGIBLE": "The litigation ruleset found the account not eligible.",
        "LITIGATION_NO_DECISION": "The bundle gave no litigation decision for the account.",
    }
    defaults = {"min_demand_notices": 2}
    PARAMS = ("min_demand_notices",)
    actions = ("LEGAL_REVIEW",)
    FEATURES = ("litigation_eligible", "litigation_missing", "litigation_clause", "contact_records_kept",
                "demand_notices_sent")
    #: checked in this order; the reason lists them in this order
    ORDER = _LITIGATION_ORDER
    BIT = {code: 1 << i for i, code in enumerate(_LITIGATION_ORDER)}
    RULES = (Rule("LITIGATION_*", "all", "CN Civil Procedure Law arts. 122 (conditions of a suit), 67 "
                  "(evidence), 2021 numbering; the contract's dispute-resolution clause", "everyone",
                  "a legal review only with the clause, contact records kept, 2 demand notices (催告函) and the "
                  "litigation ruleset's thresholds; every missing one named, joined by +",
                  "1 demand notice: BLOCK …_NO_DEMAND_NOTICE; 2: KEEP", "recalled articles"),)

    def __init__(self, operator=None, **params):
        super().__init__(operator, **params)
        self._reasons: dict[int, str] = {}

    def reason_of(self, bits: int) -> str:
        try:
            return self._reasons[bits]
        except KeyError:
            code = self._reasons[bits] = "+".join(c for c in self.ORDER if bits & self.BIT[c])
            return code


assert [LitigationPreconditions.BIT[c] for c in _LITIGATION_ORDER] == [
    K.L_NO_DECISION, K.L_NO_CLAUSE, K.L_NO_RECORDS, K.L_NO_NOTICE, K.L_EVIDENCE, K.L_NOT_SEVERE, K.L_NO_WILFUL,
    K.L_BELOW, K.L_NOT_ELIGIBLE]


POLICIES = (
    # holds first: the most fundamental ground is the reason recorded
    BankruptcyStay, DisputeHold, DeceasedHold, CeaseCommunication, AttorneyRepresented, HardshipHold, PromiseHold,
    SCRARepossession,
    # China
    ComplaintPause, AutomatedConsent, CNScriptContent, GPSConsent, RepossessionBasis, QuietHours, CallLimits, SMSCap,
    # United States
    TCPAConsent, RegFOptOut, RegFRestrictedMedium, USScriptContent, RightToCure, RegFHours, InconvenientTimes,
    RegFConversation, RegFCallFrequency, MassachusettsCalls,
    # both
    ThirdPartyContact, DisposalNotice, LimitationPeriod, LitigationPreconditions,
)


def _operator(config: Mapping) -> dict[str, str]:
    given = (config.get("compliance", {}) or {}).get("operator", {}) or {}
    where = "[compliance.operator]"
    if not isinstance(given, Mapping):
        raise PostloanError(f"{where} must be a table of country = operator type, got {type(given).__name__}")
    for country, kind in given.items():
        if country not in ENUMS["country"]:
            raise PostloanError(f"{where} {country}: not a country ({', '.join(ENUMS['country'])})")
        if kind not in OPERATORS:
            raise PostloanError(f"{where} {country} = {kind!r}: expected one of {', '.join(OPERATORS)}")
    return dict(given)


@kernel.hookimpl
def postloan_compliance_policies(config):
    params = config.get("policy", {})   # third-party policies' sections are theirs to check
    operator = _operator(config)
    built = []
    for policy in POLICIES:
        given = params.get(policy.name, {})
        if not isinstance(given, Mapping):
            raise PostloanError(f'[policy."{policy.name}"] must be a table of parameters')
        built.append(policy(operator, **given))
    return built


def rulebook(policies: Sequence[CompiledPolicy] = None) -> str:
    """The table of every built-in rule (docs/compliance.md): policy, reason code,
    jurisdiction, source, whom it binds, what it does, boundary, how sure the source is."""
    policies = policies or [p() for p in POLICIES]
    lines = ["| policy | reason code | jurisdiction | source and section | binds | what it does | boundary | "
             "how sure |", "|---|---|---|---|---|---|---|---|"]
    for p in policies:
        for r in p.RULES:
            cells = (f"`{p.name}`", f"`{r.reason}`", r.jurisdiction, r.source, r.binds, r.does, r.boundary, r.sure)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def settlement(owed, proceeds, expenses=0.0) -> dict[str, np.ndarray]:
    """After a repossessed car is sold: what the sale leaves owing or owes back — UCC § 9-615
    (proceeds go to the expenses of retaking and selling, then the debt; a surplus to the
    debtor, a deficiency from them; § 9-616 explains the calculation to a consumer) and CN Civil
    Code art. 643 (价款扣除未付价款及必要费用后有剩余的返还，不足部分由买受人清偿). ``owed``: what the
    debtor owed at the sale (outstanding principal + overdue interest + late charges);
    ``proceeds``: the sale amount (NaN: not sold); ``expenses``: retaking and selling costs.
    Returns ``owed``, ``proceeds``, ``expenses``, ``deficiency`` and ``surplus`` (NaN where
    not sold)."""
    owed = np.asarray(owed, np.float64)
    proceeds = np.asarray(proceeds, np.float64)
    expenses = np.broadcast_to(np.asarray(expenses, np.float64), owed.shape)
    net = proceeds - expenses - owed
    return {"owed": owed, "proceeds": proceeds, "expenses": expenses,
            "deficiency": np.where(np.isnan(net), np.nan, np.maximum(-net, 0.0)),
            "surplus": np.where(np.isnan(net), np.nan, np.maximum(net, 0.0))}


if __name__ == "__main__":  # pragma: no cover
    print(rulebook(), end="")
