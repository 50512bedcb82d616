"""A request's few accounts go through the same vectorized strategy and policies as a batch of
millions; only conversions and text work switch between a few-row form (Python lists, Python's
re) and a many-row form (Arrow). Differential tests: a few actions judged alone against the
same actions inside a batch large enough for the many-row forms, over generated accounts and
instants (DST changes included)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kernel.hookspecs import ACTION, ActionBatch, Batch, Record
from kernel.pipeline import Pipeline
from plugin_helpers import columns_of, numpy_columns, us, utc
from test_pipeline_stage import decisions_for

ZONES = ["Asia/Shanghai", "Asia/Urumqi", "America/New_York", "America/Los_Angeles", "America/Phoenix",
         "America/Chicago"]
#: instants around DST changes and quiet-hour edges are favoured
AROUND = [utc(2026, 3, 8, 6, 0), utc(2026, 11, 1, 5, 0), utc(2026, 11, 28, 13, 59), utc(2026, 11, 27, 23, 59),
          utc(2026, 7, 1, 0, 59)]
#: copies of a scenario in the large batch: more than 64 actions and accounts (the few-row limit)
COPIES = 65

accounts_strategy = st.fixed_dictionaries({
    "time_zone": st.sampled_from(ZONES), "country": st.sampled_from(["CN", "US"]),
    "phone_valid": st.booleans(), "has_third_party_contact": st.booleans(),
    "consent_automated_contact": st.booleans(), "contact_opt_out": st.booleans(),
    "connected_calls_today": st.integers(0, 4), "call_attempts_today": st.integers(0, 8),
    "consecutive_failed_attempts": st.integers(0, 5), "calls_7d": st.integers(0, 9),
    "open_complaints": st.integers(0, 1), "litigation_clause": st.booleans(), "contact_records_kept": st.booleans(),
    "demand_notices_sent": st.integers(0, 3),
    "last_conversation_at": st.one_of(st.none(), st.integers(-9 * 24 * 60, 60).map(
        lambda m: utc(2026, 11, 28, 2, 0) + dt.timedelta(minutes=m))),
    # the ledger's state the holds and the newer rules read
    "region": st.sampled_from(["CN-GD", "US-NY", "US-CA", "US-TX", "US-MA", "US-FL"]),
    "promise_open": st.booleans(), "promise_date": st.one_of(st.none(), st.integers(-3, 3).map(
        lambda d: dt.date(2026, 11, 28) + dt.timedelta(days=d))),
    "open_disputes": st.integers(0, 1), "cease_requested": st.booleans(), "attorney_represented": st.booleans(),
    "bankruptcy_open": st.booleans(), "deceased": st.booleans(), "hardship": st.booleans(),
    "military_service": st.booleans(), "consent_sms": st.one_of(st.none(), st.booleans()),
    "consent_voice_bot": st.one_of(st.none(), st.booleans()), "opt_out_sms": st.booleans(),
    "employer_prohibits_contact": st.booleans(), "work_hours_inconvenient": st.booleans(),
    "sms_today": st.integers(0, 3), "third_party_contacts_30d": st.integers(0, 1),
    "complaint_extensions": st.integers(0, 2), "consent_gps": st.one_of(st.none(), st.booleans()),
    "repossession_stage": st.sampled_from(["NONE", "REPOSSESSED", "NOTICE_SENT", "SOLD"]),
    "dpd": st.sampled_from([0, 30, 1100, 1500]),
    "complaint_opened_at": st.one_of(st.none(), st.integers(10, 70).map(
        lambda d: utc(2026, 11, 28, 2, 0) - dt.timedelta(days=d))),
    "repossessed_at": st.one_of(st.none(), st.integers(5, 20).map(lambda d: utc(2026, 11, 28, 2, 0) - dt.timedelta(days=d))),
    "disposal_notice_at": st.one_of(st.none(), st.integers(0, 20).map(
        lambda d: utc(2026, 11, 28, 2, 0) - dt.timedelta(days=d))),
    "cure_notice_at": st.one_of(st.none(), st.integers(0, 30).map(lambda d: utc(2026, 11, 28, 2, 0) - dt.timedelta(days=d))),
    "litigation.eligible": st.one_of(st.none(), st.booleans()),
    "litigation.missing": st.sampled_from(["NONE", "NOT_SEVERE", "NO_CLAUSE", "EVIDENCE_INCOMPLETE",
                                           "NO_WILFUL_DEFAULT", "BELOW_THRESHOLD", "SOMETHING_NEW"]),
})


#: scripts the screen reads differently: markers, notices, debt words before and after them
SCRIPTS = [None, "请转告王伟回电。", "王伟的车贷已逾期。", "Please call us back.", "Your loan is past due.",
           "您好，我是示例汽车金融，本次通话将被录音。请问是王伟本人吗？【确认本人后】您的车贷已逾期。【语音留言】请回电。",
           "【示例汽车金融】您尾号1234的账单已到期，如已还款请忽略。回复TD退订",
           "Hello, this is Example Auto Finance; this call is recorded. [Identity confirmed] Your payment is late. "
           "[Voicemail] Please call us back.", "Tell him his car note is late. Reply STOP to opt out.",
           "Hi, I am calling from the Example customer service team. [Voicemail] your bill is overdue",
           "他欠我们钱", "我是客户服务中心，不还就上黑名单", "latest news: the TOWER is tall. If you have already paid, ignore."]


@st.composite
def scenarios(draw):
    accounts = draw(st.lists(accounts_strategy, min_size=1, max_size=4))
    base = draw(st.sampled_from(AROUND)) + dt.timedelta(minutes=draw(st.integers(-600, 600)))
    planned = draw(st.lists(st.tuples(st.integers(0, len(accounts) - 1), st.sampled_from(list(ACTION)),
                                      st.integers(0, 36 * 60)), min_size=1, max_size=10))
    scripts = [draw(st.sampled_from(SCRIPTS)) for _ in planned]
    return accounts, base, planned, scripts


def _actions(accounts, now, planned, scripts, copies: int) -> ActionBatch:
    """The scenario's actions, ``copies`` times over (each copy with its own accounts)."""
    accounts = accounts * copies
    cols = columns_of([{k: v for k, v in a.items() if not k.startswith("litigation.")} for a in accounts])
    eligible = [a["litigation.eligible"] for a in accounts]
    decisions = {"litigation.eligible": np.ma.masked_array([bool(e) for e in eligible], mask=[e is None for e in eligible]),
                 "litigation.missing": np.array([a["litigation.missing"] for a in accounts], dtype=object)}
    batch = Batch(len(accounts), dt.date(2026, 11, 28), now, [decisions, cols])
    per_copy = len(accounts) // copies
    rows = np.concatenate([np.array([p[0] for p in planned]) + c * per_copy for c in range(copies)])
    action = np.tile(np.array([ACTION[p[1]] for p in planned], np.int8), copies)
    earliest = np.tile(np.array([us(now) + p[2] * 60_000_000 for p in planned], np.int64), copies)
    return ActionBatch(batch, rows, action, earliest, script=pa.array(scripts * copies, pa.string()))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_each_policy_judges_a_few_actions_as_it_judges_them_in_a_large_batch(policies, scenario):
    accounts, now, planned, scripts = scenario
    few = _actions(accounts, now, planned, scripts, 1)
    many = _actions(accounts, now, planned, scripts, COPIES)
    for name, policy in policies.items():
        alone, inside = policy.check(few), policy.check(many)
        expected = list(zip(inside.outcome.tolist(), inside.reason_codes().tolist(), inside.next_allowed_us.tolist()))
        got = list(zip(alone.outcome.tolist(), alone.reason_codes().tolist(), alone.next_allowed_us.tolist()))
        assert got * COPIES == expected, name


