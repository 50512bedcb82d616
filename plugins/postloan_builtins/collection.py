"""The built-in collection strategy (the seed's tiers) and its scripts (话术).

``tiered`` turns the ``collection_tier``, ``litigation`` and ``disposal`` decision columns
into actions: SMS and voice bot for the mild tier, phone calls for the medium tier, field
visits for the severe tier, third-party contact when the debtor cannot be reached, legal
review, repossession and disposal. Each action carries a script rendered from the template
files in ``templates/`` (one per language, edited by the business), vectorized per template.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kernel
from kernel.errors import PostloanError
from kernel.hookspecs import ACTION, NULL_TIME, US_PER_MINUTE, AccountRow, Batch, CollectionStrategy
from kernel.schema import ENUMS

from .compliance import DEBT_TERMS, mentions_debt

__all__ = ["TieredStrategy", "Template", "TemplateSet", "FIELDS", "load_templates", "format_money",
           "TIERS", "TIER_CHANNELS"]

TEMPLATES_DIR = Path(__file__).with_name("templates")

#: the collection_tier ruleset's enums, in their order
TIERS = ("NONE", "MILD", "MEDIUM", "SEVERE")
TIER_CHANNELS = ("NONE", "SMS_VOICE", "PHONE", "FIELD_VISIT")

#: below this many rows a template is rendered with Python string formatting, which is faster
#: than Arrow's per-call overhead; both give the same text (tests compare them)
SMALL_RENDER = 64


@dataclass(frozen=True)
class Field:
    """A value a template can show."""

    name: str
    kind: str          # text, int, money, date, constant
    debt: bool         # reveals the debt: forbidden in third-party scripts
    doc: str


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("name", "text", False, "the debtor's name (personal data)"),
    Field("account_tail", "text", False, "last 4 characters of the account id"),
    Field("dpd", "int", True, "days past due"),
    Field("overdue_amount", "money", True, "overdue principal + interest"),
    Field("penalty_interest", "money", True, "penalty interest accrued (罚息)"),
    Field("total_due", "money", True, "overdue amount + penalty interest"),
    Field("installment_amount", "money", True, "the current installment"),
    Field("vehicle", "text", False, "brand and model"),
    Field("promise_date", "date", True, "date of the open promise to pay (— if none)"),
    Field("as_of", "date", False, "decision date"),
    Field("demand_notices", "int", True, "formal demand notices delivered"),
    Field("lender", "constant", False, "the lender's name ([strategy.tiered.<language>] lender)"),
    Field("hotline", "constant", False, "the service number ([strategy.tiered.<language>] hotline)"),
    Field("caller", "constant", False, "how callers introduce themselves to third parties"),
    Field("valuation", "money", True, "the car's valuation (valuation.price)"),
    Field("disposal_channel", "text", True, "recommended disposal channel"),
    Field("expected_net", "money", True, "expected net proceeds of that channel"),
    Field("disposal_days", "int", True, "expected days to sale on that channel"),
)}

_BOOK_MONEY = {"overdue_amount": "overdue_amount", "penalty_interest": "penalty_interest",
               "installment_amount": "installment_amount", "valuation": "valuation.price",
               "expected_net": "disposal_channel.expected_net"}
_INTS = {"dpd": "dpd", "demand_notices": "demand_notices_sent", "disposal_days": "disposal_channel.expected_days"}
_TEMPLATE_KEYS = {"action", "tiers", "text", "description"}
_MISSING = "—"


@dataclass(frozen=True)
class Template:
    id: str
    language: str
    action: str
    tiers: frozenset[str]
    pieces: tuple[tuple[str, str | None], ...]      # (literal, field or None)
    source: str                                      # file it came from

    @property
    def fields(self) -> list[str]:
        return [f for _, f in self.pieces if f]


class TemplateSet:
    """Every template of every language, in file order."""

    def __init__(self, templates: list[Template], files: dict[str, str]):
        self.templates = templates
        self.files = files              # language -> file

    def pick(self, language: str, action: str, tier: str) -> Template | None:
        for t in self.templates:
            if t.language == language and t.action == action and tier in t.tiers:
                return t
        return None


def load_templates(directory: str | Path = TEMPLATES_DIR) -> TemplateSet:
    """Load and check ``<language>.toml`` files: unknown fields, keys, actions and tiers, and
    debt in third-party scripts, are errors naming the file, template and field."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PostloanError(f"{directory}: template directory not found")
    templates: list[Template] = []
    files: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        language = path.stem
        if language not in ENUMS["language"]:
            raise PostloanError(f"{path}: the file name must be a language ({', '.join(ENUMS['language'])}).toml")
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise PostloanError(f"{path}: not valid TOML: {e}") from None
        except UnicodeDecodeError:
            raise PostloanError(f"{path}: not UTF-8 text") from None
        files[language] = str(path)
        for tid, spec in data.items():
            templates.append(_template(path, language, tid, spec))
    if not files:
        raise PostloanError(f"{directory}: no template files (<language>.toml)")
    return TemplateSet(templates, files)


