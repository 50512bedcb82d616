"""Plugin guardrails (issue 10, from writing a third-party plugin with the guide): disposal
channels are checked when they are made, two connectors claiming one suffix break only that
suffix, a registry hook returning None is an error naming the plugin, and a policy that
raises blocks only the actions it declared it judges. Each payload is the issue's own."""
from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import kernel
from kernel.cli import main
from kernel.errors import PostloanError
from kernel.hookspecs import CollectionStrategy, CompliancePolicy, Connector, DisposalChannel, Verdicts
from kernel.pipeline import PLUGIN_ERROR, Pipeline
from kernel.plugins import PluginError, PluginManager, read_batches, write_batches
from plugin_helpers import columns_of, us, utc

AS_OF = utc(2026, 11, 28).date()
NOW = utc(2026, 11, 28, 2, 0)         # 10:00 in Shanghai: no quiet hours
GOOD_CHANNEL = dict(name="my_auction", kind="AUCTION", price_factor=0.93, success_rate=0.8, fee_rate=0.04,
                    fee_fixed=500, transport_cost=1200, expected_days=20, countries=("CN",))


def plugin_with(hook: str, function):
    return type("Plugin", (), {hook: staticmethod(kernel.hookimpl(specname=hook)(function))})


# --- disposal channels ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("price_factor", "0.9", "price_factor must be a number in [0, 2], got '0.9' (str)"),    # a raw NumPy traceback
    ("success_rate", 50, "success_rate must be a number in [0, 1], got 50"),                  # won every car
    ("expected_days", -10, "expected_days must be a number in [0, inf], got -10"),
    ("fee_fixed", float("nan"), "fee_fixed must be a number in [0, inf], got nan"),
    ("transport_cost", float("inf"), "transport_cost must be a number in [0, inf], got inf"),
    ("holding_cost_per_day", True, "holding_cost_per_day must be a number in [0, inf], got True"),
    ("kind", "PAWNSHOP", "kind must be one of AUCTION, DEALER, LEASING, DISMANTLING, got 'PAWNSHOP'"),
    ("countries", "CN", "countries must be a list of country members, got 'CN'"),
    ("conditions", ("A", "Z"), "conditions holds 'Z', not one of A, B, C, D, E"),
])
def test_a_bad_channel_from_a_plugin_is_an_error_naming_plugin_and_field(field, value, message):
    def channels():
        return [DisposalChannel(**{**GOOD_CHANNEL, field: value})]
    pm = PluginManager({})
    pm.register(plugin_with("postloan_disposal_channels", channels), "acme.auctions")
    with pytest.raises(PluginError) as e:
        pm.disposal_channels()
    assert str(e.value) == (f"plugin 'acme.auctions' failed in hook postloan_disposal_channels: "
                            f"disposal channel 'my_auction': {message}")
    assert (e.value.plugin, e.value.hook) == ("acme.auctions", "postloan_disposal_channels")


def test_a_good_channel_is_normalised():
    channel = DisposalChannel(**{**GOOD_CHANNEL, "fee_fixed": np.int64(500), "countries": ["CN"]})
    assert channel.fee_fixed == 500.0 and isinstance(channel.fee_fixed, float) and channel.countries == ("CN",)


def test_a_pipeline_is_never_built_with_a_bad_channel(tmp_path):
    """The issue's channel with success_rate 50 and −10 days won every car: now nothing starts."""
    def channels():
        return [DisposalChannel(**{**GOOD_CHANNEL, "success_rate": 50, "expected_days": -10})]
    pm = PluginManager({})
    pm.register(plugin_with("postloan_disposal_channels", channels), "acme.auctions")
    with pytest.raises(PluginError, match=r"plugin 'acme.auctions' .* success_rate must be a number in \[0, 1\]"):
        Pipeline(None, plugins=pm, audit_path=tmp_path / "audit.log")


# --- hooks returning None --------------------------------------------------------------------------

@pytest.mark.parametrize("hook", ["postloan_connectors", "postloan_compliance_policies", "postloan_disposal_channels"])
def test_a_hook_returning_none_is_an_error_naming_the_plugin(hook):
    """A forgotten `return` was accepted silently: the plugin then provided nothing."""
    def forgot_to_return(config):
        [DisposalChannel(**GOOD_CHANNEL)]
    pm = PluginManager({})
    pm.register(plugin_with(hook, forgot_to_return), "acme.forgetful")
    with pytest.raises(PluginError, match=rf"^plugin 'acme.forgetful': hook {hook} returned None; return a list "
                                          rf"of \w+ \(\[\] to provide none\)$") as e:
        pm.components(hook)
    assert e.value.plugin == "acme.forgetful"
    pm = PluginManager({}, discover=False)
    pm.register(plugin_with(hook, lambda: []), "acme.empty")       # [] is how a plugin provides nothing
    assert pm.components(hook) == {}


# --- two connectors claiming one suffix -------------------------------------------------------------