@pytest.fixture(scope="module")
def pipeline(manager, tmp_path_factory):
    return Pipeline(None, plugins=manager, audit_path=tmp_path_factory.mktemp("small") / "a.log")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 4_999), min_size=1, max_size=4, unique=True), st.sampled_from(AROUND),
       st.integers(-720, 720))
def test_a_few_accounts_get_the_actions_they_get_in_a_large_batch(pipeline, small_book, picks, around, minutes):
    """NumPy columns of a few accounts, and one account as a Record (the gRPC Decide form),
    against the same accounts among 300 as an Arrow table."""
    dpd = small_book["dpd"].to_numpy()
    delinquent = np.flatnonzero(dpd > 0)
    rows = list(dict.fromkeys(int(delinquent[p % delinquent.size]) if p % 3 else p for p in picks))   # distinct accounts
    others = [r for r in range(300) if r not in rows]
    large = small_book.take(pa.array(rows + others[:300 - len(rows)]))
    now = around + dt.timedelta(minutes=minutes)
    whole = pipeline.stage(large, pa.table(decisions_for(large)), dt.date(2026, 11, 28), now).actions
    ids = set(large["account_id"].to_pylist()[:len(rows)])
    expected = [a for a in whole.to_pylist() if a["account_id"] in ids]
    cols = numpy_columns(small_book.take(pa.array(rows)))
    few = pipeline.stage(cols, decisions_for(cols), dt.date(2026, 11, 28), now)
    assert few.actions.to_pylist() == expected
    one = small_book.slice(rows[0], 1)
    decided = {k: v[0].item() if isinstance(v[0], np.generic) else v[0] for k, v in decisions_for(numpy_columns(one)).items()}
    record = pipeline.stage(Record(one.to_pylist()[0]), Record(decided), dt.date(2026, 11, 28), now)
    assert record.actions.to_pylist() == [a for a in expected if a["account_id"] == one["account_id"][0].as_py()]