def _template(path: Path, language: str, tid: str, spec: Any) -> Template:
    where = f"{path}: template {tid!r}"
    if not isinstance(spec, Mapping):
        raise PostloanError(f"{where}: expected a table with action and text")
    unknown = sorted(set(spec) - _TEMPLATE_KEYS)
    if unknown:
        raise PostloanError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_TEMPLATE_KEYS))})")
    action = spec.get("action")
    if action not in ACTION:
        raise PostloanError(f"{where}: action {action!r} is not one of {', '.join(ACTION)}")
    tiers = spec.get("tiers", list(TIERS))
    if not isinstance(tiers, list) or not tiers or any(t not in TIERS for t in tiers):
        raise PostloanError(f"{where}: tiers must be a list of {', '.join(TIERS)}, got {tiers!r}")
    text = spec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PostloanError(f"{where}: text must be a non-empty string")
    pieces = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise PostloanError(f"{where}: {e} (write {{{{ and }}}} for literal braces)") from None
    for literal, field, spec_, conversion in parsed:
        if field is not None:
            if field not in FIELDS:
                close = difflib.get_close_matches(field, FIELDS, n=1)
                hint = f"; did you mean {{{close[0]}}}?" if close else f" (fields: {', '.join(FIELDS)})"
                raise PostloanError(f"{where}: unknown field {{{field}}}{hint}")
            if spec_ or conversion:
                raise PostloanError(f"{where}: field {{{field}}} takes no format (amounts, dates and numbers "
                                    f"are formatted by postloan)")
            if action == "THIRD_PARTY_CONTACT" and FIELDS[field].debt:
                raise PostloanError(f"{where}: a third-party script must not mention the debt, but uses {{{field}}}")
        pieces.append((literal, field))
    if action == "THIRD_PARTY_CONTACT":
        literal_text = pa.array(["".join(lit for lit, _ in pieces)])
        if mentions_debt(literal_text)[0]:
            word = next(t for t in DEBT_TERMS if t.lower() in literal_text[0].as_py().lower())
            raise PostloanError(f"{where}: a third-party script must not mention the debt, but says {word!r}")
    return Template(tid, language, action, frozenset(tiers), tuple(pieces), str(path))


# --------------------------------------------------------------------------------------------
# Vectorized formatting
# --------------------------------------------------------------------------------------------