class OtherJsonLines(Connector):
    """A second JSON Lines connector, from another plugin, under the example plugin's name."""

    name = "jsonl"
    suffixes = (".jsonl",)

    def read(self, uri, *, schema, batch_size):
        yield from read_batches(uri, batch_size=batch_size, connector="example.holidays:jsonl", table="book")

    def write(self, uri, batches, *, schema):
        from kernel.files import open_output
        rows = 0
        with open_output(uri) as f:
            for batch in batches:
                f.write(b"".join(json.dumps(r, default=str).encode() + b"\n" for r in batch.to_pylist()))
                rows += batch.num_rows
        return rows


@pytest.fixture
def two_jsonl(example_plugin_path, monkeypatch, tmp_path):
    """The shipped example plugin (installed) plus a JSON Lines plugin of someone else's,
    both from entry points, as an integrator would have them."""
    monkeypatch.syspath_prepend(str(example_plugin_path))
    site = tmp_path / "site"
    (site / "acme_jsonl-1.0.dist-info").mkdir(parents=True)
    (site / "acme_jsonl-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-jsonl\nVersion: 1.0\n")
    (site / "acme_jsonl-1.0.dist-info" / "entry_points.txt").write_text("[postloan]\nacme.jsonl = acme_jsonl\n")
    (site / "acme_jsonl.py").write_text(textwrap.dedent("""\
        import kernel
        from test_plugin_guardrails import OtherJsonLines

        @kernel.hookimpl
        def postloan_connectors():
            return [OtherJsonLines()]
        """))
    monkeypatch.syspath_prepend(str(site))
    for var in ("POSTLOAN_PLUGINS_ALLOW", "POSTLOAN_PLUGINS_DENY", "POSTLOAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return site


def test_two_connectors_claiming_one_suffix_break_only_that_suffix(two_jsonl, tmp_path, small_book):
    """The example plugin plus any JSON Lines plugin made every connector fail, `decide` unusable."""
    pm = PluginManager({})
    book = small_book.slice(0, 50)
    parquet = tmp_path / "book.parquet"
    assert write_batches(str(parquet), book.to_batches(), schema=book.schema, manager=pm) == 50
    assert sum(b.num_rows for b in read_batches(str(parquet), manager=pm)) == 50
    with pytest.raises(PluginError) as e:
        pm.connector_for(str(tmp_path / "book.jsonl"))
    assert str(e.value) == (
        f"{tmp_path / 'book.jsonl'}: connectors 'jsonl' (plugin 'acme.jsonl') and 'jsonl' (plugin 'example.holidays') "
        f"both claim the suffix .jsonl; choose one with --format <plugin>:<name>, with [connectors.choose] "
        f"\".jsonl\" = \"<plugin>:<name>\" in the configuration, or deny one of the plugins")
    assert pm.connector_for(str(tmp_path / "book.ndjson")).name == "jsonl"          # only the example claims it
    assert [str(c) for c in pm.connector_conflicts()] == [
        "the name jsonl is claimed by acme.jsonl:jsonl and example.holidays:jsonl (unresolved)",
        "the suffix .jsonl is claimed by acme.jsonl:jsonl and example.holidays:jsonl (unresolved)"]
    with pytest.raises(PluginError, match=r"several plugins provide a connector named 'jsonl': name one as "
                                          r"'acme.jsonl:jsonl' or 'example.holidays:jsonl'"):
        pm.connector_for(str(tmp_path / "x.jsonl"), "jsonl")
    chosen = pm.connector_for(str(tmp_path / "x.jsonl"), "example.holidays:jsonl")
    assert pm.connector_plugin(chosen) == "example.holidays"


def test_a_choice_in_the_configuration_resolves_a_claim(two_jsonl, tmp_path, small_book):
    pm = PluginManager({"connectors": {"choose": {".jsonl": "example.holidays:jsonl"}}})
    target = tmp_path / "book.jsonl"
    book = small_book.slice(0, 20)
    assert write_batches(str(target), book.to_batches(), schema=book.schema, manager=pm) == 20
    assert sum(b.num_rows for b in read_batches(str(target), manager=pm)) == 20
    conflicts = {c.claim: c.chosen for c in pm.connector_conflicts()}
    assert conflicts == {"jsonl": None, ".jsonl": "example.holidays:jsonl"}
    with pytest.raises(PluginError, match=r"\[connectors.choose\] '.ndjson': connector 'acme.jsonl:jsonl' does "
                                          r"not claim it \(it claims jsonl, .jsonl\)"):
        PluginManager({"connectors": {"choose": {".ndjson": "acme.jsonl:jsonl"}}}).connector_conflicts()
    with pytest.raises(PostloanError, match=r"\[connectors.choose\] '.jsonl': no connector named 'nope:jsonl'"):
        PluginManager({"connectors": {"choose": {".jsonl": "nope:jsonl"}}}).connector_for(str(target))


def test_postloan_plugins_shows_the_conflict_and_exits_non_zero(two_jsonl, capsys, monkeypatch, tmp_path):
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "conflicts:\n  the name jsonl is claimed by acme.jsonl:jsonl and example.holidays:jsonl (unresolved)" in out
    assert "the suffix .jsonl is claimed by acme.jsonl:jsonl and example.holidays:jsonl (unresolved)" in out
    assert main(["plugins", "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert {c["claim"] for c in info["conflicts"]} == {"jsonl", ".jsonl"}
    assert info["plugins"][0]["name"] == "acme.jsonl" and info["plugins"][0]["provides"] == {"connectors": ["jsonl"]}
    monkeypatch.setenv("POSTLOAN_PLUGINS_DENY", "acme.jsonl")          # the allow/deny lists resolve it
    assert main(["plugins"]) == 0
    assert "conflicts" not in capsys.readouterr().out


def test_decide_works_for_other_formats_and_names_the_conflict(two_jsonl, capsys, tmp_path, monkeypatch):
    from kernel import plugins
    monkeypatch.setattr(plugins, "_DEFAULT_MANAGER", None)          # the CLI's manager sees both plugins
    book = tmp_path / "book.parquet"
    assert main(["generate", "--accounts", "200", "--out", str(book), "--quiet"]) == 0
    assert main(["decide", "--in", str(book), "--out", str(tmp_path / "d.csv"), "--as-of", "2026-11-28",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["decide", "--in", str(book), "--out", str(tmp_path / "d.jsonl"), "--as-of", "2026-11-28",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "both claim the suffix .jsonl" in err[0]
    assert main(["decide", "--in", str(book), "--out", str(tmp_path / "d.jsonl"), "--as-of", "2026-11-28",
                 "--out-format", "acme.jsonl:jsonl", "--quiet"]) == 0
    assert (tmp_path / "d.jsonl").read_text().count("\n") == 200


@pytest.mark.parametrize("attribute, value, message", [
    ("suffixes", ".jsonl", "suffixes must be a tuple of text, got '.jsonl'"),
    ("suffixes", ("jsonl",), "suffix 'jsonl' must start with a dot"),
    ("schemes", (1,), "schemes must be a tuple of text, got (1,)"),
])
def test_a_connectors_claims_are_checked(attribute, value, message):
    conn = type("Sloppy", (OtherJsonLines,), {attribute: value})()
    pm = PluginManager({}, discover=False)
    pm.register(plugin_with("postloan_connectors", lambda: [conn]), "acme.sloppy")
    with pytest.raises(PluginError, match=re.escape(f"plugin 'acme.sloppy': connector 'jsonl': {message}")):
        pm.connectors()


# --- a policy that raises blocks only what it judges ----------------------------------------------

class PlanSmsAndCall(CollectionStrategy):
    name = "sms_and_call"

    def plan(self, batch):
        return {"row": np.zeros(3, np.int64), "action": np.array(["SMS", "PHONE", "FIELD_VISIT"], dtype=object),
                "priority": np.ones(3), "earliest_at": np.full(3, us(NOW), np.int64)}


class BrokenSmsRule(CompliancePolicy):
    """Judges SMS only, and raises."""

    name = "acme.sms_rule"
    reason_codes = {"NEVER": "never given"}
    actions = ("SMS",)

    def check(self, actions):
        raise ValueError("a debtor's phone number could be here")


def test_a_raising_policy_blocks_only_the_actions_it_judges(tmp_path):
    """It blocked every action of its set, the phone call and field visit it never judged too."""
    pm = PluginManager({})
    pm.register(plugin_with("postloan_collection_strategies", lambda: [PlanSmsAndCall()]), "acme.strategy")
    pm.register(plugin_with("postloan_compliance_policies", lambda: [BrokenSmsRule()]), "acme.sms")
    config = {"pipeline": {"strategy": "sms_and_call"},
              "compliance": {"sets": {"cn": ["cn.complaint_pause", "acme.sms_rule", "cn.quiet_hours"]},
                             "apply": [{"country": "CN", "set": "cn"}]}}
    pipe = Pipeline(None, plugins=pm, config=config, audit_path=tmp_path / "audit.log")
    decisions = {"litigation.eligible": np.array([True]), "litigation.missing": np.array(["NONE"], dtype=object)}
    result = pipe.act(columns_of([{}]), decisions, AS_OF, NOW)
    outcomes = [(a["action"], a["outcome"], a["reason_code"]) for a in result.actions.to_pylist()]
    assert outcomes == [("SMS", "BLOCK", PLUGIN_ERROR), ("PHONE", "KEEP", None), ("FIELD_VISIT", "KEEP", None)]
    [error] = result.errors
    assert error.startswith("compliance policy 'acme.sms_rule' (plugin 'acme.sms', hook postloan_compliance_policies) "
                            "raised ValueError at test_plugin_guardrails.py:")
    assert error.endswith(f"the 1 action(s) it judges are blocked with {PLUGIN_ERROR}")
    assert "phone number" not in error
