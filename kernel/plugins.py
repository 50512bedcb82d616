"""The plugin manager: discovery, allow/deny lists, provenance, component registries.

Plugins are found through the ``postloan`` entry-point group (the built-ins too: see the
main ``pyproject.toml``). Each entry point's *name* is the plugin's name; its value is the
module (or object) holding ``@kernel.hookimpl`` functions. Which plugins load is decided by

- ``[plugins] allow`` / ``deny`` in the configuration (TOML, see :func:`load_config`),
- ``POSTLOAN_PLUGINS_ALLOW`` / ``POSTLOAN_PLUGINS_DENY`` (comma-separated), which replace
  the configuration's lists when set.

Entries are plugin names or shell patterns (``builtins.*``); an empty allow list allows all;
deny wins over allow; an entry matching no installed plugin is an error (a typo must not
silently let a plugin through or keep one out). Two plugins with one name are an error naming
both distributions.
"""
from __future__ import annotations

import copy
import fnmatch
import importlib
import importlib.metadata
import inspect
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urlparse

import pluggy
import pyarrow as pa

from . import hookspecs
from .errors import PostloanError
from .hookspecs import HOOKS, PROJECT

__all__ = [
    "ENTRY_POINT_GROUP", "DEFAULT_CONFIG", "PluginError", "PluginInfo", "PluginManager", "ConnectorConflict",
    "load_config", "read_toml", "read_batches", "write_batches", "conform",
]

ENTRY_POINT_GROUP = "postloan"
ENV_ALLOW, ENV_DENY, ENV_CONFIG = "POSTLOAN_PLUGINS_ALLOW", "POSTLOAN_PLUGINS_DENY", "POSTLOAN_CONFIG"

#: The configuration every file is merged onto (tables merge key by key; lists and values
#: are replaced). docs/compliance.md and docs/plugin-guide.md document each key.
DEFAULT_CONFIG: dict[str, Any] = {
    "plugins": {"allow": [], "deny": []},
    "pipeline": {"strategy": "tiered", "steps": [], "valuation": "rv_model"},
    "audit": {"path": None},
    "compliance": {
        # holds first (the most fundamental ground is the reason recorded), then consent,
        # scripts, third parties, enforcement, and the timing rules last (docs/compliance.md)
        "sets": {
            "cn": ["hold.bankruptcy", "hold.dispute", "hold.deceased", "hold.hardship", "hold.promise",
                   "cn.complaint_pause", "cn.automated_consent", "cn.script_content", "third_party_contact",
                   "cn.gps_consent", "cn.repossession_basis", "disposal_notice", "limitation_period",
                   "litigation_preconditions", "cn.quiet_hours", "cn.call_limits", "cn.sms_cap"],
            "us": ["hold.bankruptcy", "hold.dispute", "hold.deceased", "us.cease_communication",
                   "us.attorney_represented", "hold.hardship", "hold.promise", "us.scra", "us.tcpa_consent",
                   "us.regf_opt_out", "us.regf_restricted_medium", "us.script_content", "third_party_contact",
                   "us.right_to_cure", "disposal_notice", "limitation_period", "litigation_preconditions",
                   "us.regf_hours", "us.inconvenient_times", "us.regf_conversation", "us.regf_call_frequency",
                   "us.ma_call_frequency"],
        },
        "apply": [
            {"country": "CN", "set": "cn"},
            {"country": "US", "set": "us"},
        ],
    },
    "policy": {},
    "strategy": {},
    "valuation": {},
    "disposal": {},
    "connectors": {"choose": {}},
    "plugin": {},
}


class PluginError(PostloanError):
    """A plugin failed to load, broke a hook's contract or raised; names the plugin and hook."""

    def __init__(self, message: str, plugin: str | None = None, hook: str | None = None):
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    module: str                 # import path of the plugin object
    path: str | None            # file the plugin module was loaded from
    distribution: str | None    # installed package providing it (None: registered in code)
    version: str | None
    origin: str                 # "entry point" or "registered in code"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def load_config(config: str | os.PathLike | Mapping | None = None) -> dict[str, Any]:
    """The effective configuration: ``config`` (a TOML file path or a mapping; default the
    file named by ``POSTLOAN_CONFIG``, else nothing) merged onto :data:`DEFAULT_CONFIG`.
    The result records its file under ``_source``."""
    source = None
    if config is None and os.environ.get(ENV_CONFIG):
        config = os.environ[ENV_CONFIG]
    if config is None:
        given: Mapping = {}
    elif isinstance(config, Mapping):
        given = config
    else:
        source = str(config)
        given = read_toml(config, "configuration")
    if given.get("_merged"):
        return dict(given)
    _check_depth(given, source or "configuration")
    merged = _merge(copy.deepcopy(DEFAULT_CONFIG), given, source or "configuration", "")
    _check_types(merged, source or "configuration")
    merged["_source"] = source
    merged["_merged"] = True
    return merged


