"""Service Bus over AMQP 1.0, first milestone: SENDING, through the official
`azure-servicebus` SDK (pinned in requirements.txt; pure-Python pyamqp
transport, no uamqp).

The server runs with `--amqp-port` on a free port and a `--config` file that
declares the queues (the Service Bus emulator's `UserConfig` section). Every
outcome is checked the way a user would see it: the SDK call returns or raises,
and the message count comes from the admin API on the HTTP port
(`GET /admin/servicebus/queues/Q` with a Service Bus SAS token).

Tests share one server per module (per xdist worker) and the queues in it, so
counts are checked as differences from the count before the test.

Exceptions asserted, from reading the SDK (7.15.0):
- a send rejected with `amqp:link:message-size-exceeded`: pyamqp
  `SendClient._on_send_complete` raises `MessageSendFailed(LinkMessageSizeExceeded)`,
  `PyamqpTransport.send_messages` maps it through `_ERROR_CODE_TO_ERROR_MAPPING`
  to `MessageSizeExceededError`;
- an entity that does not exist: Azure answers the CBS put-token for it with
  404 "The messaging entity '…' could not be found." (it checks the token first,
  then the entity), which this SDK raises as `TokenAuthFailure` and maps to
  `ServiceBusAuthenticationError` carrying the 404 and the description (the .NET
  SDK calls the same answer `MessagingEntityNotFound`);
- a CBS put-token answered with status 401: `CBSAuthenticator.handle_token`
  raises `TokenAuthFailure` (an `AuthenticationException`, keeping the status
  code), mapped to `ServiceBusAuthenticationError` with it as `inner_exception`.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.amqp import AmqpAnnotatedMessage
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    ServiceBusAuthenticationError,
)

from lapis_harness import LapisServer
from sb_support import (
    assert_entity_not_found,
    active_count,
    assert_count_stays,
    queue_info,
    queue_sender,
    sb_client,
    send,
    start_server,
    wait_count,
)

# A broken endpoint should fail a test, not hang it for pytest.ini's 300 s.
pytestmark = pytest.mark.timeout(120)

NAMESPACE = "sbemulatorns"

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": NAMESPACE,
                "Queues": [
                    {"Name": "orders", "Properties": {}},
                    {
                        "Name": "dedup",
                        "Properties": {
                            "RequiresDuplicateDetection": True,
                            "DuplicateDetectionHistoryTimeWindow": "PT1M",
                        },
                    },
                    {"Name": "small", "Properties": {"MaxMessageSizeInKilobytes": 1}},
                ],
                "Topics": [],
            }
        ]
    }
}

# --------------------------------------------------------------------------- fixtures
# --------------------------------------------------------------------------- tests
def test_config_declares_the_queues(sb):
    """Not AMQP, but everything below depends on it: the config file's queues
    exist at start with their properties."""
    for name in ("orders", "dedup", "small"):
        info = queue_info(sb, name)
        assert info["Name"] == name
        assert info["DeadLetterMessageCount"] == 0
    assert queue_info(sb, "dedup")["Properties"]["RequiresDuplicateDetection"] is True
    assert queue_info(sb, "small")["Properties"]["MaxMessageSizeInKilobytes"] == 1


def test_send_one_message(sb, client):
    before = active_count(sb, "orders")
    with queue_sender(client, "orders") as sender:
        send(sender, ServiceBusMessage("hello lapis"))
    wait_count(sb, "orders", before + 1)


def test_send_batch_and_list(sb, client):
    before = active_count(sb, "orders")
    with queue_sender(client, "orders") as sender:
        batch = sender.create_message_batch()  # opens the link to learn the size limit
        for i in range(3):
            batch.add_message(ServiceBusMessage(f"batched {i}"))
        assert len(batch) == 3
        send(sender, batch)
        wait_count(sb, "orders", before + 3)

        send(sender, [ServiceBusMessage("listed 0"), ServiceBusMessage(b"listed 1")])
        wait_count(sb, "orders", before + 5)


def test_send_message_with_all_properties(sb, client):
    before = active_count(sb, "orders")
    message = ServiceBusMessage(
        b"\x00\x01binary body\xff",
        message_id=f"all-props-{uuid.uuid4()}",
        correlation_id="corr-123",
        subject="order.created",
        content_type="application/octet-stream",
        to="somewhere",
        reply_to="replies",
        time_to_live=dt.timedelta(minutes=10),
        application_properties={
            "text": "value",
            "int": 42,
            "negative": -7,
            "float": 3.25,
            "flag_true": True,
            "flag_false": False,
        },
    )
    with queue_sender(client, "orders") as sender:
        send(sender, message)
    wait_count(sb, "orders", before + 1)


def test_send_other_body_kinds(sb, client):
    """amqp-value and amqp-sequence bodies, a str body and an empty body are
    stored like data bodies."""
    before = active_count(sb, "orders")
    messages = [
        AmqpAnnotatedMessage(value_body={"order": 17, "items": ["a", "b"]}),
        AmqpAnnotatedMessage(sequence_body=[[1, 2, 3]]),
        ServiceBusMessage("unicode body: żółw ✓"),
        ServiceBusMessage(b""),
    ]
    with queue_sender(client, "orders") as sender:
        for i, m in enumerate(messages, 1):
            send(sender, m)
            wait_count(sb, "orders", before + i)


def test_send_large_message_over_several_frames(sb, client):
    """200 KiB, under the default 256 KiB limit: fine. Larger than a small
    max-frame-size, so it may arrive as a multi-frame transfer."""
    before = active_count(sb, "orders")
    body = bytes(range(256)) * (200 * 4)
    with queue_sender(client, "orders") as sender:
        send(sender, ServiceBusMessage(body))
    wait_count(sb, "orders", before + 1)


def test_duplicate_detection(sb, client):
    before = active_count(sb, "dedup")
    first_id = f"dup-{uuid.uuid4()}"
    with queue_sender(client, "dedup") as sender:
        send(sender, ServiceBusMessage("first", message_id=first_id))
        wait_count(sb, "dedup", before + 1)
        # Azure accepts the duplicate and drops it: no error for the sender.
        send(sender, ServiceBusMessage("second, same id", message_id=first_id))
        assert_count_stays(sb, "dedup", before + 1)
        send(sender, ServiceBusMessage("third, new id", message_id=f"dup-{uuid.uuid4()}"))
        wait_count(sb, "dedup", before + 2)


def test_message_over_entity_size_limit_is_rejected(sb, client):
    before = active_count(sb, "small")
    assert before == 0
    with queue_sender(client, "small") as sender:
        with pytest.raises(MessageSizeExceededError) as ei:
            send(sender, ServiceBusMessage(b"x" * 2048))
        print(f"SDK raised: {ei.value!r}")
        # From the server's rejection, not a client-side check.
        assert "amqp:link:message-size-exceeded" in str(ei.value), repr(ei.value)
        assert_count_stays(sb, "small", before)
        # The entity (and the server) still take messages that fit.
        send(sender, ServiceBusMessage(b"y" * 100))
        wait_count(sb, "small", before + 1)


def test_send_to_unknown_queue(sb, client):
    with queue_sender(client, "nope") as sender:
        with pytest.raises(ServiceBusAuthenticationError) as ei:
            send(sender, ServiceBusMessage("lost"))
        assert_entity_not_found(ei.value, "nope")
    # still serving
    before = active_count(sb, "orders")
    with queue_sender(client, "orders") as sender:
        send(sender, ServiceBusMessage("after not-found"))
    wait_count(sb, "orders", before + 1)


def test_wrong_key_is_an_authentication_error(sb):
    before = active_count(sb, "orders")
    bad = sb_client(sb, key="WRONG")
    try:
        with queue_sender(bad, "orders") as sender:
            with pytest.raises(ServiceBusAuthenticationError) as ei:
                send(sender, ServiceBusMessage("should not land"))
            inner = ei.value.inner_exception
            print(f"SDK raised: {ei.value!r} from {inner!r}")
            # pyamqp's TokenAuthFailure carries the put-token reply's status-code.
            assert getattr(inner, "status_code", None) == 401, f"{ei.value!r} from {inner!r}"
    finally:
        bad.close()
    assert_count_stays(sb, "orders", before)


def test_send_after_restart_and_messages_survive(tmp_path):
    """SIGTERM with a sender still connected, restart on the same data dir and
    ports: what was acknowledged is still there and sending works again."""
    server = start_server(tmp_path, CONFIG)
    try:
        client = sb_client(server)
        old = client.get_queue_sender("orders")
        try:
            send(old, ServiceBusMessage("before restart 1"))
            send(old, ServiceBusMessage("before restart 2"))
            wait_count(server, "orders", 2)

            rc = server.stop()
            assert rc == 0, f"SIGTERM with an open AMQP connection should exit 0, got {rc}\n{server.log_tail()}"
            server.start()
            wait_count(server, "orders", 2)

            with queue_sender(client, "orders") as sender:
                send(sender, ServiceBusMessage("after restart"))
            wait_count(server, "orders", 3)
        finally:
            try:
                old.close()
            except Exception:  # its connection died with the first server process
                pass
            client.close()
    finally:
        server.close()
