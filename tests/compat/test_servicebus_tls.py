"""Service Bus over TLS (`amqps`): with `--tls-cert` and `--tls-key`, Lapis serves
AMQP over TLS on a second port, and the SDK in its default TLS mode (no
`UseDevelopmentEmulator`) sends and receives through it, verifying the server's
certificate; a client that does not trust the certificate is refused.

The Python SDK always dials port 5671 for TLS (a custom endpoint address
switches it to WebSockets), so this module binds the real default port rather
than a free one; its tests share one xdist group so that only one worker holds
it."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import ServiceBusError

from lapis_harness import LapisServer
from sb_support import KEY, KEY_NAME

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("amqps-5671")]

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


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("servicebus-tls")
    cert, key = self_signed(base)
    config = base / "config.json"
    config.write_text(json.dumps(CONFIG))
    port = AMQPS_PORT
    probe = socket.socket()
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


def test_the_sdk_sends_and_receives_over_tls(tls_server):
    c = tls_client(tls_server, str(tls_server.cert))
    try:
        with c.get_queue_sender("secure") as s:
            s.send_messages(ServiceBusMessage("over tls"), timeout=20)
        with c.get_queue_receiver("secure", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            got = r.receive_messages(max_message_count=1, max_wait_time=5)
            assert [str(m) for m in got] == ["over tls"]
    finally:
        c.close()


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server):
    c = tls_client(tls_server, None)
    try:
        with pytest.raises(ServiceBusError):
            with c.get_queue_sender("secure") as s:
                s.send_messages(ServiceBusMessage("untrusted"), timeout=10)
    finally:
        c.close()


def test_plain_amqp_on_the_tls_port_gets_no_amqp(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.amqps_port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(b"AMQP\x00\x01\x00\x00")
        answer = s.recv(8)
        assert not answer.startswith(b"AMQP"), "the TLS port speaks only TLS"


def test_the_plain_port_still_works(tls_server):
    conn = f"Endpoint=sb://localhost:{tls_server.amqp_port};SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY};UseDevelopmentEmulator=true;"
    c = ServiceBusClient.from_connection_string(conn, retry_total=0)
    try:
        with c.get_queue_sender("secure") as s:
            s.send_messages(ServiceBusMessage("plain"), timeout=20)
        with c.get_queue_receiver("secure", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            assert [str(m) for m in r.receive_messages(max_message_count=1, max_wait_time=5)] == ["plain"]
    finally:
        c.close()


def test_missing_key_file_refuses_to_start(tmp_path):
    cert, _ = self_signed(tmp_path)
    server = LapisServer(data_dir=None, amqp=True, extra_args=["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem")])
    with pytest.raises(Exception):
        server.start(timeout=10)
    server.close()
    assert "nope.pem" in server.log_tail(20)
