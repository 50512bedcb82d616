"""The gRPC decision service (API ``postloan.v1``, protos in ``protos/``).

A thin shell over the kernel and the pipeline: health, reflection, TLS / mutual TLS,
bearer tokens with roles, Prometheus metrics, JSON logs without personal data, hot reload
and graceful shutdown. Start it with ``postloan serve`` or :class:`DecisionServer`; call it
with :class:`kernel.client.Client`. Guide: docs/grpc-guide.md.
"""
from __future__ import annotations

__all__ = ["DecisionServer", "ServerConfig"]


def __getattr__(name: str):
    if name in __all__:
        from . import app
        return getattr(app, name)
    raise AttributeError(f"module 'kernel.server' has no attribute {name!r}")
