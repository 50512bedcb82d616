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
import functools
import itertools
import math
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
from kernel.hookspecs import ACTION, NULL_TIME, US_PER_DAY, US_PER_MINUTE, Batch, CollectionStrategy, _scalar_us
from kernel.schema import ENUMS

from . import compliance_kernels as K
from . import strategy_kernel as SK
from .compliance import IDENTITY_MARKERS, VOICEMAIL_MARKERS, mentions_debt, screen_scripts

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
    Field("late_charge", "label", True, "what the contract calls its charge for paying late: 罚息 / 滞纳金, "
          "penalty interest / late fees ([strategy.tiered] late_charge by country)"),
    Field("routes", "label", True, "the enforcement routes the account's contract and records allow (legal review)"),
    Field("legal_basis", "label", True, "the recorded legal basis for a repossession"),
)}

#: the fields a third-party script may use: location information only (FDCPA § 804; the person
#: sought, who calls and a number to call back) — checked when templates load
THIRD_PARTY_FIELDS = frozenset({"name", "caller", "hotline"})
#: the fields a voice bot's limited-content voicemail may use (Reg F § 1006.2(j))
VOICEMAIL_FIELDS = frozenset({"name", "lender", "caller", "hotline"})
#: what a contact script must carry, by action and language (the screen's bits): checked when
#: templates load; the compliance policies check every rendered script again
_REQUIRED_NOTICES = {
    ("SMS", "zh"): (K.S_PAID_IGNORE, "如已还款请忽略"), ("SMS", "en"): (K.S_OPT_OUT_NOTICE, "Reply STOP to opt out"),
    ("PHONE", "zh"): (K.S_RECORDING_NOTICE, "本次通话将被录音"), ("PHONE", "en"): (K.S_RECORDING_NOTICE, "This call is recorded"),
    ("VOICE_BOT", "zh"): (K.S_RECORDING_NOTICE, "本次通话将被录音"),
    ("VOICE_BOT", "en"): (K.S_RECORDING_NOTICE, "This call is recorded"),
}
#: words and labels per language
LATE_CHARGES = {"penalty_interest": {"zh": "罚息", "en": "penalty interest"},
                "late_fee": {"zh": "滞纳金", "en": "late fees"}}

_BOOK_MONEY = {"overdue_amount": "overdue_amount", "penalty_interest": "penalty_interest",
               "installment_amount": "installment_amount", "valuation": "valuation.price",
               "expected_net": "disposal_channel.expected_net"}
_INTS = {"dpd": "dpd", "demand_notices": "demand_notices_sent", "disposal_days": "disposal_channel.expected_days"}
_TEMPLATE_KEYS = {"action", "tiers", "text", "description"}
_MISSING = "—"


#: a count's unit as a template writes it, ``{dpd:day|days}``: (singular, plural)
Unit = tuple[str, str]


def counted(value: int, unit: Unit | None) -> str:
    """``12`` → ``"12 days"``, ``1`` → ``"1 day"`` (the singular for one, as in English)."""
    if unit is None:
        return str(value)
    return f"{value} {unit[0] if abs(value) == 1 else unit[1]}"


@dataclass(frozen=True)
class Template:
    id: str
    language: str
    action: str
    tiers: frozenset[str]
    #: (literal, field or None, its unit, the field whose amount the piece needs or None): a
    #: piece of a clause ``{if <field>} … {end}`` is left out where that amount is not due
    pieces: tuple[tuple[str, str | None, Unit | None, str | None], ...]
    source: str                                      # file it came from

    @property
    def fields(self) -> list[str]:
        return [f for _, f, _, _ in self.pieces if f]

    @functools.cached_property
    def slots(self) -> tuple[tuple[str, str | None, Unit | None, tuple | None, str | None], ...]:
        """The pieces with the key a renderer caches each field's text under — (field,
        language) for a constant, (field, unit) otherwise — and the field a clause needs."""
        return tuple((literal, field, unit, None if not field else (field, self.language)
                      if FIELDS[field].kind in ("constant", "label") or field == "vehicle" else (field, unit), when)
                     for literal, field, unit, when in self.pieces)

    @functools.cached_property
    def clauses(self) -> tuple[str, ...]:
        """The fields of the template's clauses ``{if <field>}``, in order, each once."""
        return tuple(dict.fromkeys(when for _, _, _, when in self.pieces if when))

    def format_plan(self, said: tuple[bool, ...], constants: Mapping[str, str] | None = None) -> tuple[str, tuple]:
        """The template compiled for one account (its render plan): a ``str.format`` string of
        the literal pieces and numbered slots, and the slots' (key, field, unit) in number
        order, each field once — for the clauses said (``said[k]``: whether the clause of
        ``clauses[k]`` is said). ``constants``: the strategy's texts of the constant fields in
        the template's language, written into the string instead of a slot (they are the same
        for every account). The same pieces, in the same order, as :attr:`slots`; the caller
        keeps the plan (:meth:`TieredStrategy._render_one`: once per combination)."""
        said_of = dict(zip(self.clauses, said))
        number: dict = {}
        parts = []
        for literal, field, unit, key, when in self.slots:
            if when is not None and not said_of[when]:
                continue
            parts.append(_escaped(literal))
            if field and constants is not None and FIELDS[field].kind == "constant":
                parts.append(_escaped(str(constants.get(field, ""))))
            elif field:
                k = number.setdefault(key, (len(number), field, unit))[0]
                parts.append(f"{{{k}}}")
        return "".join(parts), tuple((key, field, unit) for key, (_, field, unit) in number.items())


def _escaped(text: str) -> str:
    """``text`` as a literal of a ``str.format`` string."""
    return text.replace("{", "{{").replace("}", "}}")


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
    when = None                                      # the field of the open {if …} clause
    for literal, field, spec_, conversion in parsed:
        if field is not None and (field.startswith("if ") or field == "end"):
            if spec_ or conversion:
                raise PostloanError(f"{where}: {{{field}}} takes no format")
            if field == "end":
                if when is None:
                    raise PostloanError(f"{where}: {{end}} without an {{if <field>}} before it")
                pieces.append((literal, None, None, when))
                when = None
                continue
            if when is not None:
                raise PostloanError(f"{where}: {{{field}}} inside the clause of {{if {when}}}: close it with {{end}} "
                                    f"first (clauses do not nest)")
            name = field[3:].strip()
            if name not in FIELDS or FIELDS[name].kind not in ("money", "int"):
                amounts = ", ".join(f for f, d in FIELDS.items() if d.kind in ("money", "int"))
                raise PostloanError(f"{where}: {{{field}}}: a clause depends on an amount or a count ({amounts})")
            if action == "THIRD_PARTY_CONTACT" and name not in THIRD_PARTY_FIELDS:
                raise PostloanError(f"{where}: a third-party script may use only location information "
                                    f"({', '.join('{' + f + '}' for f in sorted(THIRD_PARTY_FIELDS))}), but uses "
                                    f"{{{name}}}")
            pieces.append((literal, None, None, None))
            when = name
            continue
        if field is not None:
            if field not in FIELDS:
                close = difflib.get_close_matches(field, FIELDS, n=1)
                hint = f"; did you mean {{{close[0]}}}?" if close else f" (fields: {', '.join(FIELDS)})"
                raise PostloanError(f"{where}: unknown field {{{field}}}{hint}")
            unit = None
            if spec_ and FIELDS[field].kind == "int" and not conversion:
                unit = _unit(where, field, spec_)
            elif spec_ or conversion:
                raise PostloanError(f"{where}: field {{{field}}} takes no format (amounts, dates and numbers "
                                    f"are formatted by postloan; a count may name its unit: {{dpd:day|days}})")
            if action == "THIRD_PARTY_CONTACT" and field not in THIRD_PARTY_FIELDS:
                raise PostloanError(f"{where}: a third-party script may use only location information "
                                    f"({', '.join('{' + f + '}' for f in sorted(THIRD_PARTY_FIELDS))}), but uses "
                                    f"{{{field}}}")
            pieces.append((literal, field, unit, when))
        else:
            pieces.append((literal, None, None, when))
    if when is not None:
        raise PostloanError(f"{where}: the clause {{if {when}}} is not closed with {{end}}")
    # the script with every clause and with none: what it must say, it says either way; what
    # it must not, it does not say either way
    _check_structure(where, language, action, [p[:3] for p in pieces])
    if any(p[3] for p in pieces):
        _check_structure(where, language, action, [p[:3] for p in pieces if not p[3]])
    return Template(tid, language, action, frozenset(tiers), tuple(pieces), str(path))


