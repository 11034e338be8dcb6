"""Service Bus through the asynchronous client of `azure-servicebus`
(`azure.servicebus.aio`), as an asyncio application uses it: concurrent senders,
a receiver settling every way, a session, a topic, scheduling and peeking."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import ServiceBusAuthenticationError, SessionCannotBeLockedError

from sb_support import CLIENT_KWARGS, assert_entity_not_found, conn_str

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    {"Name": "jobs", "Properties": {"MaxDeliveryCount": 10}},
                    {"Name": "chat", "Properties": {"RequiresSession": True}},
                ],
                "Topics": [
                    {
                        "Name": "plays",
                        "Properties": {},
                        "Subscriptions": [
                            {"Name": "all", "Properties": {}},
                            {
                                "Name": "long",
                                "Properties": {},
                                "Rules": [{"Name": "long", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "seconds > 60"}}}],
                            },
                        ],
                    }
                ],
            }
        ]
    }
}

WAIT_S = 5


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=90))


def client(sb) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(conn_str(sb), **CLIENT_KWARGS)


async def receive(receiver, n: int) -> list:
    got = []
    for _ in range(20):
        if len(got) >= n:
            break
        got += await receiver.receive_messages(max_message_count=n - len(got), max_wait_time=WAIT_S)
    return got


def test_concurrent_senders_and_one_receiver(sb):
    async def scenario():
        async with client(sb) as c:

            async def produce(worker: int):
                async with c.get_queue_sender("jobs") as s:
                    for i in range(10):
                        await s.send_messages(ServiceBusMessage(f"{worker}-{i}"), timeout=20)

            await asyncio.gather(*(produce(w) for w in range(4)))
            async with c.get_queue_receiver("jobs") as r:
                got = await receive(r, 40)
                for m in got:
                    await r.complete_message(m)
                assert sorted(str(m) for m in got) == sorted(f"{w}-{i}" for w in range(4) for i in range(10))
                for w in range(4):
                    mine = [str(m) for m in got if str(m).startswith(f"{w}-")]
                    assert mine == [f"{w}-{i}" for i in range(10)], "one sender's messages keep their order"

    run(scenario())


def test_settling_every_way(sb):
    async def scenario():
        async with client(sb) as c:
            async with c.get_queue_sender("jobs") as s:
                await s.send_messages([ServiceBusMessage(x) for x in ("abandon", "defer", "dead", "done")], timeout=20)
            async with c.get_queue_receiver("jobs") as r:
                got = {str(m): m for m in await receive(r, 4)}
                await r.abandon_message(got["abandon"])
                await r.defer_message(got["defer"])
                await r.dead_letter_message(got["dead"], reason="Broken", error_description="async")
                await r.complete_message(got["done"])
                again = await receive(r, 1)
                assert [(str(m), m.delivery_count) for m in again] == [("abandon", 1)]
                await r.complete_message(again[0])
                deferred = await r.receive_deferred_messages([got["defer"].sequence_number])
                assert [str(m) for m in deferred] == ["defer"]
                await r.complete_message(deferred[0])
            async with c.get_queue_receiver("jobs", sub_queue=ServiceBusSubQueue.DEAD_LETTER, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as dlq:
                dead = await receive(dlq, 1)
                assert [(str(m), m.dead_letter_reason, m.dead_letter_error_description) for m in dead] == [("dead", "Broken", "async")]

    run(scenario())


def test_schedule_peek_and_cancel(sb):
    async def scenario():
        async with client(sb) as c:
            later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
            async with c.get_queue_sender("jobs") as s:
                seqs = await s.schedule_messages(ServiceBusMessage("tomorrow"), later, timeout=20)
            async with c.get_queue_receiver("jobs") as r:
                peeked = await r.peek_messages(max_message_count=10)
                assert [(str(m), m.state.name) for m in peeked] == [("tomorrow", "SCHEDULED")]
                assert peeked[0].scheduled_enqueue_time_utc is not None
            async with c.get_queue_sender("jobs") as s:
                await s.cancel_scheduled_messages(seqs, timeout=20)
            async with c.get_queue_receiver("jobs") as r:
                assert await r.peek_messages(max_message_count=10) == []

    run(scenario())


def test_a_session_with_state(sb):
    async def scenario():
        async with client(sb) as c:
            async with c.get_queue_sender("chat") as s:
                await s.send_messages([ServiceBusMessage(f"line {i}", session_id="room-1") for i in range(3)], timeout=20)
            async with c.get_queue_receiver("chat", session_id="room-1") as r:
                await r.session.set_state(b"read:0")
                got = await receive(r, 3)
                assert [str(m) for m in got] == [f"line {i}" for i in range(3)]
                for m in got:
                    await r.complete_message(m)
                assert await r.session.get_state() == b"read:0"
                with pytest.raises(SessionCannotBeLockedError):
                    async with client(sb) as other:
                        async with other.get_queue_receiver("chat", session_id="room-1") as second:
                            await second.receive_messages(max_message_count=1, max_wait_time=1)

    run(scenario())


def test_a_topic_filters_per_subscription(sb):
    async def scenario():
        async with client(sb) as c:
            async with c.get_topic_sender("plays") as s:
                await s.send_messages(
                    [ServiceBusMessage("short", application_properties={"seconds": 30}), ServiceBusMessage("long", application_properties={"seconds": 240})],
                    timeout=20,
                )
            for sub, expected in (("all", ["short", "long"]), ("long", ["long"])):
                async with c.get_subscription_receiver("plays", sub, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
                    got = await receive(r, len(expected))
                    assert [str(m) for m in got] == expected
                    assert await r.receive_messages(max_message_count=1, max_wait_time=1) == []

    run(scenario())


def test_unknown_entity(sb):
    async def scenario():
        async with client(sb) as c:
            # Azure refuses the put-token for it with 404 (see test_servicebus.py).
            with pytest.raises(ServiceBusAuthenticationError) as ei:
                async with c.get_queue_sender("missing") as s:
                    await s.send_messages(ServiceBusMessage("x"), timeout=20)
            assert_entity_not_found(ei.value, "missing")

    run(scenario())
