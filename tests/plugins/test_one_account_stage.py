"""The stage at one account (the gRPC Decide form: a Record of Python scalars, and NumPy
columns of one row) against the same accounts staged in one batch: every action, outcome,
reason, time, rendered script (byte for byte) and valuation must be the batch's. Over a
generated book (seed fixed): every tier, both countries and languages, repossessions whose
car is valued, accounts with and without the ledger's state columns."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel.errors import PostloanError
from kernel.hookspecs import NULL_TIME, ActionBatch, Record
from kernel.pipeline import Pipeline
from plugin_helpers import numpy_columns

AS_OF = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.timezone.utc)       # 10:30 in Shanghai, 21:30 in New York


@pytest.fixture(scope="module")
def pipeline(kernel, tmp_path_factory):
    return Pipeline(kernel, audit_path=tmp_path_factory.mktemp("one") / "audit.log")


@pytest.fixture(scope="module")
def book():
    from kernel.synth import generate
    return generate(3_000, seed=5, as_of=AS_OF)


def _picks(book: pa.Table, decisions: pa.Table) -> list[int]:
    """Accounts of every kind: each tier and country, repossessions, disposals, quiet ones."""
    rng = np.random.default_rng(3)
    dpd = book["dpd"].to_numpy()
    us = np.array([c == "US" for c in book["country"].to_pylist()])
    repossess = np.array([bool(v) for v in decisions["disposal.repossess"].to_pylist()])
    picks = set(rng.choice(book.num_rows, 60, replace=False).tolist())
    for mask in (dpd > 90, (dpd > 30) & (dpd <= 90), (dpd > 0) & (dpd <= 30), us, us & (dpd > 30), repossess):
        rows = np.flatnonzero(mask)
        picks |= set(rng.choice(rows, min(25, rows.size), replace=False).tolist())
    return sorted(picks)


@pytest.mark.parametrize("with_state", [False, True], ids=["book", "ledger_state"])
def test_one_account_stages_as_in_a_batch(kernel, pipeline, book, with_state):
    table = pipeline.with_state(book, AS_OF, NOW) if with_state else book
    decisions = kernel.decide(table, AS_OF)
    whole = pipeline.stage(table, decisions, AS_OF, NOW)
    actions = whole.actions
    picks = _picks(book, whole.decisions)
    staged = {"actions": 0, "repossessions": 0, "languages": set()}
    for row in picks:
        record = table.slice(row, 1).to_pylist()[0]
        expected = actions.filter(pc.equal(actions["account_id"], record["account_id"])).to_pylist()
        one = pipeline.stage(Record(record), Record(kernel.decide_record(record, AS_OF)), AS_OF, NOW)
        assert one.actions.to_pylist() == expected, record["account_id"]
        columns = numpy_columns(table.slice(row, 1))
        assert pipeline.stage(columns, kernel.decide_columns(columns, AS_OF), AS_OF, NOW).actions.to_pylist() \
            == expected, record["account_id"]
        batch_row = whole.decisions.slice(row, 1).to_pylist()[0]
        decided = one.decision_record
        for name in [n for n in batch_row if n.startswith(("valuation.", "disposal_channel."))]:
            if isinstance(batch_row[name], float):
                assert decided[name] == pytest.approx(batch_row[name], rel=1e-12, nan_ok=True), name
            else:
                assert decided[name] == batch_row[name], name
        staged["actions"] += len(expected)
        staged["repossessions"] += sum(a["action"] == "REPOSSESSION" for a in expected)
        staged["languages"] |= {a["language"] for a in expected}
    # the picks covered what they are meant to
    assert staged["actions"] > 200 and staged["repossessions"] >= 5 and staged["languages"] == {"zh", "en"}


def test_one_accounts_features_are_its_row_of_the_batchs(kernel, pipeline, book):
    """The policies' features of one account's record (the generated reader: each feature's
    columns looked up and converted inline) are the ones the batch's columns give its row, and
    :meth:`_Accounts.feature`'s; a book column no source holds is an error naming it, a state
    column none holds is null."""
    from kernel.hookspecs import Batch
    from postloan_builtins import compliance_kernels as K
    from postloan_builtins.compliance import _Accounts, _feature_reader
    table = pipeline.with_state(book, AS_OF, NOW)
    decisions = kernel.decide(table, AS_OF)
    columns = _Accounts(Batch(table.num_rows, AS_OF, NOW, [decisions, table]))
    features = tuple(range(len(K.FEATURES)))
    rows = _picks(book, pipeline.stage(table, decisions, AS_OF, NOW).decisions)
    by_column = {k: columns.feature(k) for k in features}
    for row in rows:
        record = table.slice(row, 1).to_pylist()[0]
        one = _Accounts(Batch(1, AS_OF, NOW, [Record(kernel.decide_record(record, AS_OF)), Record(record)]))
        out = [0] * len(K.FEATURES)
        _feature_reader(features)(one.merged, out)
        got = dict(enumerate(out))
        assert got == {k: one.feature(k) for k in features}
        assert got == {k: int(v[row]) if isinstance(v, np.ndarray) else v for k, v in by_column.items()}, row
    # a column no source holds: null for a state column, an error naming a book column
    from postloan_builtins.compliance import _REQUIRED, _null_of
    state_only = [k for k in features if not _REQUIRED[k]]
    assert state_only
    left = {k: v for k, v in record.items() if k not in {c for f in state_only for c in K.FEATURES[f][2]}}
    got = [0] * len(K.FEATURES)
    _feature_reader(features)(left, got)
    assert [got[k] for k in state_only] == [_null_of(K.FEATURES[k][1]) for k in state_only]
    with pytest.raises(PostloanError, match="column 'dpd' is neither"):
        _feature_reader(features)({k: v for k, v in record.items() if k != "dpd"}, [0] * len(K.FEATURES))


#: US states whose rules differ (cure periods, all-party recording, two zones, Massachusetts'
#: call limits, limitation periods) and their zones
_STATES = (("US-MA", "America/New_York"), ("US-IA", "America/Chicago"), ("US-KS", "America/Chicago"),
           ("US-ME", "America/New_York"), ("US-WI", "America/Chicago"), ("US-CA", "America/Los_Angeles"),
           ("US-IL", "America/Chicago"), ("US-FL", "America/New_York"), ("US-TX", "America/Chicago"),
           ("US-AK", "America/Anchorage"), ("US-OR", "America/Los_Angeles"), ("US-NY", "America/New_York"),
           ("US-AZ", "America/Phoenix"), (None, "America/Denver"))


def _many_states(table: pa.Table) -> pa.Table:
    """``table`` with every fifth account moved to one of :data:`_STATES`, in turn (the
    generated book holds a few states only)."""
    country, region, zone = (table[c].to_pylist() for c in ("country", "region", "time_zone"))
    for k, row in enumerate(range(0, table.num_rows, 5)):
        country[row] = "US"
        region[row], zone[row] = _STATES[k % len(_STATES)]
    for name, values in (("country", country), ("region", region), ("time_zone", zone)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    return table


@pytest.mark.parametrize("hours", [0, 10, 14, 30])
def test_one_accounts_verdicts_are_its_rows_of_the_batchs(kernel, pipeline, book, hours):
    """The policies at one account's record (the engine's one-account path: the record's
    features, derived values and zones kept per run, one compiled call, verdicts read back as
    plain values) against the same accounts judged as one batch of columns: every action code
    at every account of a generated book with the ledger's state, at moments across the
    debtors' days — outcome, reason, next allowed time and policy, each one the batch's."""
    from kernel.hookspecs import ACTION, Batch
    at = NOW + dt.timedelta(hours=hours)
    table = pipeline.with_state(_many_states(book.slice(0, 1_200)), AS_OF, at)
    n = table.num_rows
    records = table.to_pylist()
    batch = Batch(n, AS_OF, at, [table], pipeline.config)
    seen = {"outcomes": set(), "policies": set()}
    for name, code in ACTION.items():
        plan = {"row": np.arange(n, dtype=np.int64), "action": np.full(n, code, np.int8),
                "earliest_at": np.full(n, batch.now_us, np.int64), "script": pa.nulls(n, pa.string())}
        whole = pipeline._comply(batch, plan, [])
        for row, record in enumerate(records):
            outcome, reason, next_allowed, policy, errors = pipeline.judge(record, name, at, AS_OF)
            expected = (("KEEP", "DEFER", "BLOCK")[int(whole["outcome"][row])], whole["reason_code"][row],
                        int(whole["next_allowed_at"][row]), whole["policy"][row])
            assert (outcome, reason, next_allowed, policy) == expected, (name, row)
            assert errors == []
            seen["outcomes"].add(outcome)
            seen["policies"].add(policy)
    # the accounts and moments reached every outcome and many policies of both countries
    assert seen["outcomes"] == {"KEEP", "DEFER", "BLOCK"} or hours == 30
    assert len(seen["policies"]) >= 8 and any(p and p.startswith("us.") for p in seen["policies"]) \
        and any(p and p.startswith("cn.") for p in seen["policies"])


#: scripts a request's actions may carry: none, a debt named after the identity marker with an
#: opt-out notice, a debt named before it, a Chinese reminder with its opt-out word
_SCRIPTS = (None, "[Identity confirmed] This is a reminder that your car loan payment is past due. Reply STOP to "
            "opt out.", "Your loan is overdue. [Identity confirmed] Please call us.", "您好，您的车贷已逾期，请及时还款。退订回T")


def test_one_accounts_verdicts_from_many_threads_are_the_batchs(kernel, pipeline, book):
    """The one-account judge reuses its thread's buffers of a run (the features' column, the
    instants, the facts — a script's screen row included —, the verdicts): 4 threads switching
    every 10 µs judge 400 accounts with the ledger's state, each by every action alone
    (:meth:`Pipeline.judge`, the gate's question) and by a request of three actions with
    scripts or without (:meth:`Pipeline._judge_request`), in a shuffled order — every verdict
    the same as the accounts' rows judged as one batch of columns."""
    import random
    import sys
    import threading

    from kernel.hookspecs import ACTION, Batch
    at = NOW + dt.timedelta(hours=13)
    table = pipeline.with_state(_many_states(book.slice(1_200, 400)), AS_OF, at)
    n = table.num_rows
    records = table.to_pylist()
    batch = Batch(n, AS_OF, at, [table], pipeline.config)
    names = list(ACTION)
    expected_one = {}
    for name in names:
        plan = {"row": np.arange(n, dtype=np.int64), "action": np.full(n, ACTION[name], np.int8),
                "earliest_at": np.full(n, batch.now_us, np.int64), "script": pa.nulls(n, pa.string())}
        whole = pipeline._comply(batch, plan, [])
        for row in range(n):
            expected_one[row, name] = (("KEEP", "DEFER", "BLOCK")[int(whole["outcome"][row])],
                                       whole["reason_code"][row], int(whole["next_allowed_at"][row]),
                                       whole["policy"][row])
    three = np.array([ACTION["SMS"], ACTION["PHONE"], ACTION["THIRD_PARTY_CONTACT"]], np.int8)
    offsets = np.array([0, 600_000_000, 0], np.int64)
    scripts = [[_SCRIPTS[(row + j) % len(_SCRIPTS)] if row % 3 else None for j in range(3)] for row in range(n)]
    plan = {"row": np.repeat(np.arange(n, dtype=np.int64), 3), "action": np.tile(three, n),
            "earliest_at": np.tile(batch.now_us + offsets, n), "script": pa.array(sum(scripts, []), pa.string())}
    whole = pipeline._comply(batch, plan, [])
    expected_three = {row: tuple(whole[c][3 * row:3 * row + 3].tolist() for c in
                                 ("outcome", "reason_code", "next_allowed_at", "policy")) for row in range(n)}
    tasks = [(row, name) for row in range(n) for name in names] + [(row, None) for row in range(n)]
    random.Random(7).shuffle(tasks)
    wrong: list = []

    def work(part):
        for row, name in part:
            if name is not None:
                got = pipeline.judge(records[row], name, at, AS_OF)[:4]
                if got != expected_one[row, name]:
                    wrong.append((row, name, got, expected_one[row, name]))
                continue
            one = Batch(1, AS_OF, at, [Record(records[row])], pipeline.config)
            found = pipeline._judge_request(pipeline.sets[pipeline._route_one(one)], one, {
                "row": np.zeros(3, np.int64), "action": three, "earliest_at": one.now_us + offsets,
                "script": scripts[row]})
            got = tuple(found[c].tolist() for c in ("outcome", "reason_code", "next_allowed_at", "policy"))
            if got != expected_three[row]:
                wrong.append((row, scripts[row], got, expected_three[row]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=work, args=(tasks[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong, wrong[:3]
    screened = {v for row in range(n) for v in expected_three[row][1]}
    assert len(screened) >= 4, screened        # the scripts and accounts reach several reasons


def _numpy_scalars(record: dict) -> dict:
    """A record whose numbers and texts are NumPy scalars: not the plain Python values the
    one-account accessors read directly, so every one goes through its column's conversion."""
    kinds = {bool: np.bool_, int: np.int64, float: np.float64, str: np.str_}
    return {k: kinds[type(v)](v) if type(v) in kinds else v for k, v in record.items()}


@pytest.mark.parametrize("variant", ["record", "numpy_scalars", "columns", "without_optional_columns"])
def test_one_accounts_plan_is_its_rows_of_the_batchs_plan(kernel, pipeline, book, variant):
    """TieredStrategy.plan on a batch of one account (the scalar path: strategy_kernel.plan_one,
    each template's render plan, _OneAccount's field texts) against the same strategy's plan of
    the whole book (plan_actions, the batch renderer), account by account, column by column —
    scripts byte for byte: a record of plain values, one of NumPy scalars (every value through
    its column's conversion), NumPy columns of one row, and a batch without the optional
    columns (no ledger state, no disposal decisions: their defaults)."""
    from kernel.hookspecs import Batch
    from kernel.pipeline import _first_value, _no_valuation
    table = book if variant == "without_optional_columns" else pipeline.with_state(book, AS_OF, NOW)
    decisions = kernel.decide(table, AS_OF)
    if variant == "without_optional_columns":
        decisions = decisions.drop_columns(["disposal.repossess", "disposal.dispose", "collection_tier.calls_per_day"])
    whole = Batch(table.num_rows, AS_OF, NOW, [decisions, table], pipeline.config)
    extra = pipeline._valuation(whole) or _no_valuation(table.num_rows)
    whole.add(extra)
    planned = pipeline.strategy.plan(whole)
    columns = {k: (v.to_pylist() if isinstance(v, pa.Array) else np.asarray(v).tolist()) for k, v in planned.items()}
    rows = planned["row"]
    picks = _picks(book, kernel.decide(book, AS_OF))
    seen = {"actions": 0, "scripts": set()}
    for row in picks:
        if variant == "columns":
            one = Batch(1, AS_OF, NOW, [numpy_columns(decisions.slice(row, 1)), numpy_columns(table.slice(row, 1))],
                        pipeline.config)
            one.add({k: v[row:row + 1] for k, v in extra.items()})
        else:
            decided, record = decisions.slice(row, 1).to_pylist()[0], table.slice(row, 1).to_pylist()[0]
            if variant == "numpy_scalars":
                decided, record = _numpy_scalars(decided), _numpy_scalars(record)
            one = Batch(1, AS_OF, NOW, [Record(decided), Record(record)], pipeline.config)
            one.add(Record({k: _first_value(v[row:row + 1]) for k, v in extra.items()}))    # as Pipeline.stage
        got = pipeline.strategy.plan(one)
        mine = np.flatnonzero(rows == row)
        assert got["row"].tolist() == [0] * mine.size, row
        for name, values in got.items():
            if name == "row":
                continue
            listed = values.to_pylist() if isinstance(values, pa.Array) else np.asarray(values).tolist()
            assert listed == [columns[name][k] for k in mine.tolist()], (row, name)
        seen["actions"] += mine.size
        script = got.get("script", [])
        seen["scripts"] |= {s for s in (script.to_pylist() if isinstance(script, pa.Array) else script) if s}
    assert seen["actions"] > 150 and len(seen["scripts"]) > 100


@pytest.mark.parametrize("seed", range(3))
def test_the_plan_inputs_reader_reads_a_record_as_the_accessors(seed):
    """The generated reader of the plan's 14 inputs (collection._read_inputs: a record's plain
    values converted inline) against each input's one-account accessor (``Batch.*_one``,
    the absent column's default), on records whose values are of every kind a column may
    hold: None, the kind's own type, another plain type, NumPy scalars, absent — and a
    required column absent fails as the accessor fails (the error naming it)."""
    from kernel.hookspecs import Batch
    from postloan_builtins.collection import _PLAN_INPUTS, _read_inputs
    rng = np.random.default_rng(seed)
    when = dt.datetime(2026, 11, 20, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    choices = {
        "enum": lambda name: [None, "NONE", "MILD", "SEVERE", "PHONE", "FIELD_VISIT", "nonsense", np.str_("MEDIUM")],
        "bool": lambda name: [None, True, False, 0, 3, np.bool_(True), np.int64(0)],
        "int": lambda name: [None, 0, 1, 7, -2, True, np.int64(4), 2.0],
        "valid": lambda name: [None, "dealer", "", 1.5, float("nan"), 0, np.str_("auction")],
        "time_us": lambda name: [None, when, when.replace(tzinfo=None), np.datetime64("2026-11-01T08:00:00"),
                                 1_790_000_000_000_000],
    }
    seen = 0
    for _ in range(300):
        record = {}
        for name, _, read_one, args, absent in _PLAN_INPUTS:
            kind = read_one.__name__[:-len("_one")]
            if absent is not None and rng.random() < 0.2:
                continue                                       # absent: its default
            values = choices[kind](name)
            record[name] = values[rng.integers(len(values))]
        batch = Batch(1, AS_OF, NOW, [Record(record)])
        expected = [read_one(batch, name, *args) if name in record else absent
                    for name, _, read_one, args, absent in _PLAN_INPUTS]
        got = _read_inputs(batch.merged, batch)
        assert got == expected and [type(v) for v in got] == [type(v) for v in expected], record
        seen += 1
    assert seen == 300
    for name, _, _, _, absent in _PLAN_INPUTS:
        if absent is None:
            with pytest.raises(PostloanError, match=re.escape(repr(name))):
                _read_inputs(Record({}), Batch(1, AS_OF, NOW, [Record({})]))
            break


def _wanted_by_numpy(tier, channel, legal, phone_ok, unreachable, third, repossessed, repossess, dispose, disputed,
                     promised, visited, calls, now_us, spacing_us):
    """The NumPy steps the compiled pass replaced (the tree before issue 12's second round),
    as the oracle: one boolean row per action kind, transposed, np.nonzero, calls repeated."""
    from kernel.hookspecs import ACTION
    from postloan_builtins.collection import _KINDS
    promised = promised & ~disputed
    go = ~(disputed | promised)
    sms_voice = (channel == 1) & phone_ok & go
    wanted = np.array([sms_voice | promised & (tier >= 1) & phone_ok, sms_voice,
                       ((channel == 2) | (tier == 3)) & phone_ok & go, (channel == 3) & ~repossessed & ~visited & go,
                       (tier >= 2) & unreachable & third & go, legal & go, repossess & ~repossessed & go,
                       dispose & go]).T
    rows, kind = np.nonzero(wanted)
    action = _KINDS[kind]
    reps = np.where(action == ACTION["PHONE"], calls[rows], 1)
    k = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    return np.repeat(rows, reps), np.repeat(action, reps), now_us + k * spacing_us


def _random_inputs(seed: int, n: int):
    """plan_actions' inputs for ``n`` random accounts, as the batch's accessors give them: every
    condition independent, null tiers and channels, counts around the thresholds, 0–4 calls a
    day, last field visits within and beyond the week, some null."""
    rng = np.random.default_rng(seed)
    now_us = 1_795_831_200_000_000
    codes = [rng.integers(-1, 4, n).astype(np.int8) for _ in range(2)]
    flags = [rng.random(n) < p for p in rng.uniform(0.05, 0.95, 9)]
    legal, phone_valid, third, repossessed, repossess, dispose, channel_valid, promise_open, _ = flags
    failed = rng.integers(0, 6, n).astype(np.int64)
    disputes = rng.integers(0, 3, n).astype(np.int64) * (rng.random(n) < 0.2)
    last_visit = now_us - rng.integers(0, 14 * 86_400_000_000, n)
    last_visit[rng.random(n) < 0.3] = NULL_TIME
    calls = rng.integers(0, 5, n).astype(np.int64)
    return (*codes, legal, phone_valid, failed, third, repossessed, repossess, dispose, channel_valid, disputes,
            promise_open, last_visit, calls), now_us


def _params(unreachable=3, hold_dispute=True, hold_promise=True, visit_every_days=7, max_calls=3, spacing_minutes=180):
    from kernel.hookspecs import ACTION
    from postloan_builtins import strategy_kernel as SK
    params = np.zeros(SK.N_PARAMS, np.int64)
    params[[SK.P_UNREACHABLE, SK.P_HOLD_DISPUTE, SK.P_HOLD_PROMISE, SK.P_VISIT_EVERY_US, SK.P_FEWEST, SK.P_MAX_CALLS,
            SK.P_PHONE, SK.P_SPACING_US]] = (unreachable, hold_dispute, hold_promise, visit_every_days * 86_400_000_000,
                                             min(1, max_calls), max_calls, ACTION["PHONE"], spacing_minutes * 60_000_000)
    return params


_SETTINGS = [{}, {"hold_dispute": False, "hold_promise": False}, {"visit_every_days": 0, "max_calls": 0},
             {"unreachable": 1, "max_calls": 2, "spacing_minutes": 60}]


@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_actions_wanted_are_the_numpy_steps(seed):
    """strategy_kernel.plan_actions (without branches) against the NumPy steps it replaced, on
    random accounts under four settings: the holds, visits and unreachability worked out from
    the columns as TieredStrategy.plan did with NumPy, then the actions wanted."""
    from kernel.hookspecs import ACTION
    from postloan_builtins import strategy_kernel
    from postloan_builtins.collection import _KINDS
    settings = {"unreachable": 3, "hold_dispute": True, "hold_promise": True, "visit_every_days": 7, "max_calls": 3,
                "spacing_minutes": 180, **_SETTINGS[seed]}
    n = 5_000
    inputs, now_us = _random_inputs(seed, n)
    (tier, channel, legal, phone_valid, failed, third, repossessed, repossess, dispose, channel_valid, disputes,
     promise_open, last_visit, calls_per_day) = inputs
    got = strategy_kernel.plan_actions(*inputs, _KINDS, _params(**settings), now_us)
    no = np.zeros(n, bool)
    every_us = settings["visit_every_days"] * 86_400_000_000
    visited = (last_visit != NULL_TIME) & (now_us - last_visit < every_us) if every_us else no
    calls = np.minimum(np.maximum(calls_per_day, min(1, settings["max_calls"])), settings["max_calls"])
    expected = _wanted_by_numpy(tier, channel, legal, phone_valid, ~phone_valid | (failed >= settings["unreachable"]),
                                third, repossessed, repossess, dispose & channel_valid,
                                disputes > 0 if settings["hold_dispute"] else no,
                                promise_open if settings["hold_promise"] else no, visited, calls, now_us,
                                settings["spacing_minutes"] * 60_000_000)
    assert got[0].size > n // 10 and (np.count_nonzero(got[1] == ACTION["PHONE"]) > 0) == (settings["max_calls"] > 0)
    for g, e in zip(got, expected):
        assert np.array_equal(g, e)
    assert got[1].dtype == np.int8 and got[0].dtype == got[2].dtype == np.int64


@pytest.mark.parametrize("seed", range(4))
def test_one_accounts_compiled_plan_is_its_row_of_the_batchs(seed):
    """strategy_kernel.plan_one (one account's scalars, as TieredStrategy.plan passes a
    request's) gives each account's actions of plan_actions over the whole batch, in order."""
    from postloan_builtins import strategy_kernel
    from postloan_builtins.collection import _KINDS
    params = _params(**_SETTINGS[seed])
    inputs, now_us = _random_inputs(100 + seed, 600)
    rows, action, earliest = strategy_kernel.plan_actions(*inputs, _KINDS, params, now_us)
    types = (int, int, bool, bool, int, bool, bool, bool, bool, bool, int, bool, int, int)
    for i in range(600):
        scalars = [kind(column[i]) for kind, column in zip(types, inputs)]
        one = strategy_kernel.plan_one(*scalars, _KINDS, params, now_us)
        mine = rows == i
        assert np.array_equal(one[0], np.zeros(np.count_nonzero(mine), np.int64)), i
        assert np.array_equal(one[1], action[mine]) and np.array_equal(one[2], earliest[mine]), i


def test_one_accounts_render_plans_write_the_strategys_constants(pipeline):
    """A render plan writes the constants of the strategy's language into the format string
    (braces escaped), and the scripts of one account are those of its row in a batch of it."""
    from postloan_builtins.collection import Template
    t = Template("t", "en", "SMS", frozenset({"MILD"}), (("Hi {", "name", None, None), ("} from ", "lender", None, None),
                                                        (" call ", "hotline", None, None), ("", None, None, None)), "x")
    text, slots = t.format_plan((), {"lender": "A{b}c", "hotline": "1"})
    assert text == "Hi {{{0}}} from A{{b}}c call 1" and [s[1] for s in slots] == ["name"]
    assert text.format("Jo") == "Hi {Jo} from A{b}c call 1"
    text, slots = t.format_plan(())
    assert text.format("Jo", "L", "2") == "Hi {Jo} from L call 2" and [s[1] for s in slots] == ["name", "lender", "hotline"]


def test_one_accounts_scripts_stay_python_strings_and_read_as_arrow(kernel, pipeline, book):
    """One account's plan keeps its scripts as the list of str the strategy gives (no Arrow
    array on the request's path); ActionBatch.script and PipelineResult.actions still give them
    as Arrow, the same texts; a list that is not all str / None goes the column's way (an
    error naming the column), and a batch of several accounts always gets Arrow."""
    from kernel.hookspecs import ActionBatch, Batch
    from kernel.pipeline import _checked_plan
    from kernel.plugins import PluginError
    row = int(np.flatnonzero(book["dpd"].to_numpy() > 40)[0])
    record = book.slice(row, 1).to_pylist()[0]
    one = pipeline.stage(Record(record), Record(kernel.decide_record(record, AS_OF)), AS_OF, NOW)
    listed = one.action_columns["script"]
    assert type(listed) is list and all(isinstance(s, str) for s in listed) and len(listed) >= 2
    assert one.actions["script"].to_pylist() == listed
    base = {"row": np.zeros(2, np.int64), "action": np.array([1, 2], np.int8), "priority": np.zeros(2),
            "earliest_at": np.zeros(2, np.int64)}
    kept = _checked_plan({**base, "script": ["a", None]}, 1, ("s", "p"), "h")["script"]
    assert kept == ["a", None]
    assert isinstance(_checked_plan({**base, "script": ["a", None]}, 2, ("s", "p"), "h")["script"], pa.Array)
    with pytest.raises(PluginError, match="column 'script' must be text"):
        _checked_plan({**base, "script": ["a", 3]}, 1, ("s", "p"), "h")
    batch = Batch(1, AS_OF, NOW, [Record(record)], pipeline.config)
    actions = ActionBatch(batch, np.zeros(2, np.int64), np.array([1, 2], np.int8), np.zeros(2, np.int64),
                          script=["x", None])
    assert actions.listed_script() == ["x", None]
    assert actions.script.type == pa.string() and actions.script.to_pylist() == ["x", None]
    arrow = ActionBatch(batch, np.zeros(2, np.int64), np.array([1, 2], np.int8), np.zeros(2, np.int64),
                        script=pa.array(["y", None], pa.string()))
    assert arrow.listed_script() == ["y", None]
    assert ActionBatch(batch, np.zeros(2, np.int64), np.array([1, 2], np.int8),
                       np.zeros(2, np.int64)).listed_script() == [None, None]


def _plan_variants(rng) -> list[dict]:
    """Plans of one account, typed and not, right and wrong: each column's type, shape and
    values varied one at a time from a well-formed typed plan."""
    def base(m):
        return {"row": np.zeros(m, np.int64), "action": rng.integers(0, 8, m).astype(np.int8),
                "priority": rng.random(m), "earliest_at": rng.integers(0, 2 ** 50, m),
                "script_id": np.array([f"t{k}" for k in range(m)], dtype=object),
                "language": np.array([["zh", "en", None][k % 3] for k in range(m)], dtype=object),
                "script": [["a", None, "文"][k % 3] for k in range(m)]}
    out = []
    for m in (0, 1, 2, 5, 64, 65):
        p = base(m)
        out.append(p)
        if not m:
            continue
        out += [{**p, "row": p["row"] + 1}, {**p, "row": p["row"].astype(np.int32)}, {**p, "row": p["row"] - 1},
                {**p, "row": p["row"].reshape(1, -1)}, {**p, "action": p["action"].astype(np.int64)},
                {**p, "action": np.full(m, 99, np.int8)}, {**p, "action": np.full(m, -1, np.int8)},
                {**p, "action": np.array(["SMS"] * m, dtype=object)}, {**p, "priority": p["priority"].tolist()},
                {**p, "priority": p["priority"].astype(np.float32)}, {**p, "earliest_at": p["earliest_at"][:-1]},
                {**p, "language": np.array(["xx"] * m, dtype=object)},
                {**p, "language": np.array(["zh"] * m)}, {**p, "script_id": p["script_id"].tolist()},
                {**p, "script": p["script"][:-1]}, {**p, "script": [3] * m}, {**p, "script": tuple(p["script"])},
                {**p, "script": pa.array(p["script"], pa.string())}, {**p, "extra": np.zeros(m)},
                {k: v for k, v in p.items() if k != "language"}, {k: v for k, v in p.items() if k != "script"}]
    return out


def test_a_typed_plan_is_checked_as_the_columns_check_it():
    """_typed_plan (a request's plan already in its types, accepted as it is) against the one
    general check (_checked_plan_columns) on plans right and wrong: whatever it accepts, the
    general check accepts with the same columns, in the same order, of the same types and
    values; whatever the general check rejects, it leaves to it (None)."""
    from kernel.pipeline import _checked_plan, _checked_plan_columns, _typed_plan
    from kernel.plugins import PluginError
    rng = np.random.default_rng(12)
    accepted = 0
    for k, plan in enumerate(_plan_variants(rng)):
        typed = _typed_plan(plan, 1)
        try:
            general = _checked_plan_columns(plan, 1, ("s", "p"), "h")
        except PluginError as e:
            assert typed is None, (k, str(e))
            with pytest.raises(PluginError, match=re.escape(str(e).split(": ", 1)[1])):
                _checked_plan(plan, 1, ("s", "p"), "h")
            continue
        if typed is None:
            continue
        accepted += 1
        assert list(typed) == list(general), k
        for name, value in typed.items():
            other = general[name]
            if isinstance(value, np.ndarray):
                assert value.dtype == other.dtype and value.tolist() == other.tolist(), (k, name)
            else:
                assert list(value) == (other.to_pylist() if isinstance(other, pa.Array) else list(other)), (k, name)
        assert _typed_plan(plan, 2) is None
    assert accepted >= 5


def test_the_built_in_strategys_plan_is_taken_as_typed(kernel, pipeline, book):
    """The built-in strategy's plan of one account (rows, codes and times from its compiled
    pass) is accepted by _typed_plan as it is — the way it was written for, not the general
    conversion — and is what _checked_plan_columns makes of it, for every kind of account."""
    from kernel.hookspecs import Batch
    from kernel.pipeline import _checked_plan_columns, _typed_plan
    decisions = kernel.decide(book, AS_OF)
    planned = 0
    for row in _picks(book, decisions):
        record = book.slice(row, 1).to_pylist()[0]
        batch = Batch(1, AS_OF, NOW, [Record(kernel.decide_record(record, AS_OF)), Record(record)], pipeline.config)
        plan = pipeline.strategy.plan(batch)
        if not len(plan["action"]):
            continue
        typed = _typed_plan(plan, 1)
        assert typed is not None, record["account_id"]
        general = _checked_plan_columns(plan, 1, ("s", "p"), "h")
        assert list(typed) == list(general)
        for name, value in typed.items():
            other = general[name]
            assert (value.dtype == other.dtype and value.tolist() == other.tolist()) if isinstance(value, np.ndarray) \
                else value == other, name
        planned += 1
    assert planned >= 50


@pytest.fixture(scope="module")
def ledger_world(kernel, tmp_path_factory):
    """A generated book of 400 accounts with its event history in a real ledger, and a
    pipeline reading the accounts' state from it."""
    from kernel.ledger import Ledger
    from kernel.synth import iter_book_and_events
    batches = list(iter_book_and_events(400, 23, AS_OF))
    book = pa.Table.from_batches([b for b, _ in batches])
    events = pa.concat_tables([pa.Table.from_batches([e]) for _, e in batches])
    folder = tmp_path_factory.mktemp("request_verdicts")
    with Ledger(f"sqlite:///{folder / 'ledger.db'}") as ledger:
        ledger.ingest(events, now=NOW)
        yield book, Pipeline(kernel, config={}, audit_path=folder / "audit.log", ledger=ledger)


@pytest.mark.parametrize("hours", [0, 13, 22])
def test_a_requests_verdicts_are_the_general_ways(kernel, ledger_world, hours):
    """A request's verdicts through the one layer (``Pipeline._judge_request``: the engine's
    ``judge_request``, plain lists checked once) against the general way (an ActionBatch,
    ``_judge_all``, ``_judge_run``, ``Engine.judge``) on the same accounts: every account of a
    generated book with its event history in a ledger, at moments across the debtors' days,
    its real plan (scripts included) and a plan of every action — each action's outcome,
    reason, next allowed time and policy the same; and the one layer answers for every
    account the built-in engine judges."""
    from kernel.hookspecs import ACTION, Batch
    book, pipe = ledger_world
    at = NOW + dt.timedelta(hours=hours)
    planned = 0
    seen = set()
    every = np.array(sorted(ACTION.values()), np.int8)
    for record in _many_states(book).to_pylist():
        joined = pipe.record_with_state(record, AS_OF, at)
        decided = kernel.decide_record(joined, AS_OF)
        batch = Batch(1, AS_OF, at, [Record(decided), Record(joined)], pipe.config)
        plans = [{"row": np.zeros(every.size, np.int64), "action": every,
                  "earliest_at": np.full(every.size, batch.now_us + 3_600_000_000, np.int64),
                  "script": [None] * every.size}]
        plan = pipe._plan(batch)
        if len(plan["action"]):
            plans.append(plan)
            planned += 1
        policy_set = pipe.sets[pipe._route_one(batch)]
        for plan in plans:
            one = pipe._judge_request(policy_set, batch, plan)
            assert one is not None, record["account_id"]
            general = pipe._judge_all(policy_set, ActionBatch(batch, plan["row"], plan["action"], plan["earliest_at"],
                                                              script=plan["script"]), [])
            for name, got, expected in zip(one, one.values(), general):
                assert got.dtype == expected.dtype and got.tolist() == expected.tolist(), \
                    (record["account_id"], name)
            seen |= set(one["outcome"].tolist())
    assert planned >= 15 and seen == {0, 1, 2}


def test_a_request_falls_back_to_the_general_way(pipeline, book):
    """An engine without ``judge_request``, or whose answer is malformed or unclean where it
    keeps, or that raises, leaves a request to the general way (None here)."""
    from kernel.hookspecs import Batch
    record = book.slice(0, 1).to_pylist()[0]
    batch = Batch(1, AS_OF, NOW, [Record(record)], pipeline.config)
    plan = {"row": np.zeros(2, np.int64), "action": np.array([1, 2], np.int8),
            "earliest_at": np.full(2, batch.now_us, np.int64), "script": [None, None]}
    NULL = NULL_TIME
    answers = [  # (what judge_request returns, taken as it is)
        (([0, 2], [None, "R"], [NULL, NULL], [None, "p"]), True),
        (([1, 0], ["D", None], [5, NULL], ["p", None]), True),
        (([1, 0], ["D", None], [NULL, NULL], ["p", None]), False),      # DEFER without a time
        (([3, 0], ["X", None], [NULL, NULL], ["p", None]), False),      # no such outcome
        (([0, 0], ["R", None], [NULL, NULL], [None, None]), False),     # a reason on KEEP
        (([0, 2], [None, "R"], [7, NULL], [None, "p"]), False),         # a time on KEEP
        (([0, 2], [None, None], [NULL, NULL], [None, "p"]), False),     # BLOCK without a reason
        (([0, 2], [None, "R"], [NULL, NULL], [None, "p", None]), False),  # a column too long
        (([2, 0], ["R", None], [9, NULL], ["p", None]), True),          # a block's time is not read
        (([1, 0], ["D", None], [5, NULL], [None, None]), False),        # DEFER without a policy
        (([-1, 0], ["X", None], [NULL, NULL], ["p", None]), False),     # no such outcome
        (([True, 0], ["X", None], [NULL, NULL], ["p", None]), False),   # a bool, not an int
        (([0, 2.0], [None, "R"], [NULL, NULL], [None, "p"]), False),    # not an int
        ((np.array([0, 2]), [None, "R"], [NULL, NULL], [None, "p"]), False),
        (None, False),
    ]

    class Engine:
        def __init__(self, answer):
            self.answer = answer

        def judge_request(self, policies, batch, action, earliest_at_us, script):
            if self.answer == "raise":
                raise RuntimeError("no")
            return self.answer

    def set_with(engine):
        policy = type("P", (), {"engine": engine})()
        return type(pipeline.sets[0])("test", [("p", policy, "test", None)])

    for answer, taken in answers + [("raise", False)]:
        found = pipeline._judge_request(set_with(Engine(answer)), batch, plan)
        assert (found is not None) == taken, answer
        if taken:
            assert found["outcome"].dtype == np.int8 and found["outcome"].tolist() == answer[0]
            assert found["reason_code"].tolist() == answer[1] and found["policy"].tolist() == answer[3]
            assert found["next_allowed_at"].dtype == np.int64 and found["next_allowed_at"].tolist() == answer[2]
    assert pipeline._judge_request(set_with(object()), batch, plan) is None


def test_one_action_falls_back_to_the_requests_way(pipeline, book):
    """An engine's ``judge_action`` (``Pipeline.judge``'s one action) answer is taken only when
    well-formed and clean where it keeps; malformed, raising or absent, ``_judge_action``
    answers None (then ``_judge_request`` and the general way judge it again); and the
    built-in engine offers it, so the gate's question takes it."""
    from kernel.hookspecs import ACTION, Batch
    record = book.slice(0, 1).to_pylist()[0]
    batch = Batch(1, AS_OF, NOW, [Record(record)], pipeline.config)
    NULL = NULL_TIME
    answers = [  # (what judge_action returns, taken as it is)
        ((0, None, NULL, None), True),
        ((1, "D", 5, "p"), True),
        ((2, "R", 9, "p"), True),                # a block's time is not read
        ((1, "D", NULL, "p"), False),            # DEFER without a time
        ((3, "X", NULL, "p"), False),            # no such outcome
        ((-1, "X", NULL, "p"), False),
        ((0, "R", NULL, None), False),           # a reason on KEEP
        ((0, None, 7, None), False),             # a time on KEEP
        ((2, None, NULL, "p"), False),           # BLOCK without a reason
        ((1, "D", 5, None), False),              # DEFER without a policy
        ((True, None, NULL, None), False),       # a bool, not an int
        ((0, None, float(NULL), None), False),   # not an int
        ((0, None, NULL), False),                # too short
        ([0, None, NULL, None], False),          # not a tuple
        (None, False),
    ]

    class Engine:
        def __init__(self, answer):
            self.answer = answer

        def judge_action(self, policies, batch, code, at_us):
            if self.answer == "raise":
                raise RuntimeError("no")
            return self.answer

    for answer, taken in answers + [("raise", False)]:
        found = pipeline._judge_action((Engine(answer).judge_action, []), batch, 1)
        assert (found == answer) if taken else found is None, answer
    policy_set = pipeline.sets[pipeline._route_one(batch)]
    assert all(policy_set.action_for(code) is not None for code in ACTION.values())
    assert type(policy_set)("test", [("p", type("P", (), {"engine": object()})(), "test", None)]).action_for(1) is None


def test_a_records_merged_values_after_add_are_worked_out_again(book):
    """``Batch.add`` of a record to a batch of records whose merged values were read keeps
    them up to date by shadowing (no second merge of every source): the same dict as merging
    the sources again, the new record's values first; columns (not a record) reset them."""
    from kernel.hookspecs import Batch
    record = book.slice(7, 1).to_pylist()[0]
    decided = Record({"dpd": 1, "collection_tier.tier": "MILD", "country": "US"})
    for read_first in (False, True):
        batch = Batch(1, AS_OF, NOW, [decided, Record(record)])
        if read_first:
            assert batch.merged["country"] == "US" and batch.merged["name"] == record["name"]
        extra = Record({"valuation.price": 5.0, "country": "CN"})
        batch.add(extra)
        again = Batch(1, AS_OF, NOW, [extra, decided, Record(record)])
        assert batch.merged == again.merged and list(batch.merged) == list(again.merged)
        assert batch.merged["country"] == "CN" and batch.float_one("valuation.price") == 5.0
    batch = Batch(1, AS_OF, NOW, [decided, Record(record)])
    assert batch.merged is not None
    batch.add({"valuation.price": np.array([5.0])})
    assert batch.merged is None


def test_records_merged_values_are_each_columns_first_value(book):
    """``Batch.merged`` of one, two or three records: each column's value from the first
    source holding it, in the order merging them from the last to the first gives (a plain
    dict, the sources left as they were); one record is itself; a source of columns, none."""
    from kernel.hookspecs import Batch
    record = Record(book.slice(7, 1).to_pylist()[0])
    decided = Record({"dpd": 1, "collection_tier.tier": "MILD", "country": "US"})
    extra = Record({"valuation.price": 5.0, "country": "CN", "dpd": 2})
    for sources in ([record], [decided, record], [extra, decided, record], [extra, decided]):
        kept = [dict(s) for s in sources]
        folded: dict = {}
        for source in reversed(sources):
            folded.update(source)
        merged = Batch(1, AS_OF, NOW, sources).merged
        assert merged == folded and list(merged) == list(folded)
        assert (merged is sources[0]) if len(sources) == 1 else type(merged) is dict
        assert [dict(s) for s in sources] == kept
    assert Batch(1, AS_OF, NOW, [decided, {"dpd": np.array([3])}]).merged is None


def _with_nulls(table: pa.Table) -> pa.Table:
    """``table`` with a rotating few of the scripts' optional values null (the name, the car's
    brand, the penalty interest, the demand notices sent, the currency), one account in five."""
    names = ["name", "brand", "penalty_interest", "demand_notices_sent", "currency"]
    for k, name in enumerate(names):
        if name not in table.schema.names:
            continue
        values = table[name].to_pylist()
        for row in range(k, table.num_rows, 5 * len(names)):
            values[row] = None
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    return table


@pytest.mark.parametrize("variant", ["record", "numpy_scalars"])
@pytest.mark.parametrize("world", ["ledger", "delinquent_book"])
def test_every_requests_stage_is_its_rows_of_the_batchs(kernel, pipeline, book, ledger_world, world, variant):
    """The whole stage of every account, one request at a time (``Pipeline.stage`` on its
    record: the generated plan-input reader, the scripts' renderer kept per combination of
    templates, the policy set kept per record's route values, the request's verdicts), against
    the same accounts staged as one batch: every action's code, time, priority, script (byte
    for byte), script id, language, outcome, reason, next allowed time and policy. ``ledger``:
    a generated book of 400 accounts with its event history in a ledger (≈ 40 actions);
    ``delinquent_book``: every delinquent account of a generated book of 3,000 (≈ 200
    accounts, 430 actions), the state read off the book. In
    both, some accounts moved to US states and a few with null script values;
    ``numpy_scalars``: every number and text a NumPy scalar, so each value goes through its
    column's conversion instead."""
    if world == "ledger":
        accounts, pipe = ledger_world
    else:
        accounts, pipe = book.filter(pc.greater(book["dpd"], 0)), pipeline
    table = pipe.with_state(_with_nulls(_many_states(accounts)), AS_OF, NOW, register=False)
    whole = pipe.stage(table, kernel.decide(table, AS_OF), AS_OF, NOW)
    expected: dict = {}
    for action in whole.actions.to_pylist():
        expected.setdefault(action["account_id"], []).append(action)
    staged = {"accounts": 0, "actions": 0, "scripts": set()}
    for record in table.to_pylist():
        decided = kernel.decide_record(record, AS_OF)
        if variant == "numpy_scalars":
            record, decided = _numpy_scalars(record), _numpy_scalars(decided)
        one = pipe.stage(Record(record), Record(decided), AS_OF, NOW)
        got = one.actions.to_pylist()
        assert got == expected.get(str(record["account_id"]), []), record["account_id"]
        staged["accounts"] += 1
        staged["actions"] += len(got)
        staged["scripts"] |= {a["script"] for a in got if a["script"]}
    assert staged["accounts"] >= (400 if world == "ledger" else 200), staged["accounts"]
    assert staged["actions"] >= (30 if world == "ledger" else 400), staged["actions"]
    assert len(staged["scripts"]) >= (20 if world == "ledger" else 150), len(staged["scripts"])


def test_a_records_valuation_is_row_0_of_the_batchs(pipeline, book):
    """``Pipeline._valuation_record`` (the stage's valuation of one account's records: the
    valued columns read from :meth:`Pipeline.valuate` directly) against row 0 of
    ``_valuation`` (the columns of a batch, the valued rows written into null ones), as the
    stage read it before: every value over drawn flags, prices (none, NaN, any), model years,
    mileages, grades and countries (unknown and null too); the decisions as a record and as
    one-row columns."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from kernel.hookspecs import Batch
    from kernel.pipeline import _NO_VALUATION, _first_value
    base = book.slice(11, 1).to_pylist()[0]
    flags = st.sampled_from([None, False, True])

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(flags, flags, st.one_of(st.none(), st.just(float("nan")), st.floats(0, 1e7)),
           st.one_of(st.none(), st.integers(1990, 2030)), st.one_of(st.none(), st.floats(0, 5e5)),
           st.sampled_from([None, "A", "C", "E", "Z"]), st.sampled_from([None, "CN", "US", "XX"]),
           st.booleans())
    def check(repossess, dispose, price, model_year, mileage, grade, country, columns):
        record = Record({**base, "model_year": model_year, "mileage_km": mileage, "condition_grade": grade,
                         "country": country})
        decided = {"disposal.repossess": repossess, "disposal.dispose": dispose}
        if price is not None:
            decided["rv_model.price"] = price
        decisions = {k: np.array([v], dtype=object if v is None else None) for k, v in decided.items()} \
            if columns else Record(decided)
        got = pipeline._valuation_record(Batch(1, AS_OF, NOW, [decisions, record], pipeline.config))
        columns_of = pipeline._valuation(Batch(1, AS_OF, NOW, [decisions, record], pipeline.config))
        want = Record({k: _first_value(v) for k, v in columns_of.items()} if columns_of else _NO_VALUATION)
        assert type(got) is Record and list(got) == list(want)
        assert {k: ("nan" if v != v else v) for k, v in got.items()} == \
            {k: ("nan" if v != v else v) for k, v in want.items()}

    check()