#: deepest nesting of tables and arrays a configuration may have (the documented ones reach 3);
#: copying and merging recurse once per level
MAX_CONFIG_DEPTH = 32


#: a key of more than MAX_CONFIG_DEPTH dotted parts, at a line start or in an inline table or
#: header: tomllib takes quadratic time over them (30,000 parts: minutes), so they are refused
#: before parsing — the configuration could not nest that deep anyway
_DEEP_DOTTED_KEY = re.compile(r"""(?:^|[{,\[])[ \t]*(?:(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')[ \t]*\.[ \t]*)"""
                              rf"{{{MAX_CONFIG_DEPTH},}}", re.M)


def _check_depth(config: Mapping, source: str) -> None:
    stack = [(config, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise PostloanError(f"{source}: [{where.strip('.')}] nests tables and arrays more than "
                                f"{MAX_CONFIG_DEPTH} deep")
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1, f"{where}{k}." if depth < 3 else where) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, where) for v in value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: the configuration's own keys and what each must hold (other keys and tables — a plugin's,
#: a later version's — pass through): a value of the wrong type fails here, naming the key,
#: instead of deep inside the component that reads it ([audit] sync and interval_ms are
#: checked, values and all, by kernel.audit.AuditLog)
_TYPES: dict[tuple[str, str], tuple[str, Any]] = {
    ("plugins", "allow"): ("a list of plugin names", lambda v: isinstance(v, str) or _is_names(v)),
    ("plugins", "deny"): ("a list of plugin names", lambda v: isinstance(v, str) or _is_names(v)),
    ("pipeline", "strategy"): ("a strategy name", lambda v: isinstance(v, str)),
    ("pipeline", "steps"): ("a list of strategy-step names", _is_names),
    ("pipeline", "valuation"): ("a valuation method name", lambda v: isinstance(v, str)),
    ("audit", "path"): ("a file path", lambda v: v is None or isinstance(v, str)),
    ("compliance", "sets"): ("a table of policy-name lists", lambda v: isinstance(v, Mapping)),
    ("compliance", "apply"): ("a list of [[compliance.apply]] tables",
                              lambda v: isinstance(v, list) and all(isinstance(r, Mapping) for r in v)),
    ("valuation", "rv_model_file"): ("a file path", lambda v: isinstance(v, str)),
    ("valuation", "depreciation_file"): ("a file path", lambda v: isinstance(v, str)),
    ("disposal", "channels_file"): ("a file path", lambda v: isinstance(v, str)),
    ("disposal", "disabled"): ("a list of disposal-channel names", _is_names),
    ("disposal", "holding_cost_per_day"): ("a number of 0 or more", lambda v: _is_number(v) and v >= 0),
    ("connectors", "choose"): ("a table of suffix, scheme or name = \"<plugin>:<connector>\"",
                               lambda v: isinstance(v, Mapping) and all(isinstance(x, str) for x in v.values())),
}
#: tables whose every entry is itself a table (one per component or plugin)
_TABLES_OF_TABLES = ("policy", "strategy", "plugin")


