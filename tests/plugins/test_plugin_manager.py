"""The plugin manager: discovery through entry points, provenance, allow/deny lists,
duplicate names, hook contracts, and the `postloan plugins` command."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

import kernel
from kernel.hookspecs import HOOKS, CompliancePolicy, Verdicts
from kernel.plugins import PluginError, PluginManager
from plugin_helpers import ROOT

BUILTINS = {"builtins.collection", "builtins.compliance", "builtins.connectors", "builtins.valuation"}


def fake_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed distribution (dist-info metadata + modules) in directory ``site``."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[postloan]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(autouse=True)
def no_env_lists(monkeypatch):
    monkeypatch.delenv("POSTLOAN_PLUGINS_ALLOW", raising=False)
    monkeypatch.delenv("POSTLOAN_PLUGINS_DENY", raising=False)
    monkeypatch.delenv("POSTLOAN_CONFIG", raising=False)


def test_builtins_are_discovered_through_entry_points_with_their_origin(manager):
    assert BUILTINS <= set(manager.infos)
    info = manager.infos["builtins.compliance"]
    assert (info.distribution, info.origin, info.module) == ("postloan", "entry point", "postloan_builtins.compliance")
    assert Path(info.path) == ROOT / "plugins" / "postloan_builtins" / "compliance.py"
    assert manager.provider("postloan_compliance_policies", "cn.quiet_hours") == "builtins.compliance"
    assert manager.provider("postloan_connectors", "parquet") == "builtins.connectors"


def test_markers_are_reexported_by_kernel():
    from kernel import hookspecs
    assert kernel.hookimpl is hookspecs.hookimpl and kernel.hookspec is hookspecs.hookspec


def test_deny_list_from_configuration_and_environment(monkeypatch):
    pm = PluginManager({"plugins": {"deny": ["builtins.valuation"]}})
    assert "builtins.valuation" not in pm.infos
    assert pm.skipped["builtins.valuation"] == "denied by [plugins] deny"
    assert pm.valuation_methods() == {}
    monkeypatch.setenv("POSTLOAN_PLUGINS_DENY", "builtins.conn*, builtins.collection")
    pm = PluginManager({"plugins": {"deny": ["builtins.valuation"]}})      # the environment replaces the file's list
    assert {"builtins.connectors", "builtins.collection"} == set(pm.skipped)
    assert pm.skipped["builtins.collection"] == "denied by $POSTLOAN_PLUGINS_DENY"
    assert "builtins.valuation" in pm.infos


def test_allow_list_keeps_everything_else_out(monkeypatch):
    monkeypatch.setenv("POSTLOAN_PLUGINS_ALLOW", "builtins.compliance")
    pm = PluginManager({})
    assert set(pm.infos) == {"builtins.compliance"}
    assert pm.skipped["builtins.connectors"] == "not in $POSTLOAN_PLUGINS_ALLOW"
    monkeypatch.delenv("POSTLOAN_PLUGINS_ALLOW")
    pm = PluginManager({"plugins": {"allow": ["builtins.*"], "deny": ["builtins.compliance"]}})
    assert "builtins.compliance" not in pm.infos and "builtins.collection" in pm.infos   # deny wins


@pytest.mark.parametrize("lists", [{"deny": ["builtins.valuaton"]}, {"allow": ["nothing.*"]}])
def test_a_list_entry_matching_no_plugin_is_an_error(lists):
    with pytest.raises(PluginError, match=r"\[plugins\] (deny|allow) names '(builtins.valuaton|nothing\.\*)', which matches "
                                          r"no installed plugin \(installed: builtins.collection"):
        PluginManager({"plugins": lists})


def test_two_distributions_with_one_plugin_name_are_rejected(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "copycat", {"builtins.compliance": "copycat_policies"},
                      {"copycat_policies": "x = 1\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"two plugins are named 'builtins.compliance': one from (postloan 0.1.0|copycat 1.0) "
                                          r".*one from (copycat 1.0|postloan 0.1.0)"):
        PluginManager({})


def test_a_plugin_that_fails_to_import_is_named(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "broken-plugin", {"broken": "broken_plugin_mod"},
                      {"broken_plugin_mod": "import not_a_module_anywhere\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'broken' \(broken_plugin_mod, from broken-plugin 1.0\) failed to "
                                          r"import: ModuleNotFoundError"):
        PluginManager({})


def test_registering_a_taken_name_is_rejected(manager):
    pm = PluginManager({}, discover=False)
    pm.register(type("A", (), {}), "mine")
    with pytest.raises(PluginError, match=r"plugin name 'mine' is already taken by A \(registered in code"):
        pm.register(type("B", (), {}), "mine")


class Misbehaving:
    """Plugins that break the registry hooks' contracts, one way each."""

    class ReturnsText:
        @staticmethod
        @kernel.hookimpl
        def postloan_compliance_policies():
            return "cn.quiet_hours"

    class ReturnsWrongType:
        @staticmethod
        @kernel.hookimpl
        def postloan_compliance_policies():
            return [object()]

    class Raises:
        @staticmethod
        @kernel.hookimpl
        def postloan_compliance_policies(config):
            raise KeyError("secret personal data")

    class Typo:
        @staticmethod
        @kernel.hookimpl
        def postloan_compliance_policy():
            return []