def _check_structure(where: str, language: str, action: str, pieces) -> None:
    """What a script of ``action`` must say and where (docs/compliance.md, "Scripts"): the
    literal text is read by the same screen as every rendered script; fields by what they
    reveal."""
    literal = "".join(lit for lit, _, _ in pieces)
    # each field as a neutral mark «k» (k: its piece), so that the screen reads the words only
    text = "".join(lit + (f"«{k}»" if field else "") for k, (lit, field, _) in enumerate(pieces))
    at = {k: text.index(f"«{k}»") for k, (_, field, _) in enumerate(pieces) if field}
    bits = screen_scripts(pa.array([text]))[0]
    if action == "THIRD_PARTY_CONTACT":
        if bits & K.S_DEBT:
            raise PostloanError(f"{where}: a third-party script must not mention the debt, but says "
                                f"{_first_debt_word(literal)!r}")
        return
    if action not in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT"):
        return
    if bits & K.S_ANONYMOUS:
        raise PostloanError(f"{where}: the caller must be named truthfully (the institution), not as customer service")
    if bits & K.S_FALSE_THREAT:
        raise PostloanError(f"{where}: the script threatens what a lender may not ({_first_threat(literal)!r})")
    if not any(f == "lender" for _, f, _ in pieces):
        raise PostloanError(f"{where}: the script must name the lender ({{lender}}): truthful identification")
    need = _REQUIRED_NOTICES.get((action, language))
    if need and not bits & need[0]:
        raise PostloanError(f"{where}: the script must say {need[1]!r}")
    if action != "SMS":
        marker = next((m for m in IDENTITY_MARKERS if m in text), None)
        if marker is None:
            raise PostloanError(f"{where}: the script must mark where the debtor's identity is confirmed "
                                f"({' or '.join(IDENTITY_MARKERS)}): no debt detail before it")
        before = text[:text.index(marker)]
        revealing = [f for k, (_, f, _) in enumerate(pieces) if f and FIELDS[f].debt and at[k] < len(before)]
        if revealing or bits & K.S_DEBT_BEFORE_IDENTITY:
            what = f"{{{revealing[0]}}}" if revealing else repr(_first_debt_word(before))
            raise PostloanError(f"{where}: debt details before the identity marker ({what})")
    if action == "VOICE_BOT":
        marker = next((m for m in VOICEMAIL_MARKERS if m in text), None)
        if marker is None:
            raise PostloanError(f"{where}: a voice-bot script must end with a limited-content voicemail "
                                f"({' or '.join(VOICEMAIL_MARKERS)} …)")
        after = text[text.index(marker):]
        extra = [f for k, (_, f, _) in enumerate(pieces) if f and f not in VOICEMAIL_FIELDS and at[k] > text.index(marker)]
        if extra or not bits & K.S_VOICEMAIL_OK:
            what = f"{{{extra[0]}}}" if extra else repr(_first_debt_word(after))
            raise PostloanError(f"{where}: the voicemail may name only the business, the person and a number, "
                                f"but has {what}")


def _first_debt_word(text: str) -> str:
    from .compliance import _DEBT_RE
    m = _DEBT_RE.search(text)
    return m.group(0) if m else text[:20]


def _first_threat(text: str) -> str:
    from .compliance import _CHECK_RE
    m = _CHECK_RE["threat"].search(text)
    return m.group(0) if m else ""


def _unit(where: str, field: str, spec: str) -> Unit:
    singular, bar, plural = spec.partition("|")
    if not bar or not singular.strip() or not plural.strip() or "|" in plural:
        raise PostloanError(f"{where}: {{{field}:{spec}}}: a count's unit is written "
                            f"{{{field}:singular|plural}}, e.g. {{dpd:day|days}}")
    return singular.strip(), plural.strip()


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
    return [_money_text(v, sym) for v, sym in zip(values, symbols)]


def _money_text(v: float, sym: str) -> str:
    """One amount as :func:`format_money_small` writes it."""
    if v != v:
        return _MISSING
    c = round(abs(v) * 100)
    return f"{'-' if v < 0 and c > 0 else ''}{sym}{c // 100:,}.{c % 100:02d}"


def _days_text(days: np.ndarray) -> pa.Array:
    valid = days != NULL_TIME
    arr = pa.array(np.where(valid, days, 0).astype(np.int32), pa.int32()).cast(pa.date32()).cast(pa.string())
    return pc.if_else(pa.array(valid), arr, _MISSING)


def _days_text_small(days) -> list[str]:
    epoch = dt.date(1970, 1, 1)
    return [_MISSING if d == NULL_TIME else (epoch + dt.timedelta(days=int(d))).isoformat()
            for d in days]


def load_vehicle_names(path: str | Path | None = None) -> dict[str, tuple[str, dict[str, str]]]:
    """Chinese brand and model names (data/vehicle_names_zh.toml): brand → (中文品牌, {model:
    中文车型}); a malformed entry is an error naming the file and brand."""
    path = Path(path or Path(__file__).with_name("data") / "vehicle_names_zh.toml")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PostloanError(f"{path}: cannot read the vehicle names ({e})") from None
    out = {}
    for brand, spec in data.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or \
                not isinstance(spec.get("models", {}), Mapping) or \
                not all(isinstance(v, str) for v in spec.get("models", {}).values()):
            raise PostloanError(f"{path}: [{brand}] needs name = \"<中文品牌>\" and models = {{ \"<model>\" = \"<中文车型>\" }}")
        out[brand] = (spec["name"], dict(spec.get("models", {})))
    return out


#: enforcement routes: (bit, zh, en) — the legal review's script lists those the account's
#: contract and records allow (docs/compliance.md, "Litigation routes")
_ROUTES = ((1, "网络仲裁（已约定仲裁）", "online arbitration (arbitration agreed)"),
           (2, "赋强公证（向公证机构申请执行证书后申请法院执行）",
            "notarised enforceable instrument (an enforcement certificate, then the court)"),
           (4, "实现担保物权特别程序（抵押已登记、无实质争议）",
            "special procedure to realise the security interest (mortgage registered, no dispute)"),
           (8, "诉讼（合同约定诉讼管辖）", "litigation (the contract's clause)"))
_NO_ROUTE = {"zh": "暂无可用途径（须先补足前提）", "en": "no route yet (its preconditions are not met)"}
#: legal bases of a repossession: (bit, zh, en)
_BASES = ((1, "客户书面同意交车", "the debtor's written agreement to hand the car over"),
          (2, "法院判决或裁定", "a court order"),
          (4, "仲裁裁决（经法院执行）", "an arbitral award (enforced through the court)"))