def _check_types(config: Mapping, source: str) -> None:
    for (table, key), (expected, ok) in _TYPES.items():
        if key in config.get(table, {}) and not ok(config[table][key]):
            raise PostloanError(f"{source}: [{table}] {key} must be {expected}, got {_shape(config[table][key])}")
    for table in _TABLES_OF_TABLES:
        for name, value in config.get(table, {}).items():
            if not isinstance(value, Mapping):
                raise PostloanError(f"{source}: [{table}.{_toml_key(name)}] must be a table, got {_shape(value)}")
    for name, policies in config["compliance"].get("sets", {}).items():
        if not _is_names(policies):
            raise PostloanError(f"{source}: [compliance.sets] {_toml_key(name)} must be a list of policy names, "
                                f"got {_shape(policies)}")
    for i, rule in enumerate(config["compliance"].get("apply", [])):
        where = f"{source}: [[compliance.apply]] rule {i + 1}"
        if not isinstance(rule.get("set"), str):
            raise PostloanError(f"{where}: set must name a policy set, got {_shape(rule.get('set'))}")
        for key in ("country", "region", "product"):
            if key in rule and not (isinstance(rule[key], str) or _is_names(rule[key])):
                raise PostloanError(f"{where}: {key} must be a name or a list of names, got {_shape(rule[key])}")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace('"', '\\"') + '"'


