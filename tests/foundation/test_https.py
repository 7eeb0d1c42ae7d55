"""HTTPS by default: the certificate a unit makes, the redirect from plain HTTP, HSTS and secure cookies,
the operator's own certificate replacing it, and the join's pin on the unit's certificate."""

import datetime
import http.client
import http.cookiejar
import ipaddress
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cluster.membership import rules as membership
from cluster.models import Event
from nodes.agent.formats import tls_fingerprint
from tests.harness import HTTP_PORT, WUI_PORT, https_context
from tests.helpers import ADMIN_PASSWORD
from wui import tls

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


# --- an operator's own certificate authority, as a company's would be ------------------------------


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


class Authority:
    def __init__(self):
        self.key = _key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("Example operators' CA"))
            .issuer_name(_name("Example operators' CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, address, not_before=NOW - DAY, not_after=NOW + 10 * DAY, key=None):
        """(certificate PEM, key PEM) for address."""
        key = key or _key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(address))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key)


@pytest.fixture(scope="module")
def authority():
    return Authority()


def files(where):
    return {name: (where / name).read_bytes() for name in ("wui.pem", "wui.crt")}


# --- the certificate a unit makes, and the checks of the operator's --------------------------------


def test_a_unit_makes_its_certificate_once_for_its_addresses_and_again_when_it_becomes_the_admin(tmp_path):
    where = tmp_path / "tls"
    tls.ensure(where, ["10.0.0.5"])
    assert (where / "wui.pem").stat().st_mode & 0o777 == 0o600  # the private key
    made = tls.load(where)
    assert tls.covered_names(made) == ["10.0.0.5"]
    assert isinstance(made.public_key(), ec.EllipticCurvePublicKey) and made.public_key().curve.name == "secp256r1"
    assert made.not_valid_after_utc - made.not_valid_before_utc > datetime.timedelta(days=3649)
    kept = files(where)
    tls.ensure(where, ["10.0.0.5"])  # the next start
    assert files(where) == kept
    tls.ensure(where, ["10.0.0.5", "10.0.0.90"])  # Create New Cluster: the shared address is the unit's too
    assert tls.covered_names(tls.load(where)) == ["10.0.0.5", "10.0.0.90"]
    assert files(where) != kept


def test_the_operators_certificate_is_kept_whatever_the_units_addresses(tmp_path, authority):
    where = tmp_path / "tls"
    tls.ensure(where, ["10.0.0.5"])
    tls.replace(where, *authority.issue("10.0.0.5"))
    uploaded = files(where)
    tls.ensure(where, ["10.0.0.5", "10.0.0.90"])
    assert files(where) == uploaded
    assert tls.describe(where)["self_made"] is False


