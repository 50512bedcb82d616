"""The example third-party plugin, pip-installed as its own package, is discovered, listed with
its origin, and used: its policy defers contact on holidays, its connector reads books."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from kernel.hookspecs import CollectionStrategy
from kernel.pipeline import Pipeline
from kernel.plugins import PluginManager, read_batches, write_batches
from plugin_helpers import columns_of, us, utc


@pytest.fixture
def installed(example_plugin_path, monkeypatch):
    monkeypatch.syspath_prepend(str(example_plugin_path))
    monkeypatch.delenv("POSTLOAN_PLUGINS_DENY", raising=False)
    monkeypatch.delenv("POSTLOAN_PLUGINS_ALLOW", raising=False)
    yield example_plugin_path
    for name in [m for m in sys.modules if m.startswith("postloan_example_holidays")]:
        del sys.modules[name]


def test_it_is_discovered_from_its_own_distribution(installed):
    pm = PluginManager({})
    info = pm.infos["example.holidays"]
    assert (info.distribution, info.version, info.origin) == ("postloan-example-holidays", "0.1.0", "entry point")
    assert info.path.startswith(str(installed))
    assert pm.provider("postloan_compliance_policies", "holidays.no_contact") == "example.holidays"
    assert "jsonl" in pm.connectors()


def test_it_can_be_denied(installed):
    pm = PluginManager({"plugins": {"deny": ["example.*"]}})
    assert "example.holidays" not in pm.infos and "holidays.no_contact" not in pm.policies()


def test_postloan_plugins_lists_it(installed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "kernel", "plugins", "--json"], capture_output=True, text=True,
                         env=env, check=True).stdout
    plugins = {p["name"]: p for p in json.loads(out)["plugins"]}
    assert plugins["example.holidays"]["distribution"] == "postloan-example-holidays"
    assert plugins["example.holidays"]["provides"] == {"connectors": ["jsonl"], "steps": ["example.day5_call"],
                                                       "policies": ["holidays.no_contact"]}


class OneSms(CollectionStrategy):
    name = "one_sms"

    def plan(self, batch):
        rows = np.arange(batch.n)
        return {"row": rows, "action": np.full(batch.n, "SMS", dtype=object), "priority": np.ones(batch.n),
                "earliest_at": np.full(batch.n, batch.now_us)}


def test_its_policy_defers_contact_on_a_holiday_in_the_debtors_local_date(installed, tmp_path):
    import kernel
    config = {
        "pipeline": {"strategy": "one_sms"},
        "plugin": {"example.holidays": {"dates": ["2027-02-06", "2027-02-07"]}},
        "compliance": {"sets": {"cn": ["holidays.no_contact", "cn.quiet_hours"]},
                       "apply": [{"country": "CN", "set": "cn"}, {"country": "US", "set": "cn"}]},
    }
    pm = PluginManager(config)
    pm.register(type("P", (), {"postloan_collection_strategies": staticmethod(
        kernel.hookimpl(specname="postloan_collection_strategies")(lambda: [OneSms()]))}), "test.one_sms")
    pipe = Pipeline(None, plugins=pm, audit_path=tmp_path / "audit.log")
    now = utc(2027, 2, 6, 2, 0)        # 10:00 on 6 Feb in Shanghai; still 5 Feb (21:00) in New York
    accounts = [{}, {"country": "US", "time_zone": "America/New_York", "region": "US-NY"}]
    result = pipe.act(columns_of(accounts), {"x": np.zeros(2)}, dt.date(2027, 2, 6), now)
    rows = result.actions.to_pylist()
    assert (rows[0]["outcome"], rows[0]["reason_code"], rows[0]["policy"]) == ("DEFER", "HOLIDAY_NO_CONTACT",
                                                                              "holidays.no_contact")
    assert rows[0]["next_allowed_at"] == utc(2027, 2, 8, 0, 0)       # 8 Feb 08:00 Shanghai: after both holidays
    assert rows[1]["outcome"] == "KEEP"


def test_its_connector_round_trips_a_book(installed, small_book, tmp_path):
    pm = PluginManager({})
    book = small_book.slice(0, 300)
    path = str(tmp_path / "book.jsonl")
    assert write_batches(path, book.to_batches(), schema=book.schema, manager=pm) == 300
    back = pa.Table.from_batches(list(read_batches(path, batch_size=128, manager=pm)))
    for name in ("account_id", "dpd", "country", "contract_date", "last_conversation_at", "penalty_interest"):
        assert back[name].to_pylist() == book[name].to_pylist(), name


def test_its_strategy_step_adds_a_day5_call_to_the_tiered_plan_with_the_strategys_script(installed, tmp_path):
    """Issue 15, point 7: the example plugin composes with the built-in strategy through
    [pipeline] steps; the call it adds is scripted by the tiered strategy's own templates."""
    import kernel
    from kernel.synth import generate
    k = kernel.Kernel.load()
    book = generate(20_000, seed=3)
    as_of, now = dt.date(2026, 11, 28), utc(2026, 11, 28, 2, 0)
    decisions = k.decide(book, as_of)
    base = {"plugin": {"example.holidays": {"day5_min_pd": 0.05}}}
    plain = Pipeline(k, plugins=PluginManager(base), audit_path=tmp_path / "a.log").stage(book, decisions, as_of, now)
    stepped = Pipeline(k, plugins=PluginManager({**base, "pipeline": {"steps": ["example.day5_call"]}}),
                       audit_path=tmp_path / "b.log").stage(book, decisions, as_of, now)
    before, after = plain.actions.to_pylist(), stepped.actions.to_pylist()
    dpd = dict(zip(book["account_id"].to_pylist(), book["dpd"].to_pylist()))
    tier = dict(zip(book["account_id"].to_pylist(), decisions["collection_tier.tier"].to_pylist()))
    pd_ = dict(zip(book["account_id"].to_pylist(), decisions["pd_model.probability"].to_pylist()))
    added = after[len(before):]
    assert after[:len(before)] == before                 # the strategy's own plan is untouched
    assert added and all(a["action"] == "PHONE" for a in added)
    for a in added:
        assert dpd[a["account_id"]] == 5 and tier[a["account_id"]] == "MILD" and pd_[a["account_id"]] >= 0.05
        assert a["script_id"] and a["script"] and a["language"] in ("zh", "en")
    planned_sms = {a["account_id"] for a in before if a["action"] == "SMS"}
    expected = {i for i in planned_sms if dpd[i] == 5 and tier[i] == "MILD" and pd_[i] >= 0.05}
    assert {a["account_id"] for a in added} == expected


