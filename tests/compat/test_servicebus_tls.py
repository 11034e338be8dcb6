"""Service Bus over TLS (`amqps`): with `--tls-cert` and `--tls-key`, Lapis serves
AMQP over TLS on a second port, and the SDK in its default TLS mode (no
`UseDevelopmentEmulator`) sends and receives through it, verifying the server's
certificate; a client that does not trust the certificate is refused.

The Python SDK always dials port 5671 for TLS (a custom endpoint address
switches it to WebSockets), so this module binds the real default port rather
than a free one; everything that needs it is one test, so that only one test
process holds it at a time."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import ServiceBusError

from lapis_harness import LapisServer
from sb_support import KEY, KEY_NAME

pytestmark = pytest.mark.timeout(120)

AMQPS_PORT = 5671

CONFIG = {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "secure", "Properties": {}}]}]}}


def self_signed(directory):
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tmp_path):
    base = tmp_path
    cert, key = self_signed(base)
    config = base / "config.json"
    config.write_text(json.dumps(CONFIG))
    port = AMQPS_PORT
    probe = socket.socket()
    # As the server binds: a port in TIME_WAIT from a previous run is fine.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        pytest.skip(f"port {port} is in use on this machine; the SDK's TLS mode can use no other")
    finally:
        probe.close()
    data = base / "data"
    data.mkdir()
    server = LapisServer(
        data_dir=data,
        amqp=True,
        config=config,
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key), "--amqps-port", str(port)],
    ).start()
    server.amqps_port = port
    server.cert = cert
    yield server
    server.close()


def tls_client(server, verify) -> ServiceBusClient:
    conn = f"Endpoint=sb://localhost/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}"
    return ServiceBusClient.from_connection_string(conn, connection_verify=verify, retry_total=0)


def sdk_round_trip(c: ServiceBusClient, text: str) -> None:
    with c.get_queue_sender("secure") as s:
        s.send_messages(ServiceBusMessage(text), timeout=20)
    with c.get_queue_receiver("secure", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
        got = r.receive_messages(max_message_count=1, max_wait_time=5)
        assert [str(m) for m in got] == [text]


def test_the_tls_endpoint(tls_server):
    # The SDK in its TLS mode, trusting the server's certificate.
    trusting = tls_client(tls_server, str(tls_server.cert))
    try:
        sdk_round_trip(trusting, "over tls")
    finally:
        trusting.close()

    # A client that does not trust the certificate is refused.
    untrusting = tls_client(tls_server, None)
    try:
        with pytest.raises(ServiceBusError):
            with untrusting.get_queue_sender("secure") as s:
                s.send_messages(ServiceBusMessage("untrusted"), timeout=10)
    finally:
        untrusting.close()

    # Plain AMQP on the TLS port gets no AMQP answer.
    with socket.create_connection(("127.0.0.1", tls_server.amqps_port), timeout=10) as raw:
        raw.settimeout(10)
        raw.sendall(b"AMQP\x00\x01\x00\x00")
        assert not raw.recv(8).startswith(b"AMQP"), "the TLS port speaks only TLS"

    # The plain port goes on working beside it.
    conn = f"Endpoint=sb://localhost:{tls_server.amqp_port};SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY};UseDevelopmentEmulator=true;"
    plain = ServiceBusClient.from_connection_string(conn, retry_total=0)
    try:
        sdk_round_trip(plain, "plain")
    finally:
        plain.close()


def test_missing_key_file_refuses_to_start(tmp_path):
    cert, _ = self_signed(tmp_path)
    server = LapisServer(data_dir=None, amqp=True, extra_args=["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem")])
    with pytest.raises(Exception):
        server.start(timeout=10)
    server.close()
    assert "nope.pem" in server.log_tail(20)