def _refusals(authority):
    certificate, key = authority.issue("10.0.0.5")
    other_certificate, _ = authority.issue("10.0.0.5")
    encrypted = serialization.load_pem_private_key(key, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase"),
    )
    return [
        ("the other certificate's", other_certificate, key, "does not belong to the certificate"),
        ("expired", *authority.issue("10.0.0.5", NOW - 10 * DAY, NOW - DAY), "The certificate expired on"),
        ("not yet valid", *authority.issue("10.0.0.5", NOW + DAY, NOW + 10 * DAY), "not valid before"),
        ("not a certificate", b"hello", key, "not a PEM certificate"),
        ("a key as the certificate", key, key, "not a PEM certificate"),
        ("not a key", certificate, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM"),
        ("a passphrase", certificate, encrypted, "protected by a passphrase"),
        ("too large", certificate + b"#" * tls.MAX_PEM_BYTES, key, "at most 64 KiB"),
        ("a short RSA key", *authority.issue("10.0.0.5", key=rsa.generate_private_key(65537, 1024)), "1024 bits"),  # noqa: S505  (the point)
    ]


def test_a_pair_that_cannot_serve_is_refused_with_the_reason_and_the_old_one_stays(tmp_path, authority):
    where = tmp_path / "tls"
    tls.ensure(where, ["10.0.0.5"])
    before = files(where)
    for case, certificate, key, reason in _refusals(authority):
        with pytest.raises(tls.Refused, match=reason):
            tls.replace(where, certificate, key)
        assert files(where) == before, case


# --- the WUI Certificate page (Certificates & Security) -------------------------------------------


def test_the_wui_certificate_page_replaces_the_certificate_and_refuses_a_mismatched_key(
    admin_client, settings, tmp_path, authority
):
    settings.NODE_HOME = str(tmp_path)
    tls.ensure(tmp_path / "tls", ["10.0.0.5"])
    url = reverse("wui_certificate")
    page = admin_client.get(url).content.decode()
    assert 'href="/certificates/wui/"' in page and "WUI Certificate" in page  # in the menu
    assert "Made by this unit on its first start" in page and tls.describe(tmp_path / "tls")["fingerprint"] in page

    certificate, _ = authority.issue("10.0.0.5")
    _, other_key = authority.issue("10.0.0.5")
    refused = admin_client.post(url, {"certificate": _upload(certificate), "key": _upload(other_key)})
    assert refused.status_code == 400
    assert "does not belong to the certificate" in refused.content.decode()
    assert "Nothing was changed" in refused.content.decode()
    assert tls.describe(tmp_path / "tls")["self_made"]

    certificate, key = authority.issue("10.0.0.5")
    done = admin_client.post(url, {"certificate": _upload(certificate), "key": _upload(key)})
    fingerprint = tls_fingerprint(x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER))
    assert done.status_code == 200
    assert f"The WUI now serves your certificate (SHA-256 {fingerprint})" in done.content.decode()
    assert "Uploaded by an operator" in done.content.decode()
    assert tls.describe(tmp_path / "tls")["fingerprint"] == fingerprint
    assert Event.objects.filter(
        message__startswith=f"WUI certificate replaced (SHA-256 {fingerprint}) by admin"
    ).exists()


def _upload(data):
    return SimpleUploadedFile("file.pem", data, content_type="application/x-pem-file")


