"""What the Service Bus compatibility tests share: connection strings, SAS tokens
for the admin API, message counts read from it, time-bounded senders, and starting a
server with the AMQP endpoint and a Service Bus config file."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

import requests
from azure.servicebus import ServiceBusClient

from lapis_harness import LapisServer

KEY_NAME = "RootManageSharedAccessKey"
KEY = "SAS_KEY_VALUE"

# SDK knobs: no retries (the first failure is the one reported), and every send
# bounded (`timeout` covers opening the connection, CBS, the attach and the
# disposition).
CLIENT_KWARGS = dict(retry_total=0)
SEND_TIMEOUT_S = 20
COUNT_WAIT_S = 5.0


# --------------------------------------------------------------------------- helpers
def conn_str(server: LapisServer, key: str = KEY) -> str:
    return (
        f"Endpoint=sb://localhost:{server.amqp_port};SharedAccessKeyName={KEY_NAME};"
        f"SharedAccessKey={key};UseDevelopmentEmulator=true;"
    )


def sb_client(server: LapisServer, key: str = KEY) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(conn_str(server, key), **CLIENT_KWARGS)


def sas_token(resource: str, key: str = KEY, key_name: str = KEY_NAME, ttl_s: int = 3600) -> str:
    """A Service Bus shared access signature for `resource`."""
    expiry = int(time.time()) + ttl_s
    sr = urllib.parse.quote(resource, safe="")
    digest = hmac.new(key.encode(), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={key_name}"


def queue_info(server: LapisServer, queue: str) -> dict:
    url = f"{server.http_url}/admin/servicebus/queues/{urllib.parse.quote(queue, safe='')}"
    r = requests.get(url, headers={"Authorization": sas_token(url)}, timeout=10)
    assert r.status_code == 200, f"admin GET {url} answered {r.status_code}: {r.text[:500]}"
    return r.json()


def active_count(server: LapisServer, queue: str) -> int:
    return queue_info(server, queue)["ActiveMessageCount"]


def wait_count(server: LapisServer, queue: str, expected: int, timeout: float = COUNT_WAIT_S) -> None:
    """ActiveMessageCount of `queue` reaches `expected` within `timeout` and is
    still `expected` a moment later (nothing more trickles in)."""
    deadline = time.monotonic() + timeout
    seen = active_count(server, queue)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = active_count(server, queue)
    assert seen == expected, (
        f"{queue}: ActiveMessageCount is {seen}, expected {expected} (waited {timeout}s)\n"
        f"--- server log tail ---\n{server.log_tail(30)}"
    )
    time.sleep(0.3)
    again = active_count(server, queue)
    assert again == expected, f"{queue}: ActiveMessageCount moved on from {expected} to {again}"


def assert_count_stays(server: LapisServer, queue: str, expected: int, settle_s: float = 0.5) -> None:
    time.sleep(settle_s)
    seen = active_count(server, queue)
    assert seen == expected, f"{queue}: ActiveMessageCount is {seen}, expected it to stay {expected}"


def send(sender, message) -> None:
    sender.send_messages(message, timeout=SEND_TIMEOUT_S)


def send_all(client: ServiceBusClient, queue: str, *messages) -> None:
    """Sends `messages` to `queue` in one batch through a sender of its own."""
    with client.get_queue_sender(queue) as s:
        s.send_messages(list(messages), timeout=SEND_TIMEOUT_S)


@contextlib.contextmanager
def queue_sender(client: ServiceBusClient, queue: str) -> Iterator:
    """A sender that is opened by its first (time-bounded) send, not by
    `__enter__` (which waits for the link without a deadline)."""
    sender = client.get_queue_sender(queue)
    try:
        yield sender
    finally:
        sender.close()


def start_server(base: Path, config: dict) -> LapisServer:
    """A server on a fresh data directory under `base`, with the AMQP endpoint and
    `config` (the emulator's `UserConfig` document) as its config file."""
    path = base / "servicebus-config.json"
    path.write_text(json.dumps(config, indent=2))
    data = base / "data"
    data.mkdir()
    log = base / "log"
    log.mkdir()
    return LapisServer(data_dir=data, log_dir=log, amqp=True, config=path).start()


def assert_entity_not_found(error: BaseException, entity: str) -> None:
    """The SDK's error for Azure's answer to a put-token for an entity that does not
    exist: status 404 with "The messaging entity '…<entity>' could not be found."
    (kept by the SDK in its `inner_exception`, a `TokenAuthFailure`)."""
    inner = getattr(error, "inner_exception", None)
    assert getattr(inner, "status_code", None) == 404, repr(inner or error)
    text = str(inner)
    assert f"/{entity}' could not be found" in text, text