_NO_BASIS = {"zh": "未记录法律依据（不得收车）", "en": "no legal basis recorded (do not repossess)"}


class _Renderer:
    """Renders templates for groups of actions; field columns are computed once per batch."""

    def __init__(self, batch: Batch, constants: Mapping[str, Mapping[str, str]], symbols: tuple[list, np.ndarray],
                 late_charge: np.ndarray | None = None, vehicle_names: Mapping | None = None):
        self.batch = batch
        self.constants = constants
        self.symbols = symbols            # (distinct symbols, index per account row)
        self._symbols_of: tuple | None = None
        self.late_charge = late_charge    # per country code (−1 last): a key of LATE_CHARGES
        self.vehicle_names = vehicle_names or {}

    def _symbol_codes(self, rows: np.ndarray):
        """The rows' currency symbols as (distinct symbols, index per row) for format_money."""
        names, index = self.symbols
        return _Symbols(names, index[rows])

    def _symbol_list(self, rows: np.ndarray) -> list[str]:
        """The rows' currency symbols, for a few rows (the same rows for every money field)."""
        if self._symbols_of is None or self._symbols_of[0] is not rows:
            names, index = self.symbols
            self._symbols_of = (rows, [names[i] for i in index[rows].tolist()])
        return self._symbols_of[1]

    def _text(self, field: str, rows: np.ndarray, small: bool, language: str = "en"):
        """A text field for ``rows`` only (a book holds millions of names; a batch scripts a
        few): an Arrow array, or a list of str for a few rows."""
        column = self._column_few if small else self._column_all
        if field == "name":
            return column("name", rows)
        if field == "account_tail":
            ids = column("account_id", rows)
            return [v[-4:] for v in ids] if small else pc.utf8_slice_codeunits(ids, -4)
        if field == "vehicle":
            brand, model = column("brand", rows), column("model", rows)
            if language == "zh" and self.vehicle_names:
                names = self.vehicle_names
                if small:
                    return [_zh_vehicle(names, b, m) for b, m in zip(brand, model)]
                # a book has a few hundred models: name each pair once (a null as the few rows' "—")
                pairs = pc.binary_join_element_wise(pc.fill_null(brand, _MISSING), pc.fill_null(model, _MISSING),
                                                    "\x00")
                encoded = pairs.dictionary_encode()
                distinct = [p.split("\x00", 1) for p in encoded.dictionary.to_pylist()]
                return pa.array([_zh_vehicle(names, b, m) for b, m in distinct], pa.string()).take(encoded.indices)
            return [f"{b} {m}" for b, m in zip(brand, model)] if small else pc.binary_join_element_wise(brand, model, " ")
        if field == "disposal_channel":
            channel = column("disposal_channel.channel", rows)
            return channel if small else pc.fill_null(channel, _MISSING)
        raise AssertionError(field)

    def _column_few(self, name: str, rows: np.ndarray) -> list[str]:
        return _few_texts(self.batch.raw(name), rows)

    def _column_all(self, name: str, rows: np.ndarray) -> pa.Array:
        raw = self.batch.raw(name)
        if isinstance(raw, (pa.Array, pa.ChunkedArray)):
            return _as_text(raw.take(pa.array(rows)))
        return pa.array(np.asarray(raw, dtype=object)[rows], pa.string())

    def render(self, templates: list[Template], chosen: np.ndarray, rows: np.ndarray) -> pa.Array:
        """Every action's script (template ``templates[chosen[k]]`` for account ``rows[k]``;
        −1: none). Each field the templates use is gathered and formatted once for all the
        actions; a few actions (at most :data:`SMALL_RENDER`: Arrow's per-call overhead
        exceeds the work) are then joined as Python strings, many template by template with
        Arrow."""
        if rows.shape[0] <= SMALL_RENDER:
            return pa.array(self._join_few(templates, chosen, rows), pa.string())
        return self._join_all(templates, chosen, rows)

    def _join_few(self, templates: list[Template], chosen: np.ndarray, rows: np.ndarray) -> list[str | None]:
        # each field is formatted once per account, not once per action (a request's account
        # has several actions: every row is the same)
        listed = rows.tolist()
        position = {r: p for p, r in enumerate(dict.fromkeys(listed))}
        distinct = rows if len(position) == len(listed) else np.array(list(position), np.int64)
        columns: dict[Any, Any] = {}
        out: list[str | None] = []
        for k, i in enumerate(chosen.tolist()):
            if i < 0:
                out.append(None)
                continue
            template = templates[i]
            p = position[listed[k]]
            parts = []
            for literal, field, unit, key, when in template.slots:
                if when is not None:               # a clause: only where its amount is due
                    due = columns.get(when)
                    if due is None:
                        due = columns[when] = self._due(when, distinct).tolist()
                    if not due[p]:
                        continue
                parts.append(literal)
                if field:
                    values = columns.get(key)
                    if values is None:
                        values = columns[key] = self._field(field, template.language, distinct, True, unit)
                    parts.append(values if isinstance(values, str) else values[p])
            out.append("".join(parts))
        return out

    def _join_all(self, templates: list[Template], chosen: np.ndarray, rows: np.ndarray) -> pa.Array:
        n = rows.shape[0]
        order = np.argsort(chosen, kind="stable")
        ordered, by_template = rows[order], chosen[order]
        starts = np.flatnonzero(np.r_[True, by_template[1:] != by_template[:-1]])
        ends = np.r_[starts[1:], n]
        columns: dict[Any, Any] = {}
        chunks = []
        for start, end in zip(starts.tolist(), ends.tolist()):
            i = int(by_template[start])
            if i < 0:
                chunks.append(pa.nulls(end - start, pa.string()))
                continue
            template = templates[i]
            parts = []
            for literal, field, unit, key, when in template.slots:
                due = None
                if when is not None:               # a clause: only where its amount is due
                    due = columns.get(when)
                    if due is None:
                        due = columns[when] = pa.array(self._due(when, ordered))
                    due = due.slice(start, end - start)
                if literal:
                    parts.append(literal if due is None else pc.if_else(due, literal, ""))
                if field:
                    values = columns.get(key)
                    if values is None:
                        values = columns[key] = self._field(field, template.language, ordered, False, unit)
                    value = values if isinstance(values, str) else values.slice(start, end - start)
                    parts.append(value if due is None else pc.if_else(due, value, ""))
            chunks.append(pc.binary_join_element_wise(*parts, ""))
        inverse = np.empty(n, np.int64)
        inverse[order] = np.arange(n)
        return pa.concat_arrays(chunks).take(pa.array(inverse))

    def _amounts(self, field: str, rows: np.ndarray) -> np.ndarray:
        """A money field's amounts for ``rows`` (NaN: unknown)."""
        b = self.batch
        if field == "total_due":
            return self._amounts("overdue_amount", rows) + self._amounts("penalty_interest", rows)
        column = _BOOK_MONEY[field]
        return b.float(column)[rows] if b.has(column) else np.full(rows.shape[0], np.nan)

    def _due(self, field: str, rows: np.ndarray) -> np.ndarray:
        """Whether a clause ``{if <field>}`` is said for ``rows``: an amount of at least a cent
        as written (so never "late fees of $0.00"), a count above 0; unknown: not said."""
        if FIELDS[field].kind == "money":
            values = self._amounts(field, rows)
            return (values > 0) & (np.round(values * 100) > 0)          # NaN: neither
        return self._ints(_INTS[field], rows) > 0

    def _ints(self, column: str, rows: np.ndarray) -> np.ndarray:
        """A whole-number column for ``rows`` (null or absent: NULL_TIME)."""
        if not self.batch.has(column):
            return np.full(rows.shape[0], NULL_TIME, np.int64)
        return self.batch.int(column, NULL_TIME)[rows]

    def _field(self, field: str, language: str, rows: np.ndarray, small: bool, unit: Unit | None = None):
        kind = FIELDS[field].kind
        b = self.batch
        if kind == "constant":
            return str(self.constants.get(language, {}).get(field, ""))
        if field == "as_of":
            return b.as_of.isoformat()
        if kind == "money":
            values = self._amounts(field, rows)
            if small:
                return format_money_small(values.tolist(), self._symbol_list(rows))
            return format_money(values, self._symbol_codes(rows))
        if kind == "int":
            column = _INTS[field]
            if not b.has(column):
                return [_MISSING] * rows.shape[0] if small else pa.array([_MISSING] * rows.shape[0], pa.string())
            values = self._ints(column, rows)
            if small:
                return [_MISSING if v == NULL_TIME else counted(v, unit) for v in values.tolist()]
            text = pa.array(values).cast(pa.string())
            if unit is not None:
                words = pc.if_else(pa.array(np.abs(values) == 1), f" {unit[0]}", f" {unit[1]}")
                text = pc.binary_join_element_wise(text, words, "")
            return pc.if_else(pa.array(values == NULL_TIME), _MISSING, text)
        if kind == "date":
            values = b.days(field)[rows]
            return _days_text_small(values.tolist()) if small else _days_text(values)
        if field == "disposal_channel" and not b.has("disposal_channel.channel"):
            return [_MISSING] * rows.shape[0] if small else pa.array([_MISSING] * rows.shape[0], pa.string())
        if kind == "label":
            return self._label(field, language, rows, small)
        taken = self._text(field, rows, small, language)
        return taken if small else pc.fill_null(taken, _MISSING)

    def _flag(self, column: str, rows: np.ndarray) -> np.ndarray:
        """A yes/no state column for ``rows`` (absent, e.g. a book without state: no)."""
        b = self.batch
        if not b.has(column):
            return np.zeros(rows.shape[0], bool)
        if column.endswith("_at"):
            return b.time_us(column)[rows] != NULL_TIME
        return b.int(column, 0)[rows] > 0

    def _label(self, field: str, language: str, rows: np.ndarray, small: bool):
        """A label chosen per account: the contract's word for late charges, the enforcement
        routes its records allow, the legal basis of a repossession."""
        if field == "late_charge":
            country = self.batch.enum("country")[rows]          # −1 (null or unknown): the last entry
            if small:
                return [LATE_CHARGES[k][language] for k in self.late_charge[country].tolist()]
            by_country = pa.array([LATE_CHARGES[k][language] for k in self.late_charge.tolist()], pa.string())
            return by_country.take(pa.array(np.where(country < 0, len(self.late_charge) - 1, country)))
        if field == "routes":
            arbitration = self._flag("arbitration_agreed", rows)
            code = arbitration * 1 + self._flag("contract_notarised", rows) * 2 \
                + (self._flag("mortgage_registered", rows) & ~self._flag("open_disputes", rows)) * 4 \
                + (self._flag("litigation_clause", rows) & ~arbitration) * 8
        else:
            code = self._flag("surrender_agreed_at", rows) * 1 + self._flag("court_order_at", rows) * 2 \
                + self._flag("arbitral_award_at", rows) * 4
        texts = _LABEL_TEXTS[field, language]
        if small:
            return [texts[c] for c in code.tolist()]
        return pa.array(texts, pa.string()).take(pa.array(np.asarray(code, np.int64)))