def _shape(value) -> str:
    """A configuration value's type as TOML calls it (the value itself may be long)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"{value!r}" if isinstance(value, int) or math.isfinite(value) else f"{value}"
    if isinstance(value, str):
        return f"{value!r}" if len(value) <= 40 else "a long text"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def read_toml(path, what: str) -> dict:
    """A TOML file (configuration, a plugin's data file) read as a table; every failure is a
    :class:`PostloanError` naming the file (size capped at :data:`kernel.files.MAX_CONFIG_BYTES`)."""
    from .files import MAX_CONFIG_BYTES, FileError, read_capped
    try:
        text = read_capped(path, MAX_CONFIG_BYTES, what).decode("utf-8")
        deep = _DEEP_DOTTED_KEY.search(text)
        if deep:
            line = text.count("\n", 0, deep.start()) + 1
            raise PostloanError(f"{path}: line {line}: a key of more than {MAX_CONFIG_DEPTH} dotted parts "
                                f"(tables nest at most {MAX_CONFIG_DEPTH} deep)")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise PostloanError(f"{path}: {what} file not found") from None
    except FileError as e:
        raise PostloanError(str(e)) from None
    except OSError as e:
        raise PostloanError(f"{path}: cannot read the {what} file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PostloanError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise PostloanError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:                 # tomllib recurses once per nested array or inline table
        raise PostloanError(f"{path}: not valid TOML: arrays or inline tables nested too deeply") from None
    except ValueError:                     # Python converts integers of at most 4,300 digits
        raise PostloanError(f"{path}: not valid TOML: an integer of more than 4,300 digits") from None


def _merge(base: dict, over: Mapping, source: str, prefix: str) -> dict:
    for key, value in over.items():
        where = f"{prefix}{key}"
        if key in base and isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise PostloanError(f"{source}: [{where}] must be a table, got {_shape(value)}")
            _merge(base[key], value, source, where + ".")
        else:
            base[key] = copy.deepcopy(value)
    return base


def _name_list(config: Mapping, key: str, env: str) -> tuple[list[str], str]:
    if os.environ.get(env) is not None:
        return [p.strip() for p in os.environ[env].split(",") if p.strip()], f"${env}"
    value = config.get("plugins", {}).get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PostloanError(f"{config.get('_source') or 'configuration'}: [plugins] {key} must be a list of plugin names")
    return value, f"[plugins] {key}"


# --------------------------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------------------------

class PluginManager:
    """Loads plugins and hands out their components by name.

    >>> pm = PluginManager()                       # discovers entry points, honours allow/deny
    >>> sorted(pm.policies())                      # doctest: +SKIP
    ['cn.automated_consent', 'cn.call_limits', ...]
    """

    def __init__(self, config: str | os.PathLike | Mapping | None = None, *, discover: bool = True):
        self.config = load_config(config)
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: plugins found but not loaded: name -> why (denied / not allowed)
        self.skipped: dict[str, str] = {}
        self._components: dict[str, dict[str, tuple[Any, str]]] = {}
        if discover:
            self._discover()

    # -- loading ---------------------------------------------------------------------------
    def _discover(self) -> None:
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in found:
                first = found[ep.name]
                raise PluginError(
                    f"two plugins are named {ep.name!r}: one from {_dist_label(first)} ({first.value}), "
                    f"one from {_dist_label(ep)} ({ep.value}); uninstall one or rename its entry point",
                    plugin=ep.name)
            found[ep.name] = ep
        allow, allow_src = _name_list(self.config, "allow", ENV_ALLOW)
        deny, deny_src = _name_list(self.config, "deny", ENV_DENY)
        for patterns, src in ((allow, allow_src), (deny, deny_src)):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(name, pattern) for name in found):
                    raise PluginError(f"{src} names {pattern!r}, which matches no installed plugin "
                                      f"(installed: {', '.join(sorted(found)) or 'none'})", plugin=pattern)
        for name in sorted(found):
            if any(fnmatch.fnmatchcase(name, p) for p in deny):
                self.skipped[name] = f"denied by {deny_src}"
                continue
            if allow and not any(fnmatch.fnmatchcase(name, p) for p in allow):
                self.skipped[name] = f"not in {allow_src}"
                continue
            ep = found[name]
            try:
                plugin = ep.load()
            except Exception as e:  # an import error in someone else's package
                raise PluginError(f"plugin {name!r} ({ep.value}, from {_dist_label(ep)}) failed to import: "
                                  f"{type(e).__name__}: {e}", plugin=name) from e
            dist = getattr(ep, "dist", None)
            self._register(plugin, name, PluginInfo(
                name=name, module=ep.value, path=_plugin_path(plugin),
                distribution=dist.name if dist else None, version=dist.version if dist else None,
                origin="entry point"))

    def register(self, plugin: Any, name: str) -> None:
        """Register a plugin object from code (tests, embedding applications)."""
        caller = inspect.stack()[1]
        self._register(plugin, name, PluginInfo(
            name=name, module=getattr(plugin, "__name__", type(plugin).__name__), path=_plugin_path(plugin),
            distribution=None, version=None, origin=f"registered in code ({Path(caller.filename).name}:{caller.lineno})"))

    def _register(self, plugin: Any, name: str, info: PluginInfo) -> None:
        if name in self.infos:
            other = self.infos[name]
            raise PluginError(f"plugin name {name!r} is already taken by {other.module} "
                              f"({other.distribution or other.origin}); pick another name", plugin=name)
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin {name!r} ({info.module}): {e}", plugin=name) from None
        except ValueError as e:       # pluggy: the same object registered twice
            raise PluginError(f"plugin {name!r} ({info.module}): {e}", plugin=name) from None
        unknown = [attr for attr in dir(plugin) if attr.startswith("postloan_") and attr not in HOOKS]
        if unknown:
            self._pm.unregister(name=name)
            raise PluginError(f"plugin {name!r} ({info.module}) implements {unknown[0]!r}, which is not a "
                              f"postloan hook (hooks: {', '.join(HOOKS)})", plugin=name, hook=unknown[0])
        self.infos[name] = info
        self._components.clear()

    # -- components ------------------------------------------------------------------------
    def _collect(self, hook: str) -> list[tuple[Any, str]]:
        """Every component the plugins return from registry ``hook``, checked one by one,
        with the plugin providing it, in registration order (names not yet compared)."""
        if hook in self._components:
            return self._components[hook]
        if hook not in HOOKS:
            raise PluginError(f"unknown hook {hook!r} (hooks: {', '.join(HOOKS)})", hook=hook)
        base = HOOKS[hook]
        found: list[tuple[Any, str]] = []
        for impl in getattr(self._pm.hook, hook).get_hookimpls():  # in registration order
            plugin = impl.plugin_name
            kwargs = {arg: self.config for arg in impl.argnames if arg == "config"}
            try:
                result = impl.function(**kwargs)
            except PostloanError as e:
                raise PluginError(f"plugin {plugin!r} failed in hook {hook}: {e}", plugin=plugin, hook=hook) from e
            except Exception as e:
                raise PluginError(f"plugin {plugin!r} raised {_what(e)} in hook {hook}{_where(e)}",
                                  plugin=plugin, hook=hook) from e
            if result is None:           # most often a forgotten `return`: never taken for "nothing"
                raise PluginError(f"plugin {plugin!r}: hook {hook} returned None; return a list of "
                                  f"{base.__name__} ([] to provide none)", plugin=plugin, hook=hook)
            if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
                raise PluginError(f"plugin {plugin!r}: hook {hook} must return a list of {base.__name__}, "
                                  f"got {type(result).__name__}", plugin=plugin, hook=hook)
            for item in result:
                if not isinstance(item, base):
                    raise PluginError(f"plugin {plugin!r}: hook {hook} returned a {type(item).__name__}, "
                                      f"expected a kernel.hookspecs.{base.__name__}", plugin=plugin, hook=hook)
                name = getattr(item, "name", "")
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {plugin!r}: hook {hook} returned a {type(item).__name__} "
                                      f"without a name", plugin=plugin, hook=hook)
                if isinstance(item, hookspecs.Connector):
                    _check_claims(item, plugin)
                found.append((item, plugin))
        self._components[hook] = found
        return found

    def components(self, hook: str) -> dict[str, tuple[Any, str]]:
        """Every component the plugins return from registry ``hook``: name -> (component,
        plugin). Two components of one kind with one name are an error naming both plugins —
        except connectors, which are picked by URI rather than by name: see :meth:`connectors`."""
        if hook == "postloan_connectors":
            return {name: (conn, self.connector_plugin(conn)) for name, conn in self.connectors().items()}
        found: dict[str, tuple[Any, str]] = {}
        for item, plugin in self._collect(hook):
            if item.name in found:
                raise PluginError(f"{HOOKS[hook].__name__} {item.name!r} is provided by both plugin "
                                  f"{found[item.name][1]!r} and plugin {plugin!r}", plugin=plugin, hook=hook)
            found[item.name] = (item, plugin)
        return found

    # -- connectors: two plugins may claim one name, scheme or suffix --------------------------
    def connectors(self) -> dict[str, hookspecs.Connector]:
        """Connectors by name; a name that several plugins provide appears once per plugin as
        ``<plugin>:<name>``. Claims two connectors share (see :meth:`connector_conflicts`)
        break only the URIs they claim, never the other formats."""
        entries = self._collect("postloan_connectors")
        providers: dict[str, int] = {}
        for conn, _ in entries:
            providers[conn.name] = providers.get(conn.name, 0) + 1
        return {(conn.name if providers[conn.name] == 1 else f"{plugin}:{conn.name}"): conn for conn, plugin in entries}

    def connector_plugin(self, connector: hookspecs.Connector) -> str:
        """The plugin that provides ``connector``."""
        return next(plugin for conn, plugin in self._collect("postloan_connectors") if conn is connector)

    def connector_conflicts(self) -> list["ConnectorConflict"]:
        """Every name, URI scheme or file suffix that more than one connector claims, with the
        connector ``[connectors.choose]`` picks for it (None: unresolved)."""
        claims: dict[str, list[tuple[hookspecs.Connector, str]]] = {}
        for conn, plugin in self._collect("postloan_connectors"):
            keys = [conn.name] + [f"{s.lower()}:" for s in conn.schemes] + [s.lower() for s in conn.suffixes]
            for key in dict.fromkeys(keys):
                claims.setdefault(key, []).append((conn, plugin))
        choices = self._connector_choices()
        return [ConnectorConflict(key, tuple(f"{plugin}:{conn.name}" for conn, plugin in found),
                                  None if key not in choices else f"{self.connector_plugin(choices[key])}:"
                                                                  f"{choices[key].name}")
                for key, found in claims.items() if len(found) > 1]

    def _connector_choices(self) -> dict[str, hookspecs.Connector]:
        """``[connectors.choose]``: claim (``.jsonl``, ``kafka:``, a connector name) -> the
        connector that handles it, checked."""
        table = self.config.get("connectors", {}).get("choose", {})
        where = f"{self.config.get('_source') or 'configuration'}: [connectors.choose]"
        if not isinstance(table, Mapping):
            raise PluginError(f"{where} must be a table of claim = \"<plugin>:<connector>\"", hook="postloan_connectors")
        choices = {}
        for key, ref in table.items():
            if not isinstance(ref, str):
                raise PluginError(f"{where} {key!r}: expected a connector name as text, got {type(ref).__name__}",
                                  hook="postloan_connectors")
            conn = self._named_connector(f"{where} {key!r}", ref)
            claims = [conn.name] + [f"{s.lower()}:" for s in conn.schemes] + [s.lower() for s in conn.suffixes]
            if key.lower() not in claims:
                raise PluginError(f"{where} {key!r}: connector {ref!r} does not claim it (it claims "
                                  f"{', '.join(claims)})", hook="postloan_connectors")
            choices[key.lower()] = conn
        return choices

    def _named_connector(self, uri: str, name: str) -> hookspecs.Connector:
        entries = self._collect("postloan_connectors")
        plugin, _, short = name.rpartition(":")
        found = [conn for conn, p in entries if conn.name == short and (not plugin or p == plugin)]
        if len(found) == 1:
            return found[0]
        if found:
            options = " or ".join(repr(f"{p}:{conn.name}") for conn, p in entries if conn.name == short)
            raise PluginError(f"{uri}: several plugins provide a connector named {short!r}: name one as {options}, "
                              f"or deny one of the plugins", hook="postloan_connectors")
        raise PostloanError(f"{uri}: no connector named {name!r} "
                            f"(connectors: {', '.join(sorted(self.connectors())) or 'none'})")

    def connector_for(self, uri: str, name: str | None = None) -> hookspecs.Connector:
        """The connector handling ``uri``: the one called ``name`` if given (``<plugin>:<name>``
        where two plugins use one name), else by URI scheme, else by its longest matching file
        suffix. A scheme or suffix two connectors claim is an error naming both, unless
        ``[connectors.choose]`` picks one."""
        if name is not None:
            return self._named_connector(uri, name)
        entries = self._collect("postloan_connectors")
        scheme = urlparse(str(uri)).scheme.lower()
        if len(scheme) > 1:          # not a Windows drive letter
            found = [(c, p) for c, p in entries if scheme in (s.lower() for s in c.schemes)]
            if not found:
                schemes = sorted({s for c, _ in entries for s in c.schemes})
                raise PostloanError(f"{uri}: no connector handles the scheme {scheme!r} "
                                    f"(schemes: {', '.join(schemes) or 'none'})")
            return self._claimed(uri, f"{scheme}:", f"the scheme {scheme}", found)
        lowered = str(uri).lower()
        matches = [(len(s), s.lower(), c, p) for c, p in entries for s in c.suffixes if lowered.endswith(s.lower())]
        if not matches:
            suffixes = sorted({s for c, _ in entries for s in c.suffixes})
            raise PostloanError(f"{uri}: no connector handles this file type (known: {', '.join(suffixes) or 'none'})")
        longest = max(m[0] for m in matches)
        suffix = next(m[1] for m in matches if m[0] == longest)
        found = list({id(c): (c, p) for n, _, c, p in matches if n == longest}.values())
        return self._claimed(uri, suffix, f"the suffix {suffix}", found)

    def _claimed(self, uri: str, key: str, claim: str, found: list) -> hookspecs.Connector:
        if len(found) == 1:
            return found[0][0]
        chosen = self._connector_choices().get(key)
        if chosen is not None:
            return chosen
        names = " and ".join(f"{c.name!r} (plugin {p!r})" for c, p in found)
        raise PluginError(f"{uri}: connectors {names} both claim {claim}; choose one with --format <plugin>:<name>, "
                          f"with [connectors.choose] \"{key}\" = \"<plugin>:<name>\" in the configuration, or deny "
                          f"one of the plugins", plugin=found[-1][1], hook="postloan_connectors")

    def strategies(self) -> dict[str, hookspecs.CollectionStrategy]:
        return {n: c for n, (c, _) in self.components("postloan_collection_strategies").items()}

    def policies(self) -> dict[str, hookspecs.CompliancePolicy]:
        return {n: c for n, (c, _) in self.components("postloan_compliance_policies").items()}

    def valuation_methods(self) -> dict[str, hookspecs.ValuationMethod]:
        return {n: c for n, (c, _) in self.components("postloan_valuation_methods").items()}

    def disposal_channels(self) -> dict[str, hookspecs.DisposalChannel]:
        return {n: c for n, (c, _) in self.components("postloan_disposal_channels").items()}

    def provider(self, hook: str, name: str) -> str:
        """The plugin that provides component ``name`` of ``hook``."""
        return self.components(hook)[name][1]


@dataclass(frozen=True)
class ConnectorConflict:
    """A connector name, URI scheme (``kafka:``) or file suffix (``.jsonl``) that several
    connectors claim; ``chosen`` is the one ``[connectors.choose]`` picks (None: unresolved —
    the URIs it covers fail, naming the candidates; other formats work)."""

    claim: str
    candidates: tuple[str, ...]        # "<plugin>:<connector>", in registration order
    chosen: str | None = None

    def __str__(self) -> str:
        what = ("the name" if not self.claim.startswith(".") and not self.claim.endswith(":")
                else "the scheme" if self.claim.endswith(":") else "the suffix")
        how = f"[connectors.choose] picks {self.chosen}" if self.chosen else "unresolved"
        return f"{what} {self.claim} is claimed by {' and '.join(self.candidates)} ({how})"


def _check_claims(conn: hookspecs.Connector, plugin: str) -> None:
    """A connector's schemes and suffixes are lists of text (a bare string would claim each
    of its letters); suffixes start with a dot."""
    for field in ("schemes", "suffixes"):
        values = getattr(conn, field, ())
        if isinstance(values, str) or not isinstance(values, (tuple, list)) \
                or not all(isinstance(v, str) and v for v in values):
            raise PluginError(f"plugin {plugin!r}: connector {conn.name!r}: {field} must be a tuple of text, "
                              f"got {values!r}", plugin=plugin, hook="postloan_connectors")
    if not isinstance(getattr(conn, "nested", False), bool):
        raise PluginError(f"plugin {plugin!r}: connector {conn.name!r}: nested must be True or False, "
                          f"got {conn.nested!r}", plugin=plugin, hook="postloan_connectors")
    bad = [s for s in conn.suffixes if not s.startswith(".") or len(s) < 2]
    if bad:
        raise PluginError(f"plugin {plugin!r}: connector {conn.name!r}: suffix {bad[0]!r} must start with a dot "
                          f"(\".jsonl\")", plugin=plugin, hook="postloan_connectors")


def _dist_label(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist else "an unknown distribution"


def _plugin_path(plugin) -> str | None:
    try:
        return inspect.getfile(plugin if inspect.ismodule(plugin) or inspect.isclass(plugin) else type(plugin))
    except TypeError:
        return None


def raised(exc: BaseException) -> str:
    """What a plugin raised, as an error message may say it: the exception's type, an
    OSError's errno with the system's own text for it, and the file and line that raised —
    never the message, which is the plugin's and may hold personal data ('disk full name=张三')."""
    return _what(exc) + _where(exc)


