"""TLS on the listener, with the clients users run: boto3 and the AWS CLI over HTTPS trusting a
test CA (`verify=` / `--ca-bundle`), HTTP/2 chosen by ALPN, plain HTTP refused on the TLS
port, and TLS 1.2/1.3 accepted while a TLS 1.1 (or 1.0) client is refused by the server.

The CA and the server certificate (for `localhost` and 127.0.0.1) are made here with the
`cryptography` package (scripts/install-test-deps installs it when missing).
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import LakehoseServer, unique_name
from test_smoke import aws_command, s3_config, wait_active

BUCKET = "tls"


def _write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate signed by it; returns (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lakehose test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # Traditional OpenSSL format: SEC1 `BEGIN EC PRIVATE KEY` (the Rust tests use PKCS#8).
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def tls_lakehose(tmp_path_factory: pytest.TempPathFactory):
    """A server with --tls-cert/--tls-key; its boto3 clients trust the test CA."""
    root = tmp_path_factory.mktemp("lakehose-tls")
    ca, cert, key = _write_pki(root)
    server = LakehoseServer(
        root / "data",
        root / "server.log",
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key)],
        ca_bundle=str(ca),
    ).start()
    assert server.endpoint.startswith("https://127.0.0.1:"), server.endpoint
    yield server
    code = server.stop()
    assert code == 0, f"lakehose did not stop cleanly (exit {code})\n" + server.log_tail()


def _host_port(server: LakehoseServer) -> tuple[str, int]:
    host, port = server.endpoint.removeprefix("https://").rsplit(":", 1)
    return host, int(port)


def _handshake(server: LakehoseServer, context: ssl.SSLContext) -> ssl.SSLSocket:
    host, port = _host_port(server)
    sock = socket.create_connection((host, port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost")


def _context(server: LakehoseServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca_bundle)


def test_boto3_over_https(tls_lakehose: LakehoseServer):
    client = tls_lakehose.client()
    name = unique_name("tls")
    client.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration=s3_config(
            "UNCOMPRESSED", BucketARN=f"arn:aws:s3:::{BUCKET}"
        ),
    )
    description = wait_active(client, name)
    assert description["DeliveryStreamName"] == name
    put = client.put_record(DeliveryStreamName=name, Record={"Data": b'{"over":"tls"}\n'})
    assert put["RecordId"]
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    described = client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert described["DeliveryStreamARN"].endswith(f"deliverystream/{name}")
    tls_lakehose.wait_for_records(BUCKET, name, "", lambda b: b, [b'{"over":"tls"}\n'])


def test_boto3_refuses_an_untrusted_certificate(tls_lakehose: LakehoseServer):
    # Without the CA, verification fails: the client does not silently accept the cert.
    untrusting = LakehoseServer(tls_lakehose.data_dir, tls_lakehose.log_path)
    untrusting.endpoint = tls_lakehose.endpoint
    with pytest.raises((BotoCoreError, ClientError)) as err:
        untrusting.client().list_delivery_streams()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "SSL" in str(err.value), err.value


def test_aws_cli_with_ca_bundle(tls_lakehose: LakehoseServer):
    name = unique_name("tls-cli")
    tls_lakehose.client().create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config("UNCOMPRESSED")
    )
    result = subprocess.run(
        [
            *aws_command(),
            "firehose",
            "list-delivery-streams",
            "--endpoint-url",
            tls_lakehose.endpoint,
            "--ca-bundle",
            str(tls_lakehose.ca_bundle),
            "--output",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    assert name in json.loads(result.stdout)["DeliveryStreamNames"]


def test_h2_and_http1_by_alpn(tls_lakehose: LakehoseServer):
    for offered, expected in [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]:
        context = _context(tls_lakehose)
        context.set_alpn_protocols(offered)
        with _handshake(tls_lakehose, context) as tls:
            assert tls.selected_alpn_protocol() == expected
    # A whole HTTP/1.1 request over TLS with the standard library.
    host, port = _host_port(tls_lakehose)
    conn = http.client.HTTPSConnection(host, port, context=_context(tls_lakehose), timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
    finally:
        conn.close()


def test_plain_http_is_refused(tls_lakehose: LakehoseServer):
    host, port = _host_port(tls_lakehose)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)) as err:
            conn.request("GET", "/health")
            conn.getresponse()
        assert not isinstance(err.value, TimeoutError), "the server kept the connection open"
    finally:
        conn.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_accepted(tls_lakehose: LakehoseServer, version: ssl.TLSVersion):
    context = _context(tls_lakehose)
    context.minimum_version = version
    context.maximum_version = version
    with _handshake(tls_lakehose, context) as tls:
        assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


@pytest.mark.parametrize("version", ["TLSv1_1", "TLSv1"])
def test_tls_1_1_and_older_refused(tls_lakehose: LakehoseServer, version: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=tls_lakehose.ca_bundle)
        # OpenSSL 3 only offers TLS 1.0/1.1 at security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = getattr(ssl.TLSVersion, version)
    with pytest.raises(ssl.SSLError) as err:
        with _handshake(tls_lakehose, context):
            pass
    message = str(err.value)
    # Refused by the server (an alert), not by this client declining to offer the version.
    assert "NO_PROTOCOLS_AVAILABLE" not in message, message
    assert "PROTOCOL_VERSION" in message.upper() or "HANDSHAKE_FAILURE" in message.upper(), message
