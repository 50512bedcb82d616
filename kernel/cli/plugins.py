"""postloan plugins: what is loaded, from where, and what each plugin provides."""
from __future__ import annotations

from . import args as a

HELP = "list the loaded plugins, where they come from and the components they provide"
DESCRIPTION = """List every plugin found through the 'postloan' entry-point group: its name, the
installed distribution and file it was loaded from, and the components it provides
(connectors, collection strategies, compliance policies with their reason codes, valuation
methods, disposal channels). Plugins kept out by the allow/deny lists are listed with the
reason. Connectors of two plugins that claim one name, URI scheme or file suffix are listed
under "conflicts", and the exit status is 1 while one is unresolved: such files cannot be
read or written until --format names a connector (<plugin>:<name>), [connectors.choose] in
the configuration picks one, or the allow/deny lists keep one plugin out. The lists come from the configuration's [plugins] allow/deny, or from
POSTLOAN_PLUGINS_ALLOW / POSTLOAN_PLUGINS_DENY (comma-separated) when set.

examples:
  postloan plugins
  postloan plugins --reasons            # every policy's reason codes
  POSTLOAN_PLUGINS_DENY=builtins.valuation postloan plugins --json   # listed as not loaded"""

_KINDS = (
    ("connectors", "postloan_connectors"),
    ("strategies", "postloan_collection_strategies"),
    ("steps", "postloan_strategy_steps"),
    ("policies", "postloan_compliance_policies"),
    ("valuation", "postloan_valuation_methods"),
    ("channels", "postloan_disposal_channels"),
)


def add_arguments(p) -> None:
    p.add_argument("--config", type=a.existing_file, default=None, help="configuration file (TOML; default $POSTLOAN_CONFIG)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--reasons", action="store_true", help="also list every compliance policy's reason codes")


def describe(manager) -> dict:
    """The loaded plugins and their components, as plain data."""
    plugins = []
    for name, info in sorted(manager.infos.items()):
        provides = {}
        for kind, hook in _KINDS:
            names = [c.name for c, plugin in manager.components(hook).values() if plugin == name]
            if names:
                provides[kind] = names
        plugins.append({"name": name, "distribution": info.distribution, "version": info.version,
                        "module": info.module, "path": info.path, "origin": info.origin, "provides": provides})
    policies = {name: dict(policy.reason_codes) for name, policy in manager.policies().items()}
    conflicts = [{"claim": c.claim, "connectors": list(c.candidates), "chosen": c.chosen}
                 for c in manager.connector_conflicts()]
    return {"plugins": plugins, "not_loaded": dict(sorted(manager.skipped.items())), "reason_codes": policies,
            "conflicts": conflicts, "config": manager.config.get("_source")}


def run(args) -> int:
    import json

    from ..plugins import PluginManager

    manager = PluginManager(args.config)
    info = describe(manager)
    # a claim two connectors make breaks the URIs it covers: not an all-clear
    status = 1 if any(c["chosen"] is None for c in info["conflicts"]) else 0
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return status
    print(f"{len(info['plugins'])} plugin(s) loaded" + (f" (configuration {info['config']})" if info["config"] else ""))
    for p in info["plugins"]:
        source = f"{p['distribution']} {p['version']}" if p["distribution"] else p["origin"]
        print(f"\n  {p['name']}  [{source}]")
        print(f"    module {p['module']} — {p['path']}")
        for kind, names in p["provides"].items():
            print(f"    {kind}: {', '.join(names)}")
    if info["not_loaded"]:
        print("\nnot loaded:")
        for name, why in info["not_loaded"].items():
            print(f"  {name}: {why}")
    if info["conflicts"]:
        print("\nconflicts:")
        for c in manager.connector_conflicts():
            print(f"  {c}")
        if status:
            print("  (files with an unresolved claim cannot be read or written: name the connector with --format "
                  "<plugin>:<name>, pick one in [connectors.choose], or deny a plugin)")
    if args.reasons:
        print("\nreason codes:")
        for policy, codes in sorted(info["reason_codes"].items()):
            print(f"  {policy}")
            for code, meaning in codes.items():
                print(f"    {code}: {meaning}")
    return status