def _what(exc: BaseException) -> str:
    """The exception's type, and an OSError's errno as ``[ENOSPC: No space left on device]``."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and isinstance(code, int) and code > 0:
        import errno
        return f"{type(exc).__name__} [{errno.errorcode.get(code, code)}: {os.strerror(code)}]"
    return type(exc).__name__


def _where(exc: BaseException) -> str:
    """' at file.py:LINE' of the frame that raised (no message text: it may hold personal data)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    return f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


# --------------------------------------------------------------------------------------------
# Reading and writing through connectors
# --------------------------------------------------------------------------------------------

_DEFAULT_MANAGER: PluginManager | None = None


def default_manager() -> PluginManager:
    """A process-wide manager built from the environment's configuration (lazily)."""
    global _DEFAULT_MANAGER
    if _DEFAULT_MANAGER is None:
        _DEFAULT_MANAGER = PluginManager()
    return _DEFAULT_MANAGER


def shown(column: str, value) -> str:
    """A bad value as an error message may show it: withheld for personal-data columns."""
    from .schema import pii_columns
    return "(value withheld: personal data)" if column in pii_columns("book") else repr(value)


def conform(batch: pa.RecordBatch, table: str = "book") -> pa.RecordBatch:
    """Give enum columns the contract's dictionary type (members in contract order), so a book
    read from CSV or SQLite equals the one written from Parquet. Other columns pass through."""
    from .schema import ENUMS, columns
    import pyarrow.compute as pc
    cols = columns(table)
    arrays, fields = [], []
    for field, arr in zip(batch.schema, batch.columns):
        col = cols.get(field.name)
        if col is not None and col.enum and not _is_contract_dictionary(arr.type):
            values = arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr
            members = pa.array(ENUMS[col.enum], pa.string())
            idx = pc.index_in(values.cast(pa.string()), value_set=members)
            arr = pa.DictionaryArray.from_arrays(idx.cast(pa.int8()), members)
            field = pa.field(field.name, arr.type, field.nullable, field.metadata)
        arrays.append(arr)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, batch.schema.metadata))