# --- a unit's WUI served by gunicorn: HTTPS, the redirect, the replacement -------------------------


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Operator:
    """An operator's HTTP client on a unit's WUI over HTTPS, verifying what it is served against ``ca_file``."""

    def __init__(self, unit):
        self.base = unit.wui_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=https_context(unit.ca_file)),
        )

    def open(self, path, data=None, headers=None):
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Referer": self.base + path, **(headers or {})}
        )
        try:
            response = self.opener.open(request, timeout=10)
        except urllib.error.HTTPError as exc:
            response = exc
        with response:
            return response.status, response.headers, response.read().decode()

    def log_in(self):
        self.open("/login/")
        status, _, page = self.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
        assert "Log out" in page, page

    def post(self, path, form):
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        return self.open(path, urllib.parse.urlencode({**form, "csrfmiddlewaretoken": token}).encode())

    def upload(self, path, files):
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        boundary = uuid.uuid4().hex
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token}\r\n'.encode()
        for name, data in files.items():
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.pem"\r\n'
                    "Content-Type: application/x-pem-file\r\n\r\n"
                ).encode()
                + data
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        return self.open(path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def presented(address, cafile=None):
    """The certificate a new connection to the WUI presents (verified against cafile when given)."""
    if cafile:
        context = ssl.create_default_context(cafile=str(cafile))
    else:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    connection = http.client.HTTPSConnection(address, WUI_PORT, timeout=10, context=context)
    try:
        connection.connect()
        return tls_fingerprint(connection.sock.getpeercert(binary_form=True))
    finally:
        connection.close()


def test_plain_http_redirects_to_the_same_url_over_https_with_hsts_and_secure_cookies(harness):
    unit = harness.node(1)
    plain = urllib.request.build_opener(NoRedirects)
    for method, status in (("GET", 301), ("POST", 308)):
        request = urllib.request.Request(f"http://{unit.address}:{HTTP_PORT}/cluster-control/?x=1", method=method)
        with pytest.raises(urllib.error.HTTPError) as answer:
            plain.open(request, timeout=10)
        answer.value.close()
        assert answer.value.code == status
        assert answer.value.headers["Location"] == f"https://{unit.address}:{WUI_PORT}/cluster-control/?x=1"

    # The unit's certificate verifies against the harness's ca_file, for the unit's own address.
    assert presented(unit.address, cafile=unit.ca_file) == presented(unit.address, cafile=harness.ca_file)
    operator = Operator(unit)
    status, headers, _ = operator.open("/login/")
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    operator.log_in()
    cookies = {c.name: c for c in operator.jar}
    assert cookies["sessionid"].secure and cookies["csrftoken"].secure


def test_the_operators_certificate_replaces_the_units_own_from_the_next_connection(harness, authority, tmp_path):
    unit = harness.node(2)
    own = presented(unit.address, cafile=unit.ca_file)
    own_file = tmp_path / "own.pem"
    own_file.write_bytes(unit.ca_file.read_bytes())
    operator = Operator(unit)
    operator.log_in()
    ca_file = tmp_path / "operators-ca.pem"
    ca_file.write_bytes(authority.pem)
    try:
        certificate, _ = authority.issue(unit.address)
        _, other_key = authority.issue(unit.address)
        status, _, page = operator.upload("/certificates/wui/", {"certificate": certificate, "key": other_key})
        assert status == 400 and "does not belong to the certificate" in page
        assert presented(unit.address) == own  # refused: still the unit's own

        certificate, key = authority.issue(unit.address)
        status, _, page = operator.upload("/certificates/wui/", {"certificate": certificate, "key": key})
        assert status == 200, page
        # No restart: the next connection is verified by the operator's CA, and the agent reports it.
        fingerprint = presented(unit.address, cafile=ca_file)
        assert fingerprint != own and f"SHA-256 {fingerprint}" in page
        assert unit.agent("facts")["tls_fingerprint"] == fingerprint
        with pytest.raises(ssl.SSLCertVerificationError):
            presented(unit.address, cafile=own_file)
        unit.restart()  # kept across restarts
        assert presented(unit.address, cafile=ca_file) == fingerprint

        # With its chain after it (as the page invites): the agent reports the certificate served.
        operator = Operator(unit)  # who trusts the certificate the unit serves now
        operator.log_in()
        certificate, key = authority.issue(unit.address)
        status, _, page = operator.upload(
            "/certificates/wui/", {"certificate": certificate + authority.pem, "key": key}
        )
        assert status == 200, page
        assert unit.agent("facts")["tls_fingerprint"] == presented(unit.address, cafile=ca_file)
    finally:
        unit.factory_reset()  # back to a fresh unit, which makes its own certificate again


def test_the_join_refuses_a_unit_whose_certificate_is_not_the_pinned_one(harness):
    unit = harness.node(3)
    pinned = ":".join(["AB"] * 32)
    with pytest.raises(membership.Refused) as refused:
        membership.post_to_node(unit.address, {"code": "AAAA-AAAA", "check": True}, pinned=pinned)
    served = presented(unit.address, cafile=unit.ca_file)
    assert str(refused.value) == (
        f"the unit's WUI certificate changed: pinned {pinned}, presented {served}; nothing was sent to it"
    )
    # The pinned certificate gets through: the unit itself answers (it is not waiting to join).
    with pytest.raises(membership.Refused, match="not waiting to join"):
        membership.post_to_node(unit.address, {"code": "AAAA-AAAA", "check": True}, pinned=served)


def test_a_taken_plain_http_port_leaves_the_wui_serving_https_without_the_redirect(harness):
    unit = harness.node(4)
    unit.stop()
    log = unit.run / "wui.log"
    before = log.stat().st_size if log.exists() else 0
    taken = socket.create_server((unit.address, HTTP_PORT))  # say, a Virtual Service on that port
    try:
        unit.start()  # waits until the WUI answers over HTTPS
        assert presented(unit.address, cafile=unit.ca_file)
        with open(log, "rb") as f:
            f.seek(before)
            assert b"No plain-HTTP redirect on" in f.read()
    finally:
        taken.close()
        unit.factory_reset()