def format_money(values: np.ndarray, symbols) -> pa.Array:
    """Amounts as ``¥1,234.56`` (a symbol per row, or one for all), vectorized; NaN → "—".

    The UTF-8 bytes are laid out right-aligned in a fixed-width byte matrix (two decimals,
    the point, digits with a comma every three, the symbol, the sign), then packed into an
    Arrow string array directly: no per-value Python. The cents are ``round(|x| × 100)``
    (half to even), exactly as :func:`format_money_small`."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    if n == 0:
        return pa.array([], pa.string())
    if isinstance(symbols, str):
        names, symbol_of = [symbols], np.zeros(n, np.int64)
    elif isinstance(symbols, _Symbols):
        names, symbol_of = symbols.names, symbols.index
    else:
        names, symbol_of = _distinct(symbols)
    encoded = [x.encode("utf-8") for x in names]
    missing = np.isnan(values)
    cents = np.round(np.abs(np.where(missing, 0.0, values)) * 100).astype(np.int64)
    whole, frac = cents // 100, cents % 100
    digits = np.ones(n, np.int64)
    for power in _POWERS[1:]:
        above = whole >= power
        if not above.any():
            break
        digits += above
    # fixed layout: 18 digits with their commas, the point and two decimals, right-aligned
    base = 1 + max((len(x) for x in encoded), default=0)   # sign and symbol come first
    width = base + 23 + 3
    out = np.zeros((n, width), np.uint8)
    rest = whole.copy()
    for k in range(int(digits.max())):            # whole columns: no per-row indexing
        rest, digit = np.divmod(rest, 10)
        out[:, base + _DIGIT_COLUMNS[k]] = 48 + digit
    out[:, base + _COMMA_COLUMNS] = ord(",")
    out[:, -3] = ord(".")
    out[:, -2] = 48 + frac // 10
    out[:, -1] = 48 + frac % 10
    every = np.arange(n)
    start = base + _DIGIT_COLUMNS[digits - 1]             # the most significant digit
    for j, sym in enumerate(encoded):
        mine = symbol_of == j
        for b, byte in enumerate(reversed(sym)):
            out[every[mine], start[mine] - 1 - b] = byte
        start = np.where(mine, start - len(sym), start)
    negative = (values < 0) & (cents > 0)
    start = np.where(negative, start - 1, start)
    out[every[negative], start[negative]] = ord("-")
    dash = "—".encode("utf-8")
    out[missing, width - len(dash):] = np.frombuffer(dash, np.uint8)
    start = np.where(missing, width - len(dash), start)
    data = out[np.arange(width) >= start[:, None]]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(width - start, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


#: 10**k for the 18 digits an int64 amount in cents can have in its whole part
_POWERS = 10 ** np.arange(18, dtype=np.int64)
#: the digit field: 18 digits and 5 commas, 23 columns; digit k (0: units) sits in column
#: 22 − k − k // 3, a comma right of every third digit from the units
_DIGIT_COLUMNS = np.array([22 - k - k // 3 for k in range(18)])
_COMMA_COLUMNS = np.array([23 - 4 * m for m in range(1, 6)])


@dataclass(frozen=True)
class _Symbols:
    names: list
    index: np.ndarray


def _distinct(symbols) -> tuple[list[str], np.ndarray]:
    """The distinct symbols and each row's index among them."""
    if isinstance(symbols, (pa.Array, pa.ChunkedArray)):
        symbols = np.array(symbols.to_pylist(), dtype=object)
    names, index = np.unique(np.asarray(symbols, dtype=object).astype(str), return_inverse=True)
    return [str(x) for x in names], index


def format_money_small(values, symbols) -> list[str]:
    """The same text as :func:`format_money`, with Python formatting (for a few rows)."""
    out = []
    for v, sym in zip(values, symbols):
        if v != v:
            out.append(_MISSING)
            continue
        c = round(abs(v) * 100)
        out.append(f"{'-' if v < 0 and c > 0 else ''}{sym}{c // 100:,}.{c % 100:02d}")
    return out


def _days_text(days: np.ndarray) -> pa.Array:
    valid = days != NULL_TIME
    arr = pa.array(np.where(valid, days, 0).astype(np.int32), pa.int32()).cast(pa.date32()).cast(pa.string())
    return pc.if_else(pa.array(valid), arr, _MISSING)


def _days_text_small(days) -> list[str]:
    epoch = dt.date(1970, 1, 1)
    return [_MISSING if d == NULL_TIME else (epoch + dt.timedelta(days=int(d))).isoformat()
            for d in days]