def _is_contract_dictionary(t: pa.DataType) -> bool:
    return pa.types.is_dictionary(t) and t.index_type == pa.int8()


def read_batches(uri: str, *, table: str = "book", batch_size: int = 65_536,
                 required: Iterable[str] | None = None,
                 manager: PluginManager | None = None,
                 connector: str | hookspecs.Connector | None = None) -> Iterator[pa.RecordBatch]:
    """Stream ``uri`` through its connector (``connector`` names one; default: by scheme or
    suffix), each batch conformed and validated against the contract's ``table`` (only the
    ``required`` columns must be present — e.g. a kernel's ``inputs`` — default all); a bad
    value is reported naming the column and its row in the file. A source without rows is
    checked through the empty batch its connector yields; one that yields nothing (no
    columns either) is an error. ``connector`` names a connector (``<plugin>:<name>`` where
    two plugins use one name) or is one of ``manager``'s. Batch jobs and ``postloan decide``
    read any connector's format through this."""
    from .schema import SchemaError, arrow_schema, columns, validate
    if required is not None:
        contract = columns(table)
        required = [name for name in required if name in contract]
    manager = manager or default_manager()
    conn = connector if isinstance(connector, hookspecs.Connector) else manager.connector_for(uri, connector)
    plugin = manager.connector_plugin(conn)
    offset = 0
    batches = 0
    try:
        for raw in conn.read(str(uri), schema=arrow_schema(table), batch_size=batch_size):
            batches += 1
            if not isinstance(raw, pa.RecordBatch):
                raise PluginError(f"connector {conn.name!r} (plugin {plugin!r}) yielded a {type(raw).__name__}, "
                                  f"expected a pyarrow.RecordBatch", plugin=plugin, hook="postloan_connectors")
            batch = conform(raw, table)
            enum_bad = _first_unknown_enum(raw, batch, table)
            if enum_bad:
                name, row, members = enum_bad       # the value is not quoted: it may be personal data
                raise SchemaError(f"{uri}: column {name!r} row {offset + row}: not one of {members}",
                                  field=name, row=offset + row)
            try:
                validate(batch, table, required=required, source=str(uri))
            except SchemaError as e:
                if e.row is None or offset == 0:
                    raise
                message = re.sub(rf"\brow {e.row}\b", f"row {offset + e.row}", str(e), count=1)
                raise SchemaError(message, field=e.field, row=offset + e.row) from None
            offset += batch.num_rows
            yield batch
        if not batches:
            raise SchemaError(f"{uri}: empty — no rows and no columns to check against the {table} table")
    except PostloanError:
        raise
    except Exception as e:      # an OSError's message too may quote data: type, errno and place only
        raise PluginError(f"{uri}: connector {conn.name!r} (plugin {plugin!r}) failed to read: {raised(e)}",
                          plugin=plugin, hook="postloan_connectors") from e


