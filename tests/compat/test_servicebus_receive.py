"""Service Bus over AMQP: receiving and settling, through the official
`azure-servicebus` SDK, as a user's code does it — peek-lock with complete,
abandon, dead-letter and defer; receive-and-delete; the dead-letter sub-queue;
the maximum delivery count; every message property round-tripping; and a topic
whose subscriptions filter with SQL and correlation rules."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue

from sb_support import active_count, queue_info, sb_client, send_all, wait_count

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    {"Name": "work", "Properties": {"MaxDeliveryCount": 10}},
                    {"Name": "poison", "Properties": {"MaxDeliveryCount": 2}},
                ],
                "Topics": [
                    {
                        "Name": "events",
                        "Properties": {},
                        "Subscriptions": [
                            {"Name": "all", "Properties": {}},
                            {
                                "Name": "red",
                                "Properties": {},
                                "Rules": [
                                    {
                                        "Name": "reds",
                                        "Properties": {
                                            "FilterType": "Sql",
                                            "SqlFilter": {"SqlExpression": "color = 'red' AND sys.Label LIKE 'order%'"},
                                            "Action": {"SqlExpression": "SET tier = 'gold'"},
                                        },
                                    }
                                ],
                            },
                            {
                                "Name": "eu",
                                "Properties": {},
                                "Rules": [
                                    {
                                        "Name": "eu-only",
                                        "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Properties": {"region": "eu"}}},
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        ]
    }
}

WAIT_S = 5


def drain(client, queue: str, **kw) -> None:
    """Empties `queue` (receive-and-delete) so a test starts from nothing."""
    with client.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, **kw) as r:
        while r.receive_messages(max_message_count=50, max_wait_time=1):
            pass


def test_peek_lock_receive_then_complete(sb, client):
    drain(client, "work")
    send_all(client, "work", ServiceBusMessage("one"), ServiceBusMessage("two"))
    with client.get_queue_receiver("work") as r:
        got = r.receive_messages(max_message_count=2, max_wait_time=WAIT_S)
        assert [str(m) for m in got] == ["one", "two"]
        assert got[0].sequence_number < got[1].sequence_number
        assert [m.delivery_count for m in got] == [0, 0]
        assert all(isinstance(m.lock_token, uuid.UUID) for m in got)
        assert all(m.locked_until_utc > dt.datetime.now(dt.timezone.utc) for m in got)
        assert got[0].enqueued_time_utc is not None
        for m in got:
            r.complete_message(m)
    wait_count(sb, "work", 0)


def test_abandon_redelivers_with_a_higher_delivery_count(sb, client):
    drain(client, "work")
    send_all(client, "work", ServiceBusMessage("again"))
    with client.get_queue_receiver("work") as r:
        first = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.abandon_message(first)
        second = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        assert (str(second), second.sequence_number, second.delivery_count) == ("again", first.sequence_number, 1)
        assert second.lock_token != first.lock_token
        r.complete_message(second)


def test_dead_letter_with_reason_then_read_the_dead_letter_queue(sb, client):
    drain(client, "work")
    drain(client, "work", sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    send_all(client, "work", ServiceBusMessage("bad order"))
    with client.get_queue_receiver("work") as r:
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.dead_letter_message(m, reason="InvalidTotal", error_description="total is negative")
    assert queue_info(sb, "work")["DeadLetterMessageCount"] == 1
    with client.get_queue_receiver("work", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        dead = dlq.receive_messages(max_message_count=5, max_wait_time=WAIT_S)
        assert [(str(d), d.dead_letter_reason, d.dead_letter_error_description) for d in dead] == [("bad order", "InvalidTotal", "total is negative")]
        dlq.complete_message(dead[0])
    assert queue_info(sb, "work")["DeadLetterMessageCount"] == 0


def test_max_delivery_count_moves_a_poison_message_to_the_dead_letter_queue(sb, client):
    drain(client, "poison")
    send_all(client, "poison", ServiceBusMessage("poison"))
    with client.get_queue_receiver("poison") as r:
        for _ in range(2):
            m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
            r.abandon_message(m)
        assert r.receive_messages(max_message_count=1, max_wait_time=1) == []
    with client.get_queue_receiver("poison", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        dead = dlq.receive_messages(max_message_count=1, max_wait_time=WAIT_S)
        assert [(str(d), d.dead_letter_reason) for d in dead] == [("poison", "MaxDeliveryCountExceeded")]
        dlq.complete_message(dead[0])


def test_receive_and_delete_takes_messages_for_good(sb, client):
    drain(client, "work")
    send_all(client, "work", ServiceBusMessage("gone"))
    with client.get_queue_receiver("work", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
        got = r.receive_messages(max_message_count=5, max_wait_time=WAIT_S)
        assert [str(m) for m in got] == ["gone"]
    assert active_count(sb, "work") == 0


def test_every_property_round_trips(sb, client):
    drain(client, "work")
    sent = ServiceBusMessage(
        b"\x00binary\xff",
        message_id="msg-1",
        correlation_id="corr-1",
        subject="order.created",
        content_type="application/octet-stream",
        to="billing",
        reply_to="replies",
        time_to_live=dt.timedelta(minutes=5),
        application_properties={"s": "text", "i": 42, "neg": -7, "f": 1.5, "b": True},
    )
    send_all(client, "work", sent)
    with client.get_queue_receiver("work") as r:
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        assert b"".join(m.body) == b"\x00binary\xff"
        assert (m.message_id, m.correlation_id, m.subject, m.content_type, m.to, m.reply_to) == (
            "msg-1", "corr-1", "order.created", "application/octet-stream", "billing", "replies",
        )
        assert m.time_to_live == dt.timedelta(minutes=5)
        props = {k.decode() if isinstance(k, bytes) else k: v for k, v in m.application_properties.items()}
        props = {k: v.decode() if isinstance(v, bytes) else v for k, v in props.items()}
        assert props == {"s": "text", "i": 42, "neg": -7, "f": 1.5, "b": True}
        r.complete_message(m)


def test_a_topic_delivers_to_the_subscriptions_whose_rules_match(sb, client):
    def message(body, color, region):
        return ServiceBusMessage(body, subject="order.created", application_properties={"color": color, "region": region})

    with client.get_topic_sender("events") as s:
        s.send_messages([message("red-eu", "red", "eu"), message("blue-us", "blue", "us")], timeout=20)

    def take(subscription):
        with client.get_subscription_receiver("events", subscription) as r:
            got = r.receive_messages(max_message_count=10, max_wait_time=WAIT_S)
            for m in got:
                r.complete_message(m)
            return got

    assert sorted(str(m) for m in take("all")) == ["blue-us", "red-eu"]
    red = take("red")
    assert [str(m) for m in red] == ["red-eu"]
    tier = {(k.decode() if isinstance(k, bytes) else k): v for k, v in red[0].application_properties.items()}.get("tier")
    assert tier in ("gold", b"gold"), "the rule's action set tier"
    assert [str(m) for m in take("eu")] == ["red-eu"]


def test_peek_shows_active_and_scheduled_messages_without_locking(sb, client):
    drain(client, "work")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    with client.get_queue_sender("work") as s:
        s.send_messages(ServiceBusMessage("now"), timeout=20)
        scheduled = s.schedule_messages(ServiceBusMessage("later"), later, timeout=20)
    with client.get_queue_receiver("work") as r:
        peeked = r.peek_messages(max_message_count=10)
        assert [(str(m), m.state.name) for m in peeked] == [("now", "ACTIVE"), ("later", "SCHEDULED")]
        assert peeked[1].sequence_number == scheduled[0]
        got = r.receive_messages(max_message_count=10, max_wait_time=2)
        assert [str(m) for m in got] == ["now"], "a scheduled message is not received before its time"
        r.complete_message(got[0])
    with client.get_queue_sender("work") as s:
        s.cancel_scheduled_messages(scheduled, timeout=20)
    with client.get_queue_receiver("work") as r:
        assert r.peek_messages(max_message_count=10) == []


def test_renew_lock_extends_it(sb, client):
    drain(client, "work")
    send_all(client, "work", ServiceBusMessage("long job"))
    with client.get_queue_receiver("work") as r:
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        before = m.locked_until_utc
        import time

        time.sleep(1.1)
        after = r.renew_message_lock(m)
        assert after > before and m.locked_until_utc == after
        r.complete_message(m)


def test_deferred_messages_are_received_by_sequence_number(sb, client):
    from azure.servicebus.exceptions import MessageNotFoundError

    drain(client, "work")
    send_all(client, "work", ServiceBusMessage("later please"), ServiceBusMessage("next"))
    with client.get_queue_receiver("work") as r:
        first = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.defer_message(first)
        rest = r.receive_messages(max_message_count=5, max_wait_time=2)
        assert [str(m) for m in rest] == ["next"], "a deferred message is not received normally"
        r.complete_message(rest[0])
        deferred = r.receive_deferred_messages([first.sequence_number])
        assert [(str(m), m.state.name) for m in deferred] == [("later please", "DEFERRED")]
        r.complete_message(deferred[0])
        with pytest.raises(MessageNotFoundError):
            r.receive_deferred_messages([first.sequence_number])
    assert active_count(sb, "work") == 0


def test_prefetch_receives_everything_in_order(sb, client):
    drain(client, "work")
    send_all(client, "work", *[ServiceBusMessage(f"m{i:02d}") for i in range(30)])
    with client.get_queue_receiver("work", prefetch_count=20) as r:
        got = []
        while len(got) < 30:
            # Ask for no more than is left: with prefetch the SDK waits out max_wait_time
            # for a batch it cannot fill.
            batch = r.receive_messages(max_message_count=min(7, 30 - len(got)), max_wait_time=WAIT_S)
            assert batch, f"stopped after {len(got)} messages"
            for m in batch:
                r.complete_message(m)
            got += [str(m) for m in batch]
        assert got == [f"m{i:02d}" for i in range(30)]
    assert active_count(sb, "work") == 0
