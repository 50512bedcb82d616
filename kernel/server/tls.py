"""TLS and mutual TLS credentials from PEM files, with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import grpc

from ..errors import PostloanError


class TLSConfigError(PostloanError):
    """A certificate or key file is missing, unreadable or not PEM."""


def read_pem(path: str | Path, what: str) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TLSConfigError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if b"-----BEGIN " not in data:
        raise TLSConfigError(f"{path}: {what} is not PEM (no '-----BEGIN' line)")
    return data


def server_credentials(cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> grpc.ServerCredentials:
    """TLS with the server's certificate chain and key; with ``client_ca``, mutual TLS:
    clients must present a certificate signed by that CA or the handshake fails."""
    chain = read_pem(cert, "TLS certificate")
    private_key = read_pem(key, "TLS private key")
    if b"PRIVATE KEY" not in private_key:
        raise TLSConfigError(f"{key}: no PRIVATE KEY block (is it the certificate?)")
    roots = read_pem(client_ca, "client CA certificate") if client_ca else None
    return grpc.ssl_server_credentials([(private_key, chain)], root_certificates=roots,
                                       require_client_auth=roots is not None)


def channel_credentials(ca: str | Path | bytes | None = None, cert: str | Path | bytes | None = None,
                        key: str | Path | bytes | None = None) -> grpc.ChannelCredentials:
    """Client side: trust ``ca`` (default: the system roots); present ``cert``/``key`` for mutual TLS."""
    def load(value, what):
        if value is None or isinstance(value, bytes):
            return value
        return read_pem(value, what)

    if (cert is None) != (key is None):
        raise TLSConfigError("mutual TLS needs both a client certificate and its key")
    return grpc.ssl_channel_credentials(root_certificates=load(ca, "CA certificate"),
                                        private_key=load(key, "client private key"),
                                        certificate_chain=load(cert, "client certificate"))