def _first_unknown_enum(raw: pa.RecordBatch, conformed: pa.RecordBatch, table: str):
    """A value that conforming turned into null because it is not an enum member."""
    import pyarrow.compute as pc
    from .schema import columns
    cols = columns(table)
    for name in raw.schema.names:
        col = cols.get(name)
        if col is None or not col.enum:
            continue
        lost = pc.and_(pc.is_valid(raw.column(name)), pc.is_null(conformed.column(name)))
        if pc.any(lost).as_py():
            row = int(pc.index(lost, True).as_py())
            from .schema import ENUMS
            return name, row, ", ".join(ENUMS[col.enum])
    return None


def write_batches(uri: str, batches: Iterable[pa.RecordBatch], *, schema: pa.Schema,
                  manager: PluginManager | None = None, connector: str | hookspecs.Connector | None = None) -> int:
    """Write ``batches`` to ``uri`` through its connector (``connector`` names one or is one of
    ``manager``'s; default: by scheme or suffix); returns the rows written."""
    manager = manager or default_manager()
    conn = connector if isinstance(connector, hookspecs.Connector) else manager.connector_for(uri, connector)
    plugin = manager.connector_plugin(conn)
    try:
        return int(conn.write(str(uri), batches, schema=schema))
    except PostloanError:
        raise
    except Exception as e:
        raise PluginError(f"{uri}: connector {conn.name!r} (plugin {plugin!r}) failed to write: {raised(e)}",
                          plugin=plugin, hook="postloan_connectors") from e