class _Renderer:
    """Renders templates for groups of actions; field columns are computed once per batch."""

    def __init__(self, batch: Batch, constants: Mapping[str, Mapping[str, str]], symbols: tuple[list, np.ndarray]):
        self.batch = batch
        self.constants = constants
        self.symbols = symbols            # (distinct symbols, index per account row)

    def _symbol_codes(self, rows: np.ndarray):
        """The rows' currency symbols as (distinct symbols, index per row) for format_money."""
        names, index = self.symbols
        return _Symbols(names, index[rows])

    def _text(self, field: str, rows: np.ndarray, small: bool):
        """A text field for ``rows`` only (a book holds millions of names; a batch scripts a
        few): an Arrow array, or a list of str for a few rows."""
        take = None if small else pa.array(rows)

        def column(name: str):
            raw = self.batch.raw(name)
            if small:
                values = raw.take(pa.array(rows)).to_pylist() if isinstance(raw, (pa.Array, pa.ChunkedArray)) \
                    else np.asarray(raw, dtype=object)[rows].tolist()
                return [_MISSING if v is None else str(v) for v in values]
            if isinstance(raw, (pa.Array, pa.ChunkedArray)):
                return _as_text(raw.take(take))
            return pa.array(np.asarray(raw, dtype=object)[rows], pa.string())

        if field == "name":
            return column("name")
        if field == "account_tail":
            ids = column("account_id")
            return [v[-4:] for v in ids] if small else pc.utf8_slice_codeunits(ids, -4)
        if field == "vehicle":
            brand, model = column("brand"), column("model")
            return [f"{b} {m}" for b, m in zip(brand, model)] if small else pc.binary_join_element_wise(brand, model, " ")
        if field == "disposal_channel":
            channel = column("disposal_channel.channel")
            return channel if small else pc.fill_null(channel, _MISSING)
        raise AssertionError(field)

    def render_few(self, template: Template, rows: np.ndarray) -> list[str]:
        """``template`` for a few accounts, with Python string formatting (Arrow's per-call
        overhead exceeds the work below :data:`SMALL_RENDER` rows)."""
        parts = []
        for literal, field in template.pieces:
            if literal:
                parts.append(literal)
            if field:
                parts.append(self._field(field, template.language, rows, True))
        strings = [p if isinstance(p, str) else None for p in parts]
        columns = [p for p in parts if not isinstance(p, str)]
        out = []
        for i in range(rows.shape[0]):
            it = iter(columns)
            out.append("".join(s if s is not None else next(it)[i] for s in strings))
        return out

    def render_all(self, templates: list[Template], chosen: np.ndarray, rows: np.ndarray) -> pa.Array:
        """Every action's script at once (template ``templates[chosen[k]]`` for account
        ``rows[k]``; −1: none): actions sorted by template, each field gathered and formatted
        once for all of them, each template joined over its contiguous slice."""
        n = rows.shape[0]
        order = np.argsort(chosen, kind="stable")
        ordered, by_template = rows[order], chosen[order]
        starts = np.flatnonzero(np.r_[True, by_template[1:] != by_template[:-1]])
        ends = np.r_[starts[1:], n]
        columns: dict[str, pa.Array] = {}
        chunks = []
        for start, end in zip(starts.tolist(), ends.tolist()):
            i = int(by_template[start])
            if i < 0:
                chunks.append(pa.nulls(end - start, pa.string()))
                continue
            template = templates[i]
            parts = []
            for literal, field in template.pieces:
                if literal:
                    parts.append(literal)
                if field and FIELDS[field].kind == "constant":
                    parts.append(self._field(field, template.language, ordered[:0], False))
                elif field:
                    if field not in columns:
                        columns[field] = self._field(field, template.language, ordered, False)
                    parts.append(columns[field].slice(start, end - start))
            chunks.append(pc.binary_join_element_wise(*parts, ""))
        inverse = np.empty(n, np.int64)
        inverse[order] = np.arange(n)
        return pa.concat_arrays(chunks).take(pa.array(inverse))

    def _field(self, field: str, language: str, rows: np.ndarray, small: bool):
        kind = FIELDS[field].kind
        b = self.batch
        if kind == "constant":
            return str(self.constants.get(language, {}).get(field, ""))
        if field == "as_of":
            return b.as_of.isoformat()
        if kind == "money":
            if field == "total_due":
                values = b.float("overdue_amount")[rows] + b.float("penalty_interest")[rows]
            else:
                column = _BOOK_MONEY[field]
                values = b.float(column)[rows] if b.has(column) else np.full(rows.shape[0], np.nan)
            if small:
                names, index = self.symbols
                return format_money_small(values.tolist(), [names[i] for i in index[rows].tolist()])
            return format_money(values, self._symbol_codes(rows))
        if kind == "int":
            column = _INTS[field]
            if not b.has(column):
                return [_MISSING] * rows.shape[0] if small else pa.array([_MISSING] * rows.shape[0], pa.string())
            values = b.int(column, NULL_TIME)[rows]
            missing = values == NULL_TIME
            if small:
                return [_MISSING if m else str(v) for v, m in zip(values.tolist(), missing.tolist())]
            return pc.if_else(pa.array(missing), _MISSING, pa.array(values).cast(pa.string()))
        if kind == "date":
            values = b.days(field)[rows]
            return _days_text_small(values.tolist()) if small else _days_text(values)
        if field == "disposal_channel" and not b.has("disposal_channel.channel"):
            return [_MISSING] * rows.shape[0] if small else pa.array([_MISSING] * rows.shape[0], pa.string())
        taken = self._text(field, rows, small)
        return taken if small else pc.fill_null(taken, _MISSING)


