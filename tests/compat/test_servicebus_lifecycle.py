"""Service Bus message life cycle through the official `azure-servicebus` SDK:
auto-forwarding between entities, dead-letter forwarding, expiry dead-lettered
with `TTLExpiredException`, lock expiry redelivering with a higher delivery
count, `MaxDeliveryCountExceeded`, and tokens that expire or are wrong."""

from __future__ import annotations

import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from sb_support import CLIENT_KWARGS, KEY_NAME, active_count, assert_entity_not_found, sas_token, sb_client, send_all, wait_count

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    # Declared before its target: Lapis resolves forwarding after every entity exists.
                    {"Name": "intake", "Properties": {"ForwardTo": "processing"}},
                    {"Name": "processing", "Properties": {}},
                    {"Name": "graveyard", "Properties": {}},
                    {"Name": "fragile", "Properties": {"MaxDeliveryCount": 2, "ForwardDeadLetteredMessagesTo": "graveyard"}},
                    {"Name": "perishable", "Properties": {"DefaultMessageTimeToLive": "PT2S", "DeadLetteringOnMessageExpiration": True}},
                    {"Name": "quick", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 2}},
                ],
                "Topics": [
                    {
                        "Name": "uploads",
                        "Properties": {},
                        "Subscriptions": [{"Name": "to-processing", "Properties": {"ForwardTo": "processing"}}],
                    }
                ],
            }
        ]
    }
}

WAIT_S = 5


def take_all(client, queue: str, sub_queue=None, expect: int = 1) -> list:
    got = []
    with client.get_queue_receiver(queue, sub_queue=sub_queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
        deadline = time.monotonic() + WAIT_S
        while len(got) < expect and time.monotonic() < deadline:
            got += r.receive_messages(max_message_count=expect - len(got), max_wait_time=1)
    return got


def test_a_forwarding_queue_hands_messages_to_its_target(sb, client):
    send_all(client, "intake", ServiceBusMessage("track 1", application_properties={"kind": "upload"}))
    got = take_all(client, "processing")
    assert [str(m) for m in got] == ["track 1"]
    assert got[0].application_properties[b"kind"] == b"upload"
    assert active_count(sb, "intake") == 0


def test_a_subscription_forwards_to_a_queue(sb, client):
    with client.get_topic_sender("uploads") as s:
        s.send_messages(ServiceBusMessage("track 2"), timeout=20)
    assert [str(m) for m in take_all(client, "processing")] == ["track 2"]


def test_dead_letters_are_forwarded_with_their_reason(sb, client):
    send_all(client, "fragile", ServiceBusMessage("bad upload"))
    with client.get_queue_receiver("fragile") as r:
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.dead_letter_message(m, reason="BadAudio", error_description="not an mp3")
    got = take_all(client, "graveyard")
    assert [str(m) for m in got] == ["bad upload"]
    assert got[0].application_properties[b"DeadLetterReason"] == b"BadAudio"
    assert take_all(client, "fragile", sub_queue=ServiceBusSubQueue.DEAD_LETTER, expect=1) == [], "nothing stays behind"


def test_max_delivery_count_dead_letters_and_forwards(sb, client):
    send_all(client, "fragile", ServiceBusMessage("poison"))
    with client.get_queue_receiver("fragile") as r:
        for _ in range(2):
            m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
            r.abandon_message(m)
    got = take_all(client, "graveyard")
    assert [str(m) for m in got] == ["poison"]
    assert got[0].application_properties[b"DeadLetterReason"] == b"MaxDeliveryCountExceeded"


def test_expired_messages_are_dead_lettered(sb, client):
    send_all(client, "perishable", ServiceBusMessage("stale"))
    time.sleep(2.5)
    with client.get_queue_receiver("perishable") as r:
        assert r.receive_messages(max_message_count=1, max_wait_time=1) == []
    dead = take_all(client, "perishable", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    assert [str(m) for m in dead] == ["stale"]
    assert dead[0].dead_letter_reason == "TTLExpiredException"


def test_an_expired_lock_redelivers_with_a_higher_count(sb, client):
    send_all(client, "quick", ServiceBusMessage("slow worker"))
    with client.get_queue_receiver("quick") as r:
        first = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        assert first.delivery_count == 0
        time.sleep(5.5)
        again = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)
        assert [(str(m), m.delivery_count) for m in again] == [("slow worker", 1)]
        assert again[0].lock_token != first.lock_token
        r.complete_message(again[0])
    wait_count(sb, "quick", 0)


def token_client(sb, ttl_s: int) -> ServiceBusClient:
    token = sas_token(f"sb://localhost:{sb.amqp_port}/", ttl_s=ttl_s)
    conn = f"Endpoint=sb://localhost:{sb.amqp_port};SharedAccessSignature={token};UseDevelopmentEmulator=true;"
    return ServiceBusClient.from_connection_string(conn, **CLIENT_KWARGS)


def test_a_valid_shared_access_signature_works(sb):
    c = token_client(sb, ttl_s=600)
    try:
        send_all(c, "processing", ServiceBusMessage("signed"))
        assert [str(m) for m in take_all(c, "processing")] == ["signed"]
    finally:
        c.close()


def test_an_expired_token_is_refused(sb):
    c = token_client(sb, ttl_s=-60)
    try:
        with pytest.raises(ServiceBusAuthenticationError) as ei:
            send_all(c, "processing", ServiceBusMessage("too late"))
        # The put-token reply's status, so the server refused it (not a client-side check).
        assert getattr(ei.value.inner_exception, "status_code", None) == 401, repr(ei.value)
    finally:
        c.close()
    assert active_count(sb, "processing") == 0


# A token that lapses on a live connection: the SDK notices first (its CBS
# handler checks the expiry on every turn), so the server's own detach with
# amqp:unauthorized-access is tested below the SDK, in tests/compat/rust-amqp.


def test_a_token_for_another_entity_does_not_authorize(sb):
    token = sas_token(f"sb://localhost:{sb.amqp_port}/graveyard")
    conn = f"Endpoint=sb://localhost:{sb.amqp_port};SharedAccessSignature={token};UseDevelopmentEmulator=true;"
    c = ServiceBusClient.from_connection_string(conn, **CLIENT_KWARGS)
    try:
        with pytest.raises((ServiceBusAuthenticationError, ServiceBusAuthorizationError)):
            send_all(c, "processing", ServiceBusMessage("wrong audience"))
    finally:
        c.close()


def test_a_receiver_on_an_unknown_queue_is_not_found(sb, client):
    # Azure refuses the put-token for it with 404 (see test_servicebus.py).
    with pytest.raises(ServiceBusAuthenticationError) as ei:
        with client.get_queue_receiver("no-such-queue") as r:
            r.receive_messages(max_message_count=1, max_wait_time=1)
    assert_entity_not_found(ei.value, "no-such-queue")


def test_the_key_name_must_match(sb):
    conn = f"Endpoint=sb://localhost:{sb.amqp_port};SharedAccessKeyName=NotTheKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    c = ServiceBusClient.from_connection_string(conn, **CLIENT_KWARGS)
    try:
        with pytest.raises(ServiceBusAuthenticationError):
            send_all(c, "processing", ServiceBusMessage("wrong key name"))
    finally:
        c.close()
    assert KEY_NAME == "RootManageSharedAccessKey"
