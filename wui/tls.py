"""The certificate every Flotilla WUI serves: made on the unit's first start, replaceable by the operator's own.

A unit keeps one pair under ``<state directory>/tls/``: ``wui.pem`` (the private key and the
certificate chain, 0600: what gunicorn loads, one file so that a replacement is one atomic rename)
and ``wui.crt`` (the chain alone, public: the agent reports its fingerprint, operators download it
to trust it). ``self-made`` marks a pair the unit made itself: only that one is made again when the
unit's addresses change (Create New Cluster adds the shared address); the operator's own pair is
never touched. No Django here: gunicorn's configuration (wui/gunicorn.py) calls it before Django
starts.
"""

import contextlib
import datetime
import fcntl
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodes.agent.formats import TLS_CERTIFICATE, TLS_DIRECTORY, TLS_KEY_AND_CERTIFICATE, atomic_write, tls_fingerprint

VALIDITY_DAYS = 3650  # appliances make theirs for ten years: the operator replaces it, not the calendar
MAX_PEM_BYTES = 64 * 1024  # a certificate chain or a key is a few kilobytes
MIN_RSA_BITS = 2048
SELF_MADE = "self-made"


class Refused(Exception):
    """The uploaded pair cannot be used; the message says why, for the operator."""


def directory(environ=os.environ):
    """Where this WUI's pair lives: the unit's state directory, else the embedded state (FLOTILLA_VAR_DIR)."""
    home = environ.get("NODE_HOME")
    if home:
        return Path(home) / TLS_DIRECTORY
    base = Path(environ.get("FLOTILLA_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    return base / TLS_DIRECTORY


def served_file(where):
    """The key and certificate in one PEM file: gunicorn's --certfile."""
    return Path(where) / TLS_KEY_AND_CERTIFICATE


def certificate_file(where):
    return Path(where) / TLS_CERTIFICATE


def _address(text):
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    return None


def _names(addresses):
    """The SubjectAlternativeName entries: IP addresses as IP entries, anything else as a DNS name."""
    out = []
    for text in dict.fromkeys(str(a) for a in addresses if a):
        ip = _address(text)
        out.append(x509.IPAddress(ip) if ip else x509.DNSName(text))
    return out


def make_self_signed(addresses, now=None):
    """(key and certificate PEM, certificate PEM): EC P-256, SAN = addresses, valid VALIDITY_DAYS."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    names = _names(addresses) or [x509.DNSName("localhost")]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flotilla"),
            x509.NameAttribute(NameOID.COMMON_NAME, str(names[0].value)),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a client clock a little behind still accepts it
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + certificate_pem, certificate_pem


@contextlib.contextmanager
def _locked(where):
    """The unit's WUIs (its own and, on the admin unit, the shared one) start at once: one makes the pair."""
    where.mkdir(parents=True, exist_ok=True)
    os.chmod(where, 0o755)
    with open(where / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _install(where, served_pem, certificate_pem, self_made):
    # The served file first: the server never loads a key without its certificate or the reverse.
    atomic_write(served_file(where), served_pem, 0o600)
    atomic_write(certificate_file(where), certificate_pem, 0o644)
    marker = where / SELF_MADE
    if self_made:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def ensure(where, addresses):
    """Make the unit's own pair on its first start, or again when its own one misses one of ``addresses``.

    Returns the file to serve. An operator's pair is kept as it is, whatever the addresses.
    """
    where = Path(where)
    with _locked(where):
        served = served_file(where)
        if served.exists() and certificate_file(where).exists():
            if not (where / SELF_MADE).exists():
                return served
            wanted = {str(a) for a in addresses if a}
            if wanted <= set(covered_names(load(where))):
                return served
        served_pem, certificate_pem = make_self_signed(sorted(addresses, key=_sort_key))
        _install(where, served_pem, certificate_pem, self_made=True)
        return served


def _sort_key(text):
    ip = _address(str(text))
    return (0, ip.version, int(ip)) if ip else (1, 0, str(text))


def covered_names(certificate):
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in names.get_values_for_type(x509.IPAddress)] + names.get_values_for_type(x509.DNSName)


def load(where):
    """The certificate served now (the first of the chain)."""
    return x509.load_pem_x509_certificate(certificate_file(where).read_bytes())


def describe(where):
    """What the WUI Certificate page shows of the pair in use, or None before the first start."""
    try:
        certificate = load(where)
    except (OSError, ValueError):
        return None
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "names": covered_names(certificate),
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "fingerprint": tls_fingerprint(certificate.public_bytes(serialization.Encoding.DER)),
        "self_made": (Path(where) / SELF_MADE).exists(),
    }


def check_pair(certificate_pem, key_pem, now=None):
    """The operator's certificate (chain) and private key, checked: returns (served PEM, certificate PEM).

    Refused with the reason: not PEM, a key with a passphrase, a key that is not the certificate's,
    a certificate not valid now.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if len(certificate_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise Refused(f"A certificate or key file is at most {MAX_PEM_BYTES // 1024} KiB")
    try:
        chain = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError as exc:
        raise Refused(
            "The certificate file is not a PEM certificate (-----BEGIN CERTIFICATE-----, as openssl writes it)"
        ) from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:
        raise Refused("The private key is protected by a passphrase: upload it without one") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise Refused("The private key file is not a PEM private key (-----BEGIN PRIVATE KEY-----)") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise Refused("The private key must be an RSA, EC or Ed25519 key")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise Refused(f"The RSA key has {key.key_size} bits: at least {MIN_RSA_BITS} are needed")
    certificate = chain[0]
    der = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(serialization.Encoding.DER, der) != key.public_key().public_bytes(
        serialization.Encoding.DER, der
    ):
        raise Refused(
            "The private key does not belong to the certificate (their public keys differ): upload the key "
            "the certificate was issued for"
        )
    if certificate.not_valid_after_utc <= now:
        raise Refused(f"The certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if certificate.not_valid_before_utc > now:
        raise Refused(f"The certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_out = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_out + chain_pem, chain_pem


def replace(where, certificate_pem, key_pem, now=None):
    """Serve the operator's pair from the next connection on; a refused pair leaves the old one in place."""
    served_pem, chain_pem = check_pair(certificate_pem, key_pem, now)
    where = Path(where)
    with _locked(where):
        _install(where, served_pem, chain_pem, self_made=False)
    return describe(where)