def test_routing_reads_only_the_columns_its_rules_name(pipeline, small_book):
    row = int(np.flatnonzero(small_book["dpd"].to_numpy() > 0)[0])
    cols = numpy_columns(small_book.slice(row, 1).drop_columns(["region", "product"]))
    # the default rules route by country only
    assert pipeline.stage(cols, decisions_for(cols), dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0)).actions.num_rows


def test_a_column_a_policy_needs_is_named_when_missing(pipeline, small_book):
    dpd = small_book["dpd"].to_numpy()
    contactable = (dpd > 0) & (dpd <= 30) & small_book["phone_valid"].to_numpy(zero_copy_only=False)
    row = int(np.flatnonzero(contactable & (np.array(small_book["country"].to_pylist()) == "CN"))[0])
    cols = numpy_columns(small_book.slice(row, 1).drop_columns(["open_complaints"]))
    result = pipeline.stage(cols, decisions_for(cols), dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0))
    assert set(result.actions["reason_code"].to_pylist()) == {"PLUGIN_ERROR"}        # fail closed
    assert "compliance policy 'cn.complaint_pause'" in result.errors[0]
    assert "column 'open_complaints' is neither a book column nor a decision column" in result.errors[0]


def test_a_policy_is_not_asked_about_a_batch_without_the_actions_it_judges(tmp_path, small_book):
    """``CompliancePolicy.actions``: a field visit alone skips every calling rule, so a column
    only calling rules read may be absent; a PHONE action needs it."""
    from test_pipeline_stage import FixedPlan, one_account_plan, pipeline_with
    config = {"compliance": {"sets": {"cn": ["cn.call_limits", "cn.quiet_hours"]}, "apply": [{"country": "CN", "set": "cn"}]}}
    for action, failed in (("FIELD_VISIT", False), ("PHONE", True)):
        pipe = pipeline_with(tmp_path / action, FixedPlan(one_account_plan([action])), config=config)
        cols = {k: v for k, v in columns_of([{}]).items() if k != "connected_calls_today"}
        result = pipe.act(cols, {"x": np.zeros(1)}, dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0))
        assert bool(result.errors) == failed, action
        assert result.actions["reason_code"].to_pylist() == (["PLUGIN_ERROR"] if failed else [None])


