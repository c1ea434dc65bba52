"""TLS contexts for ``HttpServer``: from files, or self-signed for local use (``--tls-self``).

Every context offers ALPN ``h2`` then ``http/1.1`` and meets RFC 9113 §9.2: TLS 1.2 or later,
no TLS compression, and (for TLS 1.2) only ephemeral key exchange with AEAD ciphers.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "TlsConfigError",
    "generate_self_signed_cert",
    "make_self_signed_context",
    "make_server_context",
]


class TlsConfigError(ValueError):
    """A certificate or key that cannot be used; the message is one line naming the file."""


def _no_password() -> bytes:
    # Without a callback, OpenSSL asks for a pass phrase on the terminal, which a server
    # started by a script cannot answer.
    raise TlsConfigError("encrypted")


ALPN_PROTOCOLS = ["h2", "http/1.1"]
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def make_server_context(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> ssl.SSLContext:
    """Build a server context from a PEM certificate chain and its private key.

    Args:
        cert_path: the certificate chain, leaf first.
        key_path: the unencrypted private key.

    Raises:
        TlsConfigError: a file cannot be read, is not PEM, the key is encrypted, or the two
            do not match; the message names the file and says which.
    """
    for role, path in (("certificate", cert_path), ("key", key_path)):
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            raise TlsConfigError(f"cannot read the TLS {role} {path}: {exc.strerror}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_ciphers(_TLS12_CIPHERS)
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except TlsConfigError:
        raise TlsConfigError(
            f"the TLS key {key_path} is encrypted: give an unencrypted key"
        ) from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            problem = f"the key {key_path} does not match the certificate {cert_path}"
        elif "PEM" in reason or reason in ("NO_START_LINE", "BAD_END_LINE"):
            problem = f"{cert_path} or {key_path} is not PEM ({reason})"
        else:
            problem = f"cannot use the certificate {cert_path} with the key {key_path} ({reason})"
        raise TlsConfigError(problem) from None
    return context


def generate_self_signed_cert(
    names: Sequence[str] = _LOCAL_NAMES, *, days: int = 30
) -> tuple[bytes, bytes]:
    """Generate a self-signed certificate and its key, both PEM.

    Args:
        names: host names and IP addresses for the subject alternative names.
        days: how long the certificate stays valid.

    Returns:
        ``(certificate_pem, private_key_pem)``; a client can trust the certificate directly.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s2kit lite (self-signed)")])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    # Backdated a little so a client whose clock lags ours does not reject it as not yet valid.
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def make_self_signed_context() -> ssl.SSLContext:
    """Build a server context with a fresh self-signed certificate for this machine.

    The certificate names ``localhost``, ``127.0.0.1`` and ``::1``. Clients must be told to
    trust it (or not to verify), so this is for local development only.
    """
    cert_pem, key_pem = generate_self_signed_cert()
    # ssl can only load a certificate from files; keep them private and short-lived.
    with tempfile.TemporaryDirectory(prefix="s2kit-tls-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        return make_server_context(cert_path, key_path)