def test_the_guide_shows_the_example_plugins_strategy_step_as_it_is():
    """docs/plugin-guide.md quotes the step this module's test runs, word for word."""
    import re
    from plugin_helpers import ROOT
    source = (ROOT / "plugins/example_holidays/src/postloan_example_holidays/__init__.py").read_text("utf-8")
    guide = (ROOT / "docs/plugin-guide.md").read_text("utf-8")
    step = re.search(r"(class Day5Call\(StrategyStep\):.*?)\n\n\nclass ", source, re.S).group(1)
    assert step in guide


def test_its_connector_declares_nested_lists_so_collect_rules_stay_lists(installed, tmp_path, monkeypatch):
    """Issue 15, point 11: a connector says `nested = True` and postloan decide writes a collect
    ruleset's fired rules through it as lists (JSON arrays), not as 'a;b' text."""
    import pyarrow.parquet as pq

    from kernel.cli import main
    from kernel.synth import generate
    from kernel import plugins
    monkeypatch.setattr(plugins, "_DEFAULT_MANAGER", None)      # the CLI's manager sees the plugin, then forgets it
    pq.write_table(generate(300, seed=2), tmp_path / "book.parquet")
    for out in ("d.jsonl", "d.csv"):
        assert main(["decide", "--in", str(tmp_path / "book.parquet"), "--out", str(tmp_path / out),
                     "--as-of", "2026-11-28", "--quiet"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text("utf-8").splitlines()]
    fired = [r["risk_segment.rule"] for r in rows]
    assert all(isinstance(f, list) for f in fired) and any(len(f) > 1 for f in fired)
    import pyarrow.csv as pcsv
    text = pcsv.read_csv(tmp_path / "d.csv").column("risk_segment.rule").to_pylist()
    assert [t or None for t in text] == [";".join(f) or None for f in fired]     # CSV takes no lists: joined text


def test_a_connectors_nested_flag_must_be_a_bool():
    import kernel
    from kernel.hookspecs import Connector

    class Odd(Connector):
        name, suffixes, nested = "odd", (".odd",), "yes"

        def read(self, uri, *, schema, batch_size):
            return iter(())

        def write(self, uri, batches, *, schema):
            return 0

    pm = PluginManager({})
    pm.register(type("P", (), {"postloan_connectors": staticmethod(
        kernel.hookimpl(specname="postloan_connectors")(lambda: [Odd()]))}), "test.odd")
    from kernel.plugins import PluginError
    with pytest.raises(PluginError, match="nested must be True or False, got 'yes'"):
        pm.connectors()
