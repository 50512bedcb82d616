"""Every hook a postloan plugin can implement — the whole plugin contract on one screen.

A plugin is a module (or object) with functions marked ``@kernel.hookimpl`` whose names are
the hooks below; it is found through the ``postloan`` entry-point group (see
``docs/plugin-guide.md``). Built-in plugins are registered exactly the same way.

The hooks are *registries*: each is called once, when the plugin manager first needs that
kind of component, and returns the components the plugin offers. Results from every plugin
are concatenated; two components of one kind with the same name are an error naming both
plugins. Components are then picked by name in the configuration.

The component classes are in :mod:`kernel.components`, the batch types their methods take and
return in :mod:`kernel.batches`, local-time arithmetic in :mod:`kernel.localtime`; all are
importable from here too (``from kernel.hookspecs import Batch, CompliancePolicy``).
"""
from __future__ import annotations

from typing import Iterable, Mapping

import pluggy

from .batches import (ACTION, BLOCK, DEFER, KEEP, OUTCOME, ActionBatch, Batch, Plan, Record, Verdicts,  # noqa: F401
                      _datetime_us, _scalar_days, _scalar_us)
from .components import (CollectionStrategy, CompliancePolicy, Connector, DisposalChannel, StrategyStep,
                         ValuationMethod)
from .localtime import NULL_TIME, US_PER_DAY, US_PER_MINUTE, _zone_table, utc_offsets  # noqa: F401

__all__ = [
    "PROJECT", "hookspec", "hookimpl", "HOOKS",
    "postloan_connectors", "postloan_collection_strategies", "postloan_strategy_steps",
    "postloan_compliance_policies", "postloan_valuation_methods", "postloan_disposal_channels",
    "Connector", "CollectionStrategy", "StrategyStep", "CompliancePolicy", "ValuationMethod", "DisposalChannel",
    "Batch", "ActionBatch", "Plan", "Verdicts", "Record", "ACTION", "OUTCOME", "KEEP", "DEFER", "BLOCK",
    "NULL_TIME", "US_PER_MINUTE", "US_PER_DAY", "utc_offsets",
]

PROJECT = "postloan"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------
# Hook specifications
# --------------------------------------------------------------------------------------------

@hookspec
def postloan_connectors(config: Mapping) -> Iterable["Connector"]:
    """Return the data connectors this plugin provides.

    Called once, the first time a file or URI is opened through
    ``kernel.plugins.read_batches`` / ``write_batches``. ``config`` is the whole configuration
    (read your settings from ``config["plugin"]["<your plugin name>"]``). The lists from all
    plugins are concatenated; a connector is chosen for a URI by its scheme
    (``sqlite:///book.db``) or file suffix (``.parquet``). A name, scheme or suffix two
    connectors claim fails only the URIs it covers, naming both plugins, until the caller
    names one (``<plugin>:<name>``), ``[connectors.choose]`` picks one or a plugin is denied.

    Example::

        @kernel.hookimpl
        def postloan_connectors(config):
            return [JsonLinesConnector()]
    """


@hookspec
def postloan_collection_strategies(config: Mapping) -> Iterable["CollectionStrategy"]:
    """Return the collection strategies this plugin provides.

    Called once, when a :class:`kernel.pipeline.Pipeline` is built. The configuration's
    ``[pipeline] strategy`` names the one strategy that plans actions (default ``tiered``,
    the built-in). Results from all plugins are concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_collection_strategies(config):
            return [SmsOnlyStrategy()]
    """


@hookspec
def postloan_strategy_steps(config: Mapping) -> Iterable["StrategyStep"]:
    """Return strategy steps: each changes the plan after the strategy (add a call, drop one).

    Called once, when a pipeline is built. ``[pipeline] steps`` names the steps that run, in
    order, after the strategy; a step renders scripts through the strategy (``plan.render``).

    Example::

        @kernel.hookimpl
        def postloan_strategy_steps(config):
            return [Day5Call()]
    """


@hookspec
def postloan_compliance_policies(config: Mapping) -> Iterable["CompliancePolicy"]:
    """Return the compliance policies this plugin provides.

    Called once, when a pipeline is built. Which policies check which actions is
    configuration: ``[compliance.sets]`` lists policies by name, in order, and
    ``[[compliance.apply]]`` picks a set per country, region or product. Results from all
    plugins are concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_compliance_policies(config):
            dates = config.get("plugin", {}).get("holidays", {}).get("dates", [])
            return [HolidayPolicy(dates)]
    """


@hookspec
def postloan_valuation_methods(config: Mapping) -> Iterable["ValuationMethod"]:
    """Return the vehicle valuation methods this plugin provides.

    Called once, when a pipeline is built. ``[pipeline] valuation`` names the method that
    values the cars of accounts heading for repossession or disposal (default ``rv_model``,
    the residual-value model; ``depreciation_curve`` is the other built-in). Results are
    concatenated; duplicate names are an error.

    Example::

        @kernel.hookimpl
        def postloan_valuation_methods(config):
            return [FixedShareOfInvoice(0.5)]
    """


@hookspec
def postloan_disposal_channels(config: Mapping) -> Iterable["DisposalChannel"]:
    """Return disposal channels (auction platforms, dealers, leasing companies, dismantlers).

    Called once, when a pipeline is built. The disposal-channel selector considers every
    channel from every plugin and picks, per car, the one with the highest expected net
    proceeds. Results are concatenated; duplicate names are an error. A channel checks its
    own fields when it is made (:attr:`DisposalChannel.RANGES`): a bad one fails the hook,
    naming the plugin, channel and field.

    Example::

        @kernel.hookimpl
        def postloan_disposal_channels(config):
            return [DisposalChannel(name="my_auction", kind="AUCTION", price_factor=0.93,
                                    success_rate=0.8, fee_rate=0.04, fee_fixed=500,
                                    transport_cost=1200, expected_days=20)]
    """


#: hook name -> the component base class its results must be instances of

#: hook name -> the component base class its results must be instances of
HOOKS: dict[str, type] = {
    "postloan_connectors": Connector,
    "postloan_collection_strategies": CollectionStrategy,
    "postloan_strategy_steps": StrategyStep,
    "postloan_compliance_policies": CompliancePolicy,
    "postloan_valuation_methods": ValuationMethod,
    "postloan_disposal_channels": DisposalChannel,
}