@pytest.mark.parametrize("plugin, message", [
    (Misbehaving.ReturnsText, r"plugin 'bad': hook postloan_compliance_policies must return a list of CompliancePolicy, got str"),
    (Misbehaving.ReturnsWrongType, r"plugin 'bad': hook postloan_compliance_policies returned a object, expected a "
                                   r"kernel.hookspecs.CompliancePolicy"),
    (Misbehaving.Raises, r"plugin 'bad' raised KeyError in hook postloan_compliance_policies at test_plugin_manager.py:\d+$"),
])
def test_registry_hook_contracts_are_enforced_naming_plugin_and_hook(plugin, message):
    pm = PluginManager({}, discover=False)
    pm.register(plugin, "bad")
    with pytest.raises(PluginError, match=message) as e:
        pm.policies()
    assert (e.value.plugin, e.value.hook) == ("bad", "postloan_compliance_policies")
    assert "secret" not in str(e.value)            # exception text may hold personal data: never repeated


def test_an_unknown_hook_name_is_rejected():
    pm = PluginManager({}, discover=False)
    with pytest.raises(PluginError, match=r"implements 'postloan_compliance_policy', which is not a postloan hook"):
        pm.register(Misbehaving.Typo, "typo")


def test_two_plugins_providing_one_component_name_are_rejected():
    class Shadow(CompliancePolicy):
        name = "cn.quiet_hours"
        reason_codes = {"X": "x"}

        def check(self, actions):
            return Verdicts(actions.n)

    class ShadowPlugin:
        @staticmethod
        @kernel.hookimpl
        def postloan_compliance_policies():
            return [Shadow()]

    pm = PluginManager({})
    pm.register(ShadowPlugin, "shadow")
    with pytest.raises(PluginError, match=r"CompliancePolicy 'cn.quiet_hours' is provided by both plugin "
                                          r"'builtins.compliance' and plugin 'shadow'"):
        pm.policies()


def test_configuration_files_are_read_and_checked(tmp_path):
    path = tmp_path / "postloan.toml"
    path.write_text('[plugins]\ndeny = ["builtins.valuation"]\n')
    assert "builtins.valuation" in PluginManager(path).skipped
    path.write_text('[plugins\ndeny = 1\n')
    with pytest.raises(kernel.PostloanError, match=r"postloan.toml: not valid TOML: .*line 1"):
        PluginManager(path)
    path.write_text('plugins = 3\n')
    with pytest.raises(kernel.PostloanError, match=r"postloan.toml: \[plugins\] must be a table"):
        PluginManager(path)


def test_cli_lists_plugins_their_origin_and_components(capsys):
    from kernel.cli import main
    assert main(["plugins", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in info["plugins"]}
    assert BUILTINS <= set(by_name)
    assert by_name["builtins.connectors"]["provides"]["connectors"] == ["parquet", "arrow", "csv", "sqlite"]
    assert by_name["builtins.compliance"]["distribution"] == "postloan"
    assert "CN_QUIET_HOURS" in info["reason_codes"]["cn.quiet_hours"]
    assert main(["plugins", "--reasons"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"builtins.compliance  \[postloan 0.1.0\]", text)
    assert "REGF_7_IN_7: 7 calls were already placed" in text


def test_cli_reports_a_bad_list_in_one_line(capsys, monkeypatch):
    from kernel.cli import main
    monkeypatch.setenv("POSTLOAN_PLUGINS_DENY", "nope")
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "$POSTLOAN_PLUGINS_DENY names 'nope'" in err[0]


def test_every_hook_is_documented_with_an_example():
    guide = (ROOT / "docs" / "plugin-guide.md").read_text("utf-8")
    import kernel.hookspecs as specs
    for hook in HOOKS:
        doc = getattr(specs, hook).__doc__
        assert "Called" in doc and "Example::" in doc, hook
        assert re.search(rf"^#+ .*`{hook}`", guide, re.M), f"docs/plugin-guide.md has no section for {hook}"


def test_the_hook_specifications_fit_one_screen_and_the_old_import_paths_still_work():
    """kernel/hookspecs.py holds the hooks only; the batch types, the components and local-time
    arithmetic have modules of their own, and every public name is still importable from
    kernel.hookspecs (the same objects, so isinstance checks agree)."""
    import kernel.batches
    import kernel.components
    import kernel.hookspecs as specs
    import kernel.localtime
    lines = (ROOT / "kernel" / "hookspecs.py").read_text("utf-8").splitlines()
    assert len(lines) <= 170, len(lines)
    assert not any(line.startswith("class ") for line in lines)
    for name in specs.__all__:
        assert hasattr(specs, name), name
    assert specs.Batch is kernel.batches.Batch and specs.Verdicts is kernel.batches.Verdicts
    assert specs.DisposalChannel is kernel.components.DisposalChannel
    assert specs.utc_offsets is kernel.localtime.utc_offsets and specs.NULL_TIME == kernel.localtime.NULL_TIME