def _few_texts(raw, rows: np.ndarray) -> list[str]:
    """A text column's values at ``rows`` as str ("—" for null): a few rows' texts."""
    values = raw.take(pa.array(rows)).to_pylist() if isinstance(raw, (pa.Array, pa.ChunkedArray)) \
        else raw[rows].tolist()
    return [_MISSING if v is None else str(v) for v in values]


_ROW_0 = np.zeros(1, np.int64)
_ABSENT = object()


class _OneAccount:
    """One account's field texts (a batch of one row: a request), each formatted once and
    shared by the account's scripts: the text :meth:`_Renderer._field` gives its row (the
    same formatting functions, the values through the batch's one-account accessors;
    tests/plugins/test_one_account_stage.py compares them script by script)."""

    __slots__ = ("batch", "merged", "has", "symbol", "late_charge", "constants", "vehicle_names")

    def __init__(self, batch: Batch, symbol: str, late_charge: str, constants: Mapping, vehicle_names: Mapping):
        self.batch = batch
        # a record's columns are its keys (Batch.has, without searching the sources each time)
        self.merged = merged = batch.merged
        self.has = batch.has if merged is None else merged.__contains__
        self.symbol = symbol                  # the account's currency symbol
        self.late_charge = late_charge        # its country's key of LATE_CHARGES
        self.constants = constants
        self.vehicle_names = vehicle_names

    def _own(self, column: str, own_type: type, absent):
        """A record's value of ``column`` where the accessor would give that same value: its
        own ``own_type`` value, ``absent`` when the record lacks the column; else ``_ABSENT``
        (the accessor decides: a null, another type, or no record)."""
        merged = self.merged
        if merged is None:
            return _ABSENT
        value = merged.get(column, _ABSENT)
        if type(value) is own_type:
            return value
        return absent if value is _ABSENT else _ABSENT

    def amount_of(self, column: str) -> float:
        """A money column's amount (absent or null: NaN). A record's float is its own value
        (what ``float_one`` gives it); anything else goes through ``float_one``."""
        value = self._own(column, float, math.nan)
        if value is not _ABSENT:
            return value
        return self.batch.float_one(column) if self.has(column) else math.nan

    def int_of(self, column: str) -> int:
        """A whole-number column's value (absent or null: NULL_TIME), as :meth:`_Renderer._ints`.
        A record's int is its own value (what ``int_one`` gives it); anything else goes through
        ``int_one``."""
        value = self._own(column, int, NULL_TIME)
        if value is not _ABSENT:
            return value
        return self.batch.int_one(column, NULL_TIME) if self.has(column) else NULL_TIME

    def column(self, name: str) -> str:
        """A text column's value ("—" for null), as :func:`_few_texts` gives its row."""
        merged = self.merged
        if merged is not None and name in merged:
            value = merged[name]
            if value is None:
                return _MISSING
            if type(value) is str:
                return value
        return _few_texts(self.batch.raw(name), _ROW_0)[0]

    def flag(self, column: str) -> bool:
        """A yes/no state column (absent: no), as :meth:`_Renderer._flag`."""
        b = self.batch
        merged = self.merged
        if merged is not None:
            value = merged.get(column, _ABSENT)
            if value is _ABSENT:
                return False
            if type(value) is bool and not column.endswith("_at"):     # int_one(column, 0) > 0 of a bool
                return value
        elif not b.has(column):
            return False
        if column.endswith("_at"):
            return b.time_us_one(column) != NULL_TIME
        return b.int_one(column, 0) > 0


def _one_text(field: str, language: str, unit: Unit | None):
    """The function giving one account's text of ``field`` (in a template of ``language``)
    from its :class:`_OneAccount`, for the fields :func:`_account_renderer` does not write
    inline — the dates, the late-charge word, the disposal channel: the text
    :meth:`_Renderer._field` gives its row, by the same formatting functions and tables."""
    if FIELDS[field].kind == "date":
        if field == "as_of":
            return lambda one: one.batch.as_of.isoformat()
        return lambda one: _days_text_small([one.batch.days_one(field)])[0]
    if field == "late_charge":
        return lambda one: LATE_CHARGES[one.late_charge][language]
    if field == "disposal_channel":
        return lambda one: one.column("disposal_channel.channel") if one.has("disposal_channel.channel") else _MISSING
    raise AssertionError(field)