def test_threads_sharing_a_pipeline_get_the_answers_one_thread_gets(pipeline, small_book, tmp_path):
    """The gRPC server calls one Pipeline from many threads: results and audit stay whole."""
    import threading
    from kernel.audit import read_audit
    pipe = Pipeline(None, plugins=pipeline.plugins, audit_path=tmp_path / "threads.log")
    delinquent = np.flatnonzero(small_book["dpd"].to_numpy() > 0)[:24]
    requests = [numpy_columns(small_book.slice(int(r), 1)) for r in delinquent]
    now = utc(2026, 11, 28, 2, 0)
    expected = [pipe.stage(c, decisions_for(c), dt.date(2026, 11, 28), now).actions.to_pylist() for c in requests]
    got: dict[int, list] = {}

    def serve(worker):
        for i in range(worker, len(requests), 4):
            got[i] = pipe.act(requests[i], decisions_for(requests[i]), dt.date(2026, 11, 28), now).actions.to_pylist()

    threads = [threading.Thread(target=serve, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(requests))] == expected
    assert len(list(read_audit(pipe.audit.path))) == len(requests)


#: pieces a script is built of: every kind of literal the screen knows (terms, whole words,
#: markers, notices, the English patterns' words), in other cases, inside longer words, and
#: around them text that is neither, and the first character of a term without the rest
FRAGMENTS = ["逾期", "欠", "车要被", "征信", "退订", "录音", "如已还款请忽略", "客户服务中心", "客服中心", "黑名单",
             "【确认本人后】", "【语音留言】", "[Identity confirmed]", "[identity confirmed]", "[Voicemail]",
             "late", "LATE", "later", "Late fee", "pay", "payment", "repo ", "Repo", "owes", "owesome", "tow",
             "car note", "Past Due", "reply STOP", "Text  stop", "stopped", "this call is recorded", "recording",
             "If you have already paid", "this is the Example customer service", "I'm from customer service",
             " ", "_", "x", "9", "您好", "，", "。", "Ünïcödé", "\u212a", "\u0130", "\u212b", "é", "\n",
             # a term's first character alone (a script may end on it), one sharing its first two bytes
             "逾", "退", "车", "ow", "pa", "Ow", "to"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)),
                min_size=65, max_size=90))
def test_the_compiled_screen_reads_many_scripts_as_the_plain_one_reads_each(texts):
    """_screen_many (a compiled pass over the bytes, then the English patterns), _screen_text
    and _screen_listed (the same pass over a request's scripts' bytes) and _screen_one (plain Python, one
    script) give every script the same bits."""
    from postloan_builtins import compliance
    from postloan_builtins.compliance import _screen_many, _screen_one, _screen_text, screen_scripts
    arr = pa.array(texts, pa.string())
    expected = [_screen_one(t) for t in texts]
    assert _screen_many(arr).tolist() == expected
    assert [0 if t is None else _screen_text(t) for t in texts] == expected
    # a request's few: _screen_listed, the distinct scripts in one compiled call (_screen_texts)
    assert screen_scripts(arr.slice(0, 64)).tolist() == expected[:64]
    among = np.arange(64) % 3 != 1
    assert screen_scripts(arr.slice(0, 64), among).tolist() == [e if w else 0 for e, w in zip(expected, among)]
    sliced = arr.slice(3)                                       # an array with an offset
    assert _screen_many(sliced).tolist() == expected[3:]
    threshold, compliance._PARALLEL_BYTES = compliance._PARALLEL_BYTES, 0     # over Numba's threads too
    try:
        assert _screen_many(arr).tolist() == expected
    finally:
        compliance._PARALLEL_BYTES = threshold


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_verdicts_over_numbas_threads_are_the_verdicts_on_one(policies, scenario):
    """judge_many (ranges of actions claimed by the kernel's pool threads, for large batches)
    gives every action the verdict judge (one thread) gives it, for the whole set in one call."""
    from postloan_builtins import compliance
    accounts, now, planned, scripts = scenario
    many = _actions(accounts, now, planned, scripts, COPIES)
    engine = compliance.ENGINE
    chosen = list(policies.values())
    serial = engine.judge(chosen, many)
    from postloan_builtins import compliance_kernels
    limit, compliance._SERIAL = compliance._SERIAL, 0
    least, compliance_kernels.PART_MIN = compliance_kernels.PART_MIN, 1     # 64 ranges of a few actions each
    try:
        threaded = engine.judge(chosen, many)
    finally:
        compliance._SERIAL = limit
        compliance_kernels.PART_MIN = least
    for a, b in zip(serial, threaded):
        assert a.tolist() == b.tolist()


