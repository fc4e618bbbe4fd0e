"""TLS material for the relay and the TLS pipes: a CA and a server certificate signed by it.

The CA is what a client is told to trust (Home Assistant's custom-CA field, a
pipe's `--ca`); the server certificate carries the names a client connects to
(`localhost` and `127.0.0.1` by default) and the extensions Python's strict X.509
verification asks for. Validity and names are parameters, so a test can make an
expired certificate or one for another host.

Files in the directory: `ca.pem` (the CA certificate), `cert.pem` and `key.pem`
(the server's, the key readable by the owner only).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate (PEM): what clients trust
    cert: Path  # the server certificate (PEM)
    key: Path  # the server's private key (PEM)
    ca_pem: str  # the CA certificate's text (read once: event loops must not block on it)
    fingerprint: str  # SHA-256 of the server certificate (DER), hex: what a client may pin

    def server_context(self) -> ssl.SSLContext:
        """A server-side context with this certificate (loads files: not on an event loop)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    @classmethod
    def load(cls, directory: Path) -> TlsFiles | None:
        """The files `make_tls` wrote into `directory`, if it did."""
        ca, cert, key = _paths(directory)
        if not all(p.is_file() for p in (ca, cert, key)):
            return None
        return cls(ca, cert, key, ca.read_text(), _fingerprint(cert.read_bytes()))


def _paths(directory: Path) -> tuple[Path, Path, Path]:
    return directory / "ca.pem", directory / "cert.pem", directory / "key.pem"


def _fingerprint(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_tls(
    directory: Path,
    *,
    names: Sequence[str] = DEFAULT_NAMES,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    ca_name: str = "HomeSeal test CA",
) -> TlsFiles:
    """Write a fresh CA and a server certificate for `names` (DNS names or IP addresses)
    signed by it; valid from `not_before` (default an hour ago) to `not_after` (default
    a year on). The CA is valid a day longer either way and always now, so that an
    expired (or not yet valid) certificate is the server's alone, as when a relay's
    certificate was not renewed."""
    now = datetime.datetime.now(datetime.UTC)
    start = not_before or now - datetime.timedelta(hours=1)
    end = not_after or now + datetime.timedelta(days=365)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(start, now) - day)
        .not_valid_after(max(end, now) + day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = _paths(directory)
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(cert_pem)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    return TlsFiles(ca_path, cert_path, key_path, ca_path.read_text(), _fingerprint(cert_pem))