def _slot_language(key: tuple, field: str) -> str | None:
    """The language a slot's text depends on (its key's): constants, labels and the vehicle."""
    return key[1] if field == "vehicle" or FIELDS[field].kind in ("constant", "label") else None


def _no_get(column: str, default):
    """``dict.get`` of a batch without a record's merged values: every column read through
    the accessors (:meth:`_OneAccount.amount_of`, :meth:`_OneAccount.int_of`)."""
    return default


#: how the generated renderer reads a value of each kind: (the type a record's value is taken
#: as it is, the :class:`_OneAccount` method asked otherwise)
_READ_KINDS = {"money": ("float", "one.amount_of"), "int": ("int", "one.int_of"), "text": ("str", "one.column"),
               "flag": ("bool", "one.flag")}


def _account_renderer(templates: tuple, positions: tuple) -> Any:
    """One account's scripts of a combination of templates, as one generated function
    ``render(one, get, symbol)`` giving every action's script (``positions``: for each action
    its template's index in ``templates``, −1 for none: None). ``templates``: for each distinct
    template the fields of its clauses and its render plan (:meth:`Template.format_plan`, the
    strategy's constants written in) for every combination of clauses said. The function
    works out each clause's "said" inline (a cent or more due, a count above 0: as
    :meth:`_Renderer._due`), then each distinct slot's text once — only where a said piece
    shows it, as the batch renderer asks for it —, then fills the plan of the clauses said.
    A money or whole-number value is a record's own float / int read by ``get`` (the merged
    record's ``dict.get``, or :func:`_no_get`) where :meth:`_OneAccount.amount_of` /
    :meth:`_OneAccount.int_of` would give that same value, asked of them otherwise, and
    written by the formats of :func:`_money_text` and :func:`counted` inlined; every other
    field by its :func:`_one_text` function. Kept per combination of templates
    (:meth:`TieredStrategy._render_one`); pinned to the batch renderer by
    tests/plugins/test_one_account_stage.py, script by script, byte for byte."""
    env: dict = {"ABSENT": _ABSENT, "NULL": NULL_TIME, "MISSING": _MISSING}
    lines = ["def render(one, get, symbol):"]
    reads: dict = {}                                  # (column, kind) -> the variable read at the top
    numbers = itertools.count()

    def read(column: str, kind: str, out: list, indent: str, shared: bool) -> str:
        """A variable holding ``column``'s value as ``kind`` (money, int, text, flag) —
        ``shared``: read at the top, once for the function; else read in ``out``'s block."""
        name = reads.get((column, kind))
        if name is not None:
            return name
        name = f"v{next(numbers)}"
        if shared:
            reads[column, kind] = name
        if kind == "flag" and column.endswith("_at"):        # an instant: set or not (one.flag)
            out.append(f"{indent}{name} = one.flag({column!r})")
            return name
        exact, again = _READ_KINDS[kind]
        out += [f"{indent}{name} = get({column!r}, ABSENT)", f"{indent}if type({name}) is not {exact}:",
                f"{indent}    {name} = {name} > 0 if type({name}) is int else {again}({column!r})" if kind == "flag"
                else f"{indent}    {name} = {again}({column!r})"]      # a count (open_disputes): above 0
        return name

    def amount(field: str, out: list, indent: str, shared: bool) -> str:
        if field == "total_due":
            return f"({read(_BOOK_MONEY['overdue_amount'], 'money', out, indent, shared)} + " \
                   f"{read(_BOOK_MONEY['penalty_interest'], 'money', out, indent, shared)})"
        return read(_BOOK_MONEY[field], "money", out, indent, shared)

    # each clause's "said", once
    said: dict = {}
    for clauses, _ in templates:
        for f in clauses:
            if f not in said:
                name = said[f] = f"d{len(said)}"
                if FIELDS[f].kind == "money":
                    a = amount(f, lines, "    ", True)
                    lines.append(f"    {name} = {a} > 0 and round({a} * 100) > 0")       # NaN: neither
                else:
                    lines.append(f"    {name} = {read(_INTS[f], 'int', lines, '    ', True)} > 0")

    def when(clauses: tuple, combination: tuple) -> str:
        return " and ".join(said[f] if s else f"not {said[f]}" for f, s in zip(clauses, combination)) or "True"

    # every slot's text, once: where some said piece shows it (else never worked out)
    texts: dict = {}                                  # slot key -> (variable, field, unit, language)
    needed: dict = {}                                 # slot key -> the conditions under which it shows
    for clauses, plans in templates:
        shown: dict = {}
        for combination, (_, slots) in plans.items():
            for key, field, unit in slots:
                if key not in texts:
                    texts[key] = (f"t{len(texts)}", field, unit, _slot_language(key, field))
                shown.setdefault(key, set()).add(when(clauses, combination))
        for key, conditions in shown.items():      # shown whatever is said: always
            needed.setdefault(key, set()).update({"True"} if len(conditions) == len(plans) else conditions)
    for key, (name, field, unit, language) in texts.items():
        conditions = needed[key]
        always = "True" in conditions
        out: list = []
        indent = "    " if always else "        "
        kind = FIELDS[field].kind
        if kind == "money":
            a = amount(field, out, indent, always)
            if a.startswith("("):                    # a sum (total_due): added once
                out.append(f"{indent}a = {a}")
                a = "a"
            out += [f"{indent}if {a} != {a}:", f"{indent}    {name} = MISSING", f"{indent}else:",
                    f"{indent}    c = round(abs({a}) * 100)",
                    f"{indent}    {name} = f\"{{'-' if {a} < 0 and c > 0 else ''}}{{symbol}}{{c // 100:,}}."
                    f"{{c % 100:02d}}\""]
        elif kind == "int":
            v = read(_INTS[field], "int", out, indent, always)
            if unit is None:
                text = f"str({v})"
            else:
                env[f"U_{name}"] = unit
                text = f"f\"{{{v}}} {{U_{name}[0] if abs({v}) == 1 else U_{name}[1]}}\""
            out.append(f"{indent}{name} = MISSING if {v} == NULL else {text}")
        elif field == "name":
            out.append(f"{indent}{name} = {read('name', 'text', out, indent, always)}")
        elif field == "account_tail":
            out.append(f"{indent}{name} = {read('account_id', 'text', out, indent, always)}[-4:]")
        elif field == "vehicle":
            brand, model = read("brand", "text", out, indent, always), read("model", "text", out, indent, always)
            if language == "zh":
                env["zh_vehicle"] = _zh_vehicle
                out.append(f"{indent}{name} = zh_vehicle(one.vehicle_names, {brand}, {model}) if one.vehicle_names "
                           f"else f\"{{{brand}}} {{{model}}}\"")
            else:
                out.append(f"{indent}{name} = f\"{{{brand}}} {{{model}}}\"")
        elif field in _LABEL_FLAGS:
            env[f"L_{name}"] = _LABEL_TEXTS[field, language]
            flag = {column: read(column, "flag", out, indent, always) for column in _LABEL_FLAGS[field]}
            if field == "routes":
                code = (f"{flag['arbitration_agreed']} * 1 + {flag['contract_notarised']} * 2 "
                        f"+ ({flag['mortgage_registered']} and not {flag['open_disputes']}) * 4 "
                        f"+ ({flag['litigation_clause']} and not {flag['arbitration_agreed']}) * 8")
            else:
                code = (f"{flag['surrender_agreed_at']} * 1 + {flag['court_order_at']} * 2 "
                        f"+ {flag['arbitral_award_at']} * 4")
            out.append(f"{indent}{name} = L_{name}[{code}]")
        else:
            env[f"T_{name}"] = _one_text(field, language, unit)
            out.append(f"{indent}{name} = T_{name}(one)")
        if not always:
            lines.append(f"    if {' or '.join(sorted(f'({c})' for c in conditions))}:")
        lines.extend(out)
    # each template's script: the plan of its clauses said
    for k, (clauses, plans) in enumerate(templates):
        branches = list(plans.items())
        for b, (combination, (text, slots)) in enumerate(branches):
            # the plan's format string as an f-string of its literal pieces (names in env) and
            # slot variables: what str.format gives (each slot formatted with an empty spec,
            # as f-strings do), without parsing the string again on every call
            parts = []
            for i, (literal, number, spec, conversion) in enumerate(string.Formatter().parse(text)):
                if literal:
                    env[f"F{k}_{b}_{i}"] = literal
                    parts.append(f"{{F{k}_{b}_{i}}}")
                if number is not None:
                    assert number.isdigit() and not spec and conversion is None, text
                    parts.append(f"{{{texts[slots[int(number)][0]][0]}}}")
            fill = f"s{k} = f\"{''.join(parts)}\"" if parts else f"s{k} = ''"
            if len(branches) == 1:
                lines.append(f"    {fill}")
            else:
                lines.append(f"    {'if' if b == 0 else 'elif' if b < len(branches) - 1 else 'else'}"
                             f"{'' if b == len(branches) - 1 else ' ' + when(clauses, combination)}:")
                lines.append(f"        {fill}")
    lines.append(f"    return [{', '.join('None' if p < 0 else f's{p}' for p in positions)}]")
    exec(compile("\n".join(lines) + "\n", f"<scripts of {len(templates)} templates>", "exec"), env)
    return env["render"]