def test_the_serial_functions_call_the_range_functions_the_threads_call():
    """judge and scan (a request's few) call judge_range and scan_range with the types the
    batch's threads call them with (a range's start an int64, not the literal 0): one compiled
    copy of the rules and of the screen, not a second specialization on a cold start."""
    import numba
    from numba import types
    from postloan_builtins import compliance_kernels as K
    from postloan_builtins import screen_kernel
    i64 = lambda *shape: np.zeros(shape, np.int64)
    m = 3
    inp = K.Inputs(i64(m), i64(m), i64(m), i64(len(K.FEATURES), m), i64(K.N_ACTION_FACTS, m), i64(1, m), i64(1, 4),
                   i64(1), i64(m, 3), i64(1), i64(1), i64(1), i64(1), i64(1), 0, 0)
    numba.njit(K.judge.py_func)(i64(1), i64(1), inp, i64(m), i64(m), i64(m), i64(m))   # types judge's own call
    assert K.judge_range.overloads
    assert all(sig[3] == types.int64 for sig in K.judge_range.overloads), list(K.judge_range.overloads)
    table = screen_kernel.build_table([(b"ab", False, 0, 1)], (1, 2, 4, 8))
    offsets = np.array([0, 2], np.int64)
    numba.njit(screen_kernel.scan.py_func)(np.frombuffer(b"ab", np.uint8).copy(), offsets, np.ones(1, np.bool_),
                                           table, i64(1), i64(1))
    assert screen_kernel.scan_range.overloads
    assert all(sig[4] == types.int64 for sig in screen_kernel.scan_range.overloads), \
        list(screen_kernel.scan_range.overloads)


#: values a record may hold: the plain types the accessors' one-account fast path converts
#: itself, and others it leaves to the columns' conversion
RECORD_VALUES = [None, True, False, 0, 1, -3, 7, 2 ** 40, 0.0, -0.0, 1.5, -2.75, 1e300, float("nan"), float("inf"),
                 "CN", "US", "XX", "", np.int64(4), np.float64(2.5), np.bool_(True)]


@pytest.mark.parametrize("value", RECORD_VALUES, ids=repr)
def test_a_records_values_convert_as_their_one_element_column(value):
    """Batch's accessors on one account's record (the fast path for plain Python values) give
    what they give for the same value as a one-element column (the general conversion)."""
    from kernel.batches import _one
    now = utc(2026, 11, 28, 2, 0)
    one = Batch(1, dt.date(2026, 11, 28), now, [Record({"x": value}), Record({"y": 1})])
    column = Batch(1, dt.date(2026, 11, 28), now, [{"x": _one(value)}])

    def same(name, *args):
        try:
            want = getattr(column, name)("x", *args)
        except Exception as e:                      # the column's conversion refuses it: so does the record's
            with pytest.raises(type(e)):
                getattr(one, name)("x", *args)
            return
        got = getattr(one, name)("x", *args)
        assert got.dtype == want.dtype and got.shape == want.shape == (1,), (name, args)
        assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), (name, args, got, want)

    for name, args in (("float", ()), ("int", ()), ("int", (-9,)), ("bool", ()), ("bool", (True,)),
                       ("enum", (("CN", "US"),)), ("enum", ((),))):
        same(name, *args)


