"""Test certificates made at test time (nothing private is committed): a CA, a server
certificate for localhost / 127.0.0.1, and a client certificate for mutual TLS."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject_key, cn, issuer_key, issuer_name, *, ca=False, sans=(), usage=None):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path) -> dict[str, Path]:
    """Write ca.pem, server.pem/server.key, client.pem/client.key, other-ca.pem; return their paths."""
    ca_key = _key()
    ca_cert = _issue(ca_key, "postloan test CA", ca_key, _name("postloan test CA"), ca=True)
    server_key = _key()
    server_cert = _issue(server_key, "localhost", ca_key, ca_cert.subject,
                         sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                         usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client_key = _key()
    client_cert = _issue(client_key, "dialer", ca_key, ca_cert.subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_key = _key()
    other_ca = _issue(other_key, "some other CA", other_key, _name("some other CA"), ca=True)
    files = {
        "ca": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server_cert": server_cert.public_bytes(serialization.Encoding.PEM),
        "server_key": _pem_key(server_key),
        "client_cert": client_cert.public_bytes(serialization.Encoding.PEM),
        "client_key": _pem_key(client_key),
        "other_ca": other_ca.public_bytes(serialization.Encoding.PEM),
    }
    paths = {}
    for name, data in files.items():
        path = directory / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return paths