#: the state columns each label's code reads (:meth:`_Renderer._label`)
_LABEL_FLAGS = {"routes": ("arbitration_agreed", "contract_notarised", "mortgage_registered", "open_disputes",
                           "litigation_clause"),
                "legal_basis": ("surrender_agreed_at", "court_order_at", "arbitral_award_at")}


def _label_texts(table, empty: str, sep: str, column: int) -> list[str]:
    """The text of each combination of a label's bits (code c: the entries whose bit is in c)."""
    return [sep.join(entry[column] for entry in table if c & entry[0]) or empty for c in range(1 << len(table))]


#: the routes' and legal bases' texts by (field, language), for every combination of bits
_LABEL_TEXTS = {("routes", "zh"): _label_texts(_ROUTES, _NO_ROUTE["zh"], "；", 1),
                ("routes", "en"): _label_texts(_ROUTES, _NO_ROUTE["en"], "; ", 2),
                ("legal_basis", "zh"): _label_texts(_BASES, _NO_BASIS["zh"], "、", 1),
                ("legal_basis", "en"): _label_texts(_BASES, _NO_BASIS["en"], ", ", 2)}


def _zh_vehicle(names: Mapping, brand, model) -> str:
    """丰田凯美瑞 for Toyota Camry; a name not in the table as the book has it."""
    zh_brand, models = names.get(brand, (brand, {}))
    zh_model = models.get(model, model)
    return f"{zh_brand}{zh_model}" if not zh_model[:1].isascii() or not zh_brand[-1:].isascii() else f"{zh_brand} {zh_model}"