@pytest.mark.parametrize("instant", [dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
                                     dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone.utc),
                                     dt.datetime(1, 1, 2, 0, 0, 0, 1, tzinfo=dt.timezone.utc),
                                     dt.datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=dt.timezone.utc),
                                     dt.datetime(2026, 11, 28, 10, 0, 0, 123_456,
                                                 tzinfo=dt.timezone(dt.timedelta(hours=8))),
                                     dt.datetime(2026, 3, 8, 1, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))],
                         ids=str)
def test_instants_in_microseconds_are_timedeltas_floor_divided(instant):
    """Batch's µs of an aware datetime (integer arithmetic on the timedelta's parts) is the
    timedelta's floor division by a microsecond, before and after the epoch."""
    from kernel.batches import _datetime_us
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert _datetime_us(instant) == (instant - epoch) // dt.timedelta(microseconds=1)
    assert Batch(1, dt.date(2026, 11, 28), instant, []).now_us == _datetime_us(instant)


@pytest.mark.parametrize("value", RECORD_VALUES + [dt.date(2026, 2, 28), dt.date(1969, 12, 31),
                                                   dt.datetime(2026, 11, 28, 10, 0, 0, 123_456),
                                                   dt.datetime(2026, 11, 28, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))],
                         ids=repr)
def test_one_accounts_scalar_accessors_are_row_0_of_the_columns(value):
    """Batch's one-account accessors (``float_one``…: a request's value as a Python scalar,
    what the strategy's one-account plan reads) give row 0 of the column accessor — for the
    record's plain value and for a one-element column (NumPy) — or refuse what it refuses."""
    from kernel.batches import _one
    now = utc(2026, 11, 28, 2, 0)
    one = Batch(1, dt.date(2026, 11, 28), now, [Record({"x": value}), Record({"y": 1})])
    column = Batch(1, dt.date(2026, 11, 28), now, [{"x": _one(value)}])
    types = {"float": float, "int": int, "bool": bool, "enum": int, "time_us": int, "days": int, "valid": bool}
    for name, args in (("float", ()), ("int", ()), ("int", (-9,)), ("bool", ()), ("bool", (True,)),
                       ("enum", (("CN", "US"),)), ("enum", ((),)), ("time_us", ()), ("days", ()), ("valid", ())):
        for batch in (one, column):
            try:
                want = getattr(column, name)("x", *args)[0].item()
            except Exception as e:                  # the column's conversion refuses it: so does the scalar's
                with pytest.raises(type(e)):
                    getattr(batch, name + "_one")("x", *args)
                continue
            got = getattr(batch, name + "_one")("x", *args)
            assert type(got) is types[name], (name, args, got)
            assert got == want or (got != got and want != want), (name, args, got, want)


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), 1e300])
def test_an_int_read_of_a_number_past_int64_is_refused_naming_the_column(value):
    """A float column read as whole numbers: ±inf or a value past int64 would wrap to a wrong
    integer in NumPy's cast (with only a RuntimeWarning) — it is refused, naming the column,
    for the column and the one-account accessor alike."""
    from kernel.errors import PostloanError
    now = utc(2026, 11, 28, 2, 0)
    for batch in (Batch(1, dt.date(2026, 11, 28), now, [{"x": np.array([value])}]),
                  Batch(1, dt.date(2026, 11, 28), now, [Record({"x": value}), Record({"y": 1})])):
        with pytest.raises(PostloanError, match="column 'x': expected whole numbers"):
            batch.int_one("x")
    assert Batch(1, dt.date(2026, 11, 28), now, [{"x": np.array([np.nan, 3.0])}]).int("x", -1).tolist() == [-1, 3]