def _or_missing(value: str | None) -> str:
    return _MISSING if value is None else value


def _as_text(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(pa.string())


# --------------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------------

_STRATEGY_DEFAULTS = {
    "templates": None,                      # directory of <language>.toml; None: the built-in ones
    "max_calls": 3,                         # phone calls planned per account per run
    "call_spacing_minutes": 180,            # between planned calls of one account
    "unreachable_after_failed_attempts": 3,
    "currency": {"CN": "¥", "US": "$"},     # symbol by the debtor's country
    "language": {"CN": "zh", "US": "en"},   # script language by the debtor's country
    "zh": {"lender": "示例汽车金融", "hotline": "400-800-8000", "caller": "客户服务中心"},
    "en": {"lender": "Example Auto Finance", "hotline": "+1-800-555-0100", "caller": "Example Customer Service"},
}


class TieredStrategy(CollectionStrategy):
    """The seed's tiers. Per account, from the decision columns:

    - ``collection_tier.channel`` SMS_VOICE → SMS and VOICE_BOT; PHONE → up to
      ``collection_tier.calls_per_day`` calls (at most ``max_calls``), spaced
      ``call_spacing_minutes`` apart; FIELD_VISIT → a field visit (not once repossessed).
      Phone contact needs a valid number;
    - tier MEDIUM or SEVERE and the debtor unreachable (invalid number, or 3 consecutive failed
      attempts) with a third-party contact on file → THIRD_PARTY_CONTACT;
    - ``collection_tier.legal_review`` → LEGAL_REVIEW;
    - ``disposal.repossess`` (car not yet repossessed) → REPOSSESSION;
      ``disposal.dispose`` with a recommended disposal channel → DISPOSAL.

    Every action's priority is ``collection_tier.priority``; earliest time is now (calls after
    the first: now + k × spacing); compliance then defers what may not happen yet.
    """

    name = "tiered"

    def __init__(self, config: Mapping | None = None):
        given = dict((config or {}).get("strategy", {}).get(self.name, {}))
        unknown = sorted(set(given) - set(_STRATEGY_DEFAULTS))
        if unknown:
            raise PostloanError(f"[strategy.{self.name}]: unknown setting {unknown[0]!r} "
                                f"(settings: {', '.join(_STRATEGY_DEFAULTS)})")
        settings = {**_STRATEGY_DEFAULTS, **given}
        for key in ("currency", "language", "zh", "en"):
            settings[key] = {**_STRATEGY_DEFAULTS[key], **given.get(key, {})}
        for key in ("max_calls", "call_spacing_minutes", "unreachable_after_failed_attempts"):
            if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 0:
                raise PostloanError(f"[strategy.{self.name}] {key}: expected a whole number ≥ 0, got {settings[key]!r}")
        self.settings = settings
        self.templates = load_templates(settings["templates"] or TEMPLATES_DIR)
        # template index by (language, action, tier) code: the first matching template wins
        languages = ENUMS["language"]
        self._pick = np.full((len(languages), len(ACTION), len(TIERS)), -1, np.int64)
        for i, t in reversed(list(enumerate(self.templates.templates))):
            for tier in t.tiers:
                self._pick[languages.index(t.language), ACTION[t.action], TIERS.index(tier)] = i
        countries = ENUMS["country"]
        self._language_of_country = np.array(
            [languages.index(settings["language"].get(c, "zh")) for c in countries] + [languages.index("zh")], np.int64)
        self._symbol_of_country = np.array([settings["currency"].get(c, "") for c in countries] + [""], dtype=object)
        self._symbol_list = [str(x) for x in self._symbol_of_country]     # index −1: the last, ""
        self._ids = np.array([t.id for t in self.templates.templates] + [None], dtype=object)
        self._language_names = np.array(languages, dtype=object)
        for country, language in settings["language"].items():
            if language not in self.templates.files:
                raise PostloanError(f"[strategy.{self.name}.language] {country} = {language!r}, but there is no "
                                    f"{language}.toml template file")
        self._check_coverage()

    def _check_coverage(self) -> None:
        needed = {a: TIERS[1:] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT")}
        needed.update({a: TIERS for a in ("LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL")})
        for language, path in self.templates.files.items():
            for action, tiers in needed.items():
                for tier in tiers:
                    if self.templates.pick(language, action, tier) is None:
                        raise PostloanError(f"{path}: no template for action {action} at tier {tier}")

    def plan(self, batch: Batch) -> dict[str, Any]:
        s = self.settings
        n = batch.n
        tier = batch.enum("collection_tier.tier", TIERS)
        channel = batch.enum("collection_tier.channel", TIER_CHANNELS)
        legal = batch.bool("collection_tier.legal_review")
        priority = np.nan_to_num(batch.float("collection_tier.priority"))
        calls = np.clip(batch.int("collection_tier.calls_per_day", 1), min(1, s["max_calls"]), s["max_calls"]) \
            if batch.has("collection_tier.calls_per_day") else np.full(n, min(1, s["max_calls"]), np.int64)
        phone_ok = batch.bool("phone_valid")
        unreachable = ~phone_ok | (batch.int("consecutive_failed_attempts") >= s["unreachable_after_failed_attempts"])
        repossessed = batch.bool("repossessed")
        repossess = batch.bool("disposal.repossess") if batch.has("disposal.repossess") else np.zeros(n, bool)
        dispose = batch.bool("disposal.dispose") if batch.has("disposal.dispose") else np.zeros(n, bool)
        has_channel = batch.has("disposal_channel.channel")

        no = np.zeros(n, bool)
        # one column per action kind, in plan order; an account's actions come out together
        kinds = np.array([ACTION[a] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT",
                                               "LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL")], np.int8)
        wanted = np.stack([
            (channel == 1) & phone_ok,
            (channel == 1) & phone_ok,
            (channel == 2) & phone_ok,
            (channel == 3) & ~repossessed,
            (tier >= 2) & unreachable & batch.bool("has_third_party_contact"),
            legal,
            repossess & ~repossessed,
            dispose & batch.valid("disposal_channel.channel") if has_channel else no,
        ], axis=1)
        rows, kind = np.nonzero(wanted)
        if rows.size == 0:
            return {"row": rows, "action": np.zeros(0, np.int8), "priority": np.zeros(0),
                    "earliest_at": np.zeros(0, np.int64)}
        action = kinds[kind]
        # phone calls: calls_per_day of them per account, spaced apart; every other action once
        reps = np.where(action == ACTION["PHONE"], calls[rows], 1)
        if (reps != 1).any():
            k = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
            rows, action = np.repeat(rows, reps), np.repeat(action, reps)
        else:
            k = np.zeros(rows.size, np.int64)
        earliest = batch.now_us + k * s["call_spacing_minutes"] * US_PER_MINUTE
        script_id, language, script = self._render(batch, rows, action, tier)
        return {"row": rows, "action": action, "priority": priority[rows], "earliest_at": earliest,
                "script_id": script_id, "language": language, "script": script}

    def _render(self, batch: Batch, rows: np.ndarray, action: np.ndarray, tier: np.ndarray):
        s = self.settings
        country = batch.enum("country")
        renderer = _Renderer(batch, {k: s[k] for k in ("zh", "en")}, (self._symbol_list, country))
        n = rows.shape[0]
        language = self._language_of_country[country[rows]]
        chosen = self._pick[language, action, np.maximum(tier[rows], 0)]
        templates = self.templates.templates
        ids = self._ids[chosen]
        if n <= SMALL_RENDER:                     # a request: Python text, one Arrow array at the end
            texts: list = [None] * n
            for i in set(chosen.tolist()) - {-1}:
                at = np.flatnonzero(chosen == i)
                for j, text in zip(at.tolist(), renderer.render_few(templates[i], rows[at])):
                    texts[j] = text
            script = pa.array(texts, pa.string())
        else:
            script = renderer.render_all(templates, chosen, rows)
        return ids, np.where(chosen >= 0, self._language_names[language], None), script


    # -- the scalar twin, for a request's few accounts -----------------------------------------
    _KINDS = ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT", "LEGAL_REVIEW", "REPOSSESSION",
              "DISPOSAL")

    def plan_one(self, a: AccountRow) -> list[dict]:
        """:meth:`plan` for one account, in Python: the same actions in the same order."""
        s = self.settings
        tier_name, channel_name = a.text("collection_tier.tier"), a.text("collection_tier.channel")
        tier = TIERS.index(tier_name) if tier_name in TIERS else -1
        channel = TIER_CHANNELS.index(channel_name) if channel_name in TIER_CHANNELS else -1
        low = min(1, s["max_calls"])
        calls = min(max(a.int("collection_tier.calls_per_day", 1), low), s["max_calls"]) \
            if a.has("collection_tier.calls_per_day") else low
        phone_ok = a.bool("phone_valid")
        unreachable = not phone_ok or a.int("consecutive_failed_attempts") >= s["unreachable_after_failed_attempts"]
        repossessed = a.bool("repossessed")
        wanted = (
            channel == 1 and phone_ok,
            channel == 1 and phone_ok,
            channel == 2 and phone_ok,
            channel == 3 and not repossessed,
            tier >= 2 and unreachable and a.bool("has_third_party_contact"),
            a.bool("collection_tier.legal_review"),
            a.has("disposal.repossess") and a.bool("disposal.repossess") and not repossessed,
            a.has("disposal_channel.channel") and a.has("disposal.dispose") and a.bool("disposal.dispose")
            and a.value("disposal_channel.channel") is not None,
        )
        priority = a.float("collection_tier.priority")
        priority = 0.0 if priority != priority else priority
        country = a.text("country")
        code = ENUMS["country"].index(country) if country in ENUMS["country"] else -1
        language = int(self._language_of_country[code])
        symbol = self._symbol_of_country[code]
        out = []
        for kind, want in zip(self._KINDS, wanted):
            if not want:
                continue
            action = ACTION[kind]
            chosen = int(self._pick[language, action, max(tier, 0)])
            template = self.templates.templates[chosen] if chosen >= 0 else None
            script = self._render_one(template, a, symbol) if template else None
            for k in range(calls if kind == "PHONE" else 1):
                out.append({"action": kind, "priority": priority,
                            "earliest_at": a.batch.now_us + k * s["call_spacing_minutes"] * US_PER_MINUTE,
                            "script_id": template.id if template else None,
                            "language": template.language if template else None, "script": script})
        return out

    def _render_one(self, template: Template, a: AccountRow, symbol: str) -> str:
        parts = []
        for literal, field in template.pieces:
            parts.append(literal)
            if field:
                parts.append(self._field_one(field, template.language, a, symbol))
        return "".join(parts)

    def _field_one(self, field: str, language: str, a: AccountRow, symbol: str) -> str:
        kind = FIELDS[field].kind
        if kind == "constant":
            return str(self.settings.get(language, {}).get(field, ""))
        if field == "as_of":
            return a.batch.as_of.isoformat()
        if kind == "money":
            if field == "total_due":
                value = a.float("overdue_amount") + a.float("penalty_interest")
            else:
                column = _BOOK_MONEY[field]
                value = a.float(column) if a.has(column) else float("nan")
            return format_money_small([value], [symbol])[0]
        if kind == "int":
            column = _INTS[field]
            value = a.int(column, NULL_TIME) if a.has(column) else NULL_TIME
            return _MISSING if value == NULL_TIME else str(value)
        if kind == "date":
            return _days_text_small([a.days(field)])[0]
        if field == "account_tail":
            return _or_missing(a.text("account_id"))[-4:]
        if field == "vehicle":
            return f"{_or_missing(a.text('brand'))} {_or_missing(a.text('model'))}"
        if field == "disposal_channel":
            return _or_missing(a.text("disposal_channel.channel") if a.has("disposal_channel.channel") else None)
        return _or_missing(a.text(field))


@kernel.hookimpl
def postloan_collection_strategies(config):
    return [TieredStrategy(config)]