def _as_text(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(pa.string())


# --------------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------------

#: the currency a country's loans are in, for a book without a `currency` column
CURRENCY_OF_COUNTRY = {"CN": "CNY", "US": "USD"}

_STRATEGY_DEFAULTS = {
    "templates": None,                      # directory of <language>.toml; None: the built-in ones
    "max_calls": 3,                         # phone calls planned per account per run
    "call_spacing_minutes": 180,            # between planned calls of one account
    "unreachable_after_failed_attempts": 3,
    "field_visit_every_days": 7,            # no field visit within this many days of the last one
    "hold_on_open_promise": True,           # an open promise not yet due: SMS reminders only
    "hold_on_dispute": True,                # an open dispute: no collection action at all
    # symbol by the account's currency (the book's `currency` column; a book without one: the
    # currency of the debtor's country, CURRENCY_OF_COUNTRY); a currency without a symbol here is
    # written as its ISO code ("EUR 1,234.00"), never with another currency's symbol
    "currency": {"CNY": "¥", "USD": "$"},
    "language": {"CN": "zh", "US": "en"},   # script language by the debtor's country
    # what the contracts call the charge for paying late, by country: penalty_interest (罚息) or late_fee
    "late_charge": {"CN": "penalty_interest", "US": "late_fee"},
    # lender: the business's real name (truthful identification); caller: who a third party is told
    # calls — in China the institution, in the US the collector's own name (FDCPA § 804(1))
    "zh": {"lender": "示例汽车金融", "hotline": "400-800-8000", "caller": "示例汽车金融"},
    "en": {"lender": "Example Auto Finance", "hotline": "+1-800-555-0100", "caller": "Jordan Lee"},
}
#: the whole-number settings and the most each may be: the compiled pass takes them as 64-bit
#: integers, the intervals in microseconds
_WHOLE_SETTINGS = {"max_calls": 2 ** 63 - 1, "call_spacing_minutes": (2 ** 63 - 1) // US_PER_MINUTE,
                   "unreachable_after_failed_attempts": 2 ** 63 - 1,
                   "field_visit_every_days": (2 ** 63 - 1) // US_PER_DAY}
#: names a caller may not go by: anonymous (truthful identification)
_ANONYMOUS_CALLERS = ("客户服务中心", "客服中心", "customer service")


#: the action kinds the tiered strategy plans, in plan order
_KINDS = np.array([ACTION[a] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT",
                                       "LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL")], np.int8)


#: what the plan reads, in the order of strategy_kernel.plan_actions' arguments: (column, the
#: batch's accessor for its column, the same for one account's scalar, the accessor's arguments,
#: the value when the batch lacks the column — None: required)
_PLAN_INPUTS = tuple((name, getattr(Batch, kind), getattr(Batch, kind + "_one"), args, absent)
                     for name, kind, args, absent in (
    ("collection_tier.tier", "enum", (TIERS,), None),
    ("collection_tier.channel", "enum", (TIER_CHANNELS,), None),
    ("collection_tier.legal_review", "bool", (), None),
    ("phone_valid", "bool", (), None),
    ("consecutive_failed_attempts", "int", (), None),
    ("has_third_party_contact", "bool", (), None),
    ("repossessed", "bool", (), None),
    ("disposal.repossess", "bool", (), False),
    ("disposal.dispose", "bool", (), False),
    ("disposal_channel.channel", "valid", (), False),
    # the ledger's state (docs/ledger.md): holds and the last field visit
    ("open_disputes", "int", (), 0),
    ("promise_open", "bool", (), False),
    ("last_field_visit_at", "time_us", (), NULL_TIME),
    ("collection_tier.calls_per_day", "int", (1,), 1),       # null or absent: 1 (within the fewest and most)
))


#: how the generated reader converts a record's plain value ``v`` of each accessor kind inline —
#: (the types taken this way, the expression) —, as the accessor's one-account twin converts it
#: (``Batch._plain``'s types; None gives the accessor's null); any other value goes through it
_INLINE_INPUTS = {
    "enum": ("str", "-1 if v is None else I{k}.get(v, -1)"),
    "bool": ("bool", "False if v is None else v"),
    "int": ("int", "N{k} if v is None else v"),
    "valid": ("str", "v is not None"),
    "time_us": ("datetime", "NULL if v is None else us(v)"),
}


def _inputs_reader():
    """One account's values of :data:`_PLAN_INPUTS` from its record's merged values, as one
    generated function ``read(merged, batch)``: a plain value (None or the kind's own type,
    :data:`_INLINE_INPUTS`) converted inline as its ``*_one`` accessor converts it, an absent
    column's default, anything else through the accessor — each input inline, no loop over
    the table and no accessor call for a request's plain values."""
    env: dict = {"ABSENT": _ABSENT, "NULL": NULL_TIME, "us": _scalar_us, "datetime": dt.datetime}
    lines = ["def read(m, batch):"]
    for k, (name, _, read_one, args, absent) in enumerate(_PLAN_INPUTS):
        kind = read_one.__name__[:-len("_one")]
        env[f"R{k}"], env[f"A{k}"] = read_one, args
        own, expr = _INLINE_INPUTS[kind]
        if kind == "enum":
            env[f"I{k}"] = {member: i for i, member in enumerate(args[0])}
        elif kind == "int":
            env[f"N{k}"] = args[0] if args else 0               # int_one's null
        lines.append(f"    v = m.get({name!r}, ABSENT)")
        lines.append(f"    if v is None or type(v) is {own}:")
        lines.append(f"        v{k} = {expr.format(k=k)}")
        if absent is not None:
            env[f"B{k}"] = absent
            lines.append("    elif v is ABSENT:")
            lines.append(f"        v{k} = B{k}")
        lines.append("    else:")
        lines.append(f"        v{k} = R{k}(batch, {name!r}, *A{k})")
    lines.append(f"    return [{', '.join(f'v{k}' for k in range(len(_PLAN_INPUTS)))}]")
    exec(compile("\n".join(lines) + "\n", "<plan inputs>", "exec"), env)
    return env["read"]


_read_inputs = _inputs_reader()


def _inputs_one(batch: Batch) -> list:
    """One account's values of :data:`_PLAN_INPUTS` as Python scalars: a record's through
    :func:`_read_inputs`, columns' through the ``*_one`` accessors."""
    merged = batch.merged
    if merged is None:
        return [read_one(batch, name, *args) if absent is None or batch.has(name) else absent
                for name, _, read_one, args, absent in _PLAN_INPUTS]
    return _read_inputs(merged, batch)


def _no_plan() -> dict[str, Any]:
    return {"row": np.zeros(0, np.int64), "action": np.zeros(0, np.int8), "priority": np.zeros(0),
            "earliest_at": np.zeros(0, np.int64)}


class TieredStrategy(CollectionStrategy):
    """The seed's tiers. Per account, from the decision columns:

    - ``collection_tier.channel`` SMS_VOICE → SMS and VOICE_BOT; PHONE → up to
      ``collection_tier.calls_per_day`` calls (at most ``max_calls``), spaced
      ``call_spacing_minutes`` apart; FIELD_VISIT → a field visit (not once repossessed), and the
      SEVERE tier's calls too (its ``calls_per_day``, with the ``phone_severe`` script).
      Phone contact needs a valid number;
    - tier MEDIUM or SEVERE and the debtor unreachable (invalid number, or 3 consecutive failed
      attempts) with a third-party contact on file → THIRD_PARTY_CONTACT;
    - ``collection_tier.legal_review`` → LEGAL_REVIEW;
    - ``disposal.repossess`` (car not yet repossessed) → REPOSSESSION;
      ``disposal.dispose`` with a recommended disposal channel → DISPOSAL.

    The ledger's state holds collection back (docs/ledger.md): an open dispute
    (``open_disputes`` > 0) stops every action (``hold_on_dispute``); an open promise to pay
    not yet due (``promise_open``) leaves an SMS reminder only (``hold_on_open_promise``); a
    field visit is planned only if the last one (``last_field_visit_at``) is at least
    ``field_visit_every_days`` old.

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
        for key in ("currency", "language", "late_charge", "zh", "en"):
            if not isinstance(given.get(key, {}), Mapping):
                raise PostloanError(f"[strategy.{self.name}.{key}] must be a table, got {type(given[key]).__name__}")
            settings[key] = {**_STRATEGY_DEFAULTS[key], **given.get(key, {})}
        for key, most in _WHOLE_SETTINGS.items():
            if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 0:
                raise PostloanError(f"[strategy.{self.name}] {key}: expected a whole number ≥ 0, got {settings[key]!r}")
            if settings[key] > most:                 # the compiled pass takes them as 64-bit (µs)
                raise PostloanError(f"[strategy.{self.name}] {key}: at most {most:,}, got {settings[key]:,}")
        for key in ("hold_on_open_promise", "hold_on_dispute"):
            if not isinstance(settings[key], bool):
                raise PostloanError(f"[strategy.{self.name}] {key}: expected true or false, got {settings[key]!r}")
        for country, kind in settings["late_charge"].items():
            if kind not in LATE_CHARGES:
                raise PostloanError(f"[strategy.{self.name}.late_charge] {country} = {kind!r}: expected one of "
                                    f"{', '.join(LATE_CHARGES)}")
        for language in ("zh", "en"):
            for key in ("lender", "caller"):
                value = settings[language].get(key)
                if not isinstance(value, str) or not value.strip():
                    raise PostloanError(f"[strategy.{self.name}.{language}] {key}: the business's real name is "
                                        f"required, got {value!r}")
                if any(a in value.lower() for a in _ANONYMOUS_CALLERS):
                    raise PostloanError(f"[strategy.{self.name}.{language}] {key} = {value!r}: callers identify "
                                        f"themselves truthfully (the institution, or their own name), never as "
                                        f"customer service")
        self.settings = settings
        self.templates = load_templates(settings["templates"] or TEMPLATES_DIR)
        self.vehicle_names = load_vehicle_names()
        # template index by (language, action, tier) code: the first matching template wins
        languages = ENUMS["language"]
        self._pick = np.full((len(languages), len(ACTION), len(TIERS)), -1, np.int64)
        for i, t in reversed(list(enumerate(self.templates.templates))):
            for tier in t.tiers:
                self._pick[languages.index(t.language), ACTION[t.action], TIERS.index(tier)] = i
        countries = ENUMS["country"]
        self._language_of_country = np.array(
            [languages.index(settings["language"].get(c, "zh")) for c in countries] + [languages.index("zh")], np.int64)
        currencies = ENUMS["currency"]
        self._symbols = [str(settings["currency"].get(c, c + " ")) for c in currencies] + [""]    # index −1: ""
        self._currency_of_country = np.array([currencies.index(CURRENCY_OF_COUNTRY[c]) for c in countries] + [-1],
                                             np.int64)
        self._late_charge = np.array([settings["late_charge"].get(c, "penalty_interest") for c in countries]
                                     + ["penalty_interest"], dtype=object)
        self._constants = {language: settings[language] for language in ("zh", "en")}
        self._ids = np.array([t.id for t in self.templates.templates] + [None], dtype=object)
        self._language_names = np.array(languages, dtype=object)
        self._one_renders: dict = {}            # the templates of an account's actions -> their renderer
        self._accounts_seen: dict = {}          # (country, currency, tier, *actions) -> _account_scripts'
        for country, language in settings["language"].items():
            if language not in self.templates.files:
                raise PostloanError(f"[strategy.{self.name}.language] {country} = {language!r}, but there is no "
                                    f"{language}.toml template file")
        self._check_coverage()
        params = np.zeros(SK.N_PARAMS, np.int64)
        params[SK.P_UNREACHABLE] = settings["unreachable_after_failed_attempts"]
        params[SK.P_HOLD_DISPUTE] = settings["hold_on_dispute"]
        params[SK.P_HOLD_PROMISE] = settings["hold_on_open_promise"]
        params[SK.P_VISIT_EVERY_US] = settings["field_visit_every_days"] * US_PER_DAY
        params[SK.P_FEWEST] = min(1, settings["max_calls"])
        params[SK.P_MAX_CALLS] = settings["max_calls"]
        params[SK.P_PHONE] = ACTION["PHONE"]
        params[SK.P_SPACING_US] = settings["call_spacing_minutes"] * US_PER_MINUTE
        self._params = params

    def _check_coverage(self) -> None:
        needed = {a: TIERS[1:] for a in ("SMS", "VOICE_BOT", "PHONE", "FIELD_VISIT", "THIRD_PARTY_CONTACT")}
        needed.update({a: TIERS for a in ("LEGAL_REVIEW", "REPOSSESSION", "DISPOSAL")})
        for language, path in self.templates.files.items():
            for action, tiers in needed.items():
                for tier in tiers:
                    if self.templates.pick(language, action, tier) is None:
                        raise PostloanError(f"{path}: no template for action {action} at tier {tier}")

    def plan(self, batch: Batch) -> dict[str, Any]:
        if batch.n == 1:                             # a request: the account's values as scalars
            inputs = _inputs_one(batch)
            rows, action, earliest = SK.plan_one(*inputs, _KINDS, self._params, batch.now_us)
            if rows.size == 0:
                return _no_plan()
            priority = batch.float_one("collection_tier.priority")
            if not math.isfinite(priority):
                priority = float(np.nan_to_num(priority))
            priorities = np.empty(rows.shape[0])
            priorities.fill(priority)
            script_id, language, script = self._render_one(batch, rows, action, inputs[0])
            return {"row": rows, "action": action, "priority": priorities, "earliest_at": earliest,
                    "script_id": script_id, "language": language, "script": script}
        n = batch.n
        inputs = [read(batch, name, *args) if absent is None or batch.has(name) else np.full(n, absent)
                  for name, read, _, args, absent in _PLAN_INPUTS]
        # the actions wanted, account by account in plan order (_KINDS), phone calls
        # calls_per_day times spaced apart: one compiled pass (strategy_kernel)
        rows, action, earliest = SK.plan_actions(*inputs, _KINDS, self._params, batch.now_us)
        if rows.size == 0:
            return _no_plan()
        priority = batch.float("collection_tier.priority")
        if not np.isfinite(priority).all():
            priority = np.nan_to_num(priority)
        script_id, language, script = self._render(batch, rows, action, inputs[0])
        return {"row": rows, "action": action, "priority": priority[rows], "earliest_at": earliest,
                "script_id": script_id, "language": language, "script": script}

    def render(self, batch: Batch, rows: np.ndarray, action) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """The script of ``action`` (codes, one per row) for each account of ``rows``, from the
        templates of the account's language and ``collection_tier.tier`` — what a strategy step
        gets through ``plan.render`` / ``plan.add`` (docs/plugin-guide.md)."""
        action = np.asarray(action, np.int8)
        return self._render(batch, np.asarray(rows, np.int64), action, batch.enum("collection_tier.tier", TIERS))

    def _render(self, batch: Batch, rows: np.ndarray, action: np.ndarray, tier: np.ndarray):
        if batch.n == 1:
            script_id, language, script = self._render_one(batch, rows, action, int(tier[0]))
            return script_id, language, pa.array(script, pa.string())
        country = batch.enum("country")
        # amounts in the account's own currency: the book says which; else the country's
        currency = self._currency_of_country[country]
        if batch.has("currency"):                        # null (−1): the country's currency
            given = batch.enum("currency")
            currency = np.where(given >= 0, given, currency)
        renderer = _Renderer(batch, self._constants, (self._symbols, currency), self._late_charge, self.vehicle_names)
        language = self._language_of_country[country[rows]]
        chosen = self._pick[language, action, np.maximum(tier[rows], 0)]
        ids = self._ids[chosen]
        script = renderer.render(self.templates.templates, chosen, rows)
        return ids, np.where(chosen >= 0, self._language_names[language], None), script

    def _render_one(self, batch: Batch, rows: np.ndarray, action: np.ndarray, tier: int):
        """:meth:`_render` for a batch of one account (a request; every row is 0): what its
        scripts need besides its values — its currency symbol, its country's word for late
        charges, the templates of its actions and their renderer, the script ids' and
        languages' arrays — worked out once per combination of country, currency, tier and
        action codes (:meth:`_account_scripts`; a record's plain values are the key), then one
        call of the combination's generated renderer (:func:`_account_renderer`) fills the
        scripts from the account's values (:class:`_OneAccount`). The scripts come as a list
        of Python str (None: no template), which the pipeline keeps as it is for one account
        (:func:`kernel.pipeline._checked_plan`); the arrays are copies."""
        merged = batch.merged
        codes = action.tolist()
        found = None
        if merged is not None:
            country, currency = merged.get("country"), merged.get("currency", _ABSENT)
            if (country is None or type(country) is str) and (currency is None or type(currency) is str
                                                              or currency is _ABSENT):
                key = (country, currency, tier, *codes)
                found = self._accounts_seen.get(key)
                if found is None:
                    if len(self._accounts_seen) >= 4096:     # a step's own actions may make more: bounded
                        self._accounts_seen.clear()
                    found = self._accounts_seen[key] = self._account_scripts(batch, codes, tier)
        if found is None:
            found = self._account_scripts(batch, codes, tier)
        symbol, late_charge, render, ids, languages = found
        one = _OneAccount(batch, symbol, late_charge, self._constants, self.vehicle_names)
        return ids.copy(), languages.copy(), render(one, _no_get if merged is None else merged.get, symbol)

    def _account_scripts(self, batch: Batch, codes: list, tier: int) -> tuple:
        """What :meth:`_render_one` needs of an account's country, currency, tier and action
        codes: (currency symbol, late-charge key, renderer, script ids, languages) — the same
        tables as :meth:`_render`, read with its codes as Python ints."""
        country = batch.enum_one("country")
        currency = int(self._currency_of_country[country])
        if batch.has("currency"):                        # null (−1): the country's currency
            given = batch.enum_one("currency")
            currency = given if given >= 0 else currency
        language = int(self._language_of_country[country])
        chosen = tuple(int(self._pick[language, a, max(tier, 0)]) for a in codes)
        render = self._one_renders.get(chosen)
        if render is None:                               # the same few combinations, request after request
            if len(self._one_renders) >= 4096:
                self._one_renders.clear()
            distinct = [i for i in dict.fromkeys(chosen) if i >= 0]
            render = self._one_renders[chosen] = _account_renderer(
                tuple(self._one_plans(i) for i in distinct), tuple(distinct.index(i) if i >= 0 else -1 for i in chosen))
        name = ENUMS["language"][language]
        return (self._symbols[currency], self._late_charge[country], render,
                np.array([self._ids[i] for i in chosen], dtype=object),
                np.array([name if i >= 0 else None for i in chosen], dtype=object))

    def _one_plans(self, i: int) -> tuple[tuple, dict]:
        """Template ``i``'s clause fields and its render plan for each combination of them
        said: its format string with the strategy's constants written in, and its slots."""
        template = self.templates.templates[i]
        constants = self._constants.get(template.language, {})
        clauses = template.clauses
        return clauses, {said: template.format_plan(said, constants)
                         for said in itertools.product((True, False), repeat=len(clauses))}


@kernel.hookimpl
def postloan_collection_strategies(config):
    return [TieredStrategy(config)]
