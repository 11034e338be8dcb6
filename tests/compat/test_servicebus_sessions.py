"""Service Bus sessions through the official `azure-servicebus` SDK: a named
session and the next available one, strict order within a session, one receiver
per session, session state, lock renewal and expiry, listing sessions, and
sessions on a topic subscription."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from sb_support import sb_client, send_all

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    {"Name": "orders", "Properties": {"RequiresSession": True}},
                    {"Name": "brief", "Properties": {"RequiresSession": True, "LockDuration": "PT5S"}},
                    {"Name": "empty", "Properties": {"RequiresSession": True}},
                    {"Name": "plain", "Properties": {}},
                ],
                "Topics": [
                    {
                        "Name": "tracks",
                        "Properties": {},
                        "Subscriptions": [{"Name": "comments", "Properties": {"RequiresSession": True}}],
                    }
                ],
            }
        ]
    }
}

WAIT_S = 5


def drain_session(client, queue: str, session: str) -> None:
    with client.get_queue_receiver(queue, session_id=session, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
        while r.receive_messages(max_message_count=50, max_wait_time=1):
            pass


def test_a_named_session_delivers_only_its_messages_in_order(sb, client):
    send_all(
        client,
        "orders",
        *[ServiceBusMessage(f"a{i}", session_id="track-a") for i in range(5)],
        ServiceBusMessage("b0", session_id="track-b"),
    )
    with client.get_queue_receiver("orders", session_id="track-a") as r:
        assert r.session.session_id == "track-a"
        assert r.session.locked_until_utc > dt.datetime.now(dt.timezone.utc)
        got = []
        while len(got) < 5:
            batch = r.receive_messages(max_message_count=5, max_wait_time=WAIT_S)
            assert batch, f"only {got} arrived"
            for m in batch:
                assert m.session_id == "track-a"
                r.complete_message(m)
            got += [str(m) for m in batch]
        assert got == [f"a{i}" for i in range(5)]
        assert r.receive_messages(max_message_count=5, max_wait_time=1) == []
    with client.get_queue_receiver("orders", session_id="track-b") as r:
        assert [str(m) for m in r.receive_messages(max_message_count=5, max_wait_time=WAIT_S)] == ["b0"]


def test_next_available_session_takes_a_session_with_messages(sb, client):
    drain_session(client, "orders", "track-b")
    send_all(client, "orders", ServiceBusMessage("c0", session_id="track-c"))
    with client.get_queue_receiver("orders", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=WAIT_S) as r:
        assert r.session.session_id == "track-c"
        got = r.receive_messages(max_message_count=5, max_wait_time=WAIT_S)
        assert [str(m) for m in got] == ["c0"]
        r.complete_message(got[0])


def test_a_session_is_held_by_one_receiver_at_a_time(sb, client):
    send_all(client, "orders", ServiceBusMessage("d0", session_id="track-d"))
    with client.get_queue_receiver("orders", session_id="track-d") as holder:
        holder.receive_messages(max_message_count=1, max_wait_time=WAIT_S)
        other = sb_client(sb)
        try:
            with pytest.raises(SessionCannotBeLockedError):
                with other.get_queue_receiver("orders", session_id="track-d") as r:
                    r.receive_messages(max_message_count=1, max_wait_time=1)
        finally:
            other.close()
    # Closing the holder frees the session, and its unsettled message with it: the
    # next receiver gets d0 at once (a session's messages have no lock of their own),
    # its lost delivery counted, so the session stays in order.
    send_all(client, "orders", ServiceBusMessage("d1", session_id="track-d"))
    with client.get_queue_receiver("orders", session_id="track-d") as r:
        assert r.session.session_id == "track-d"
        got = []
        for _ in range(5):
            got += r.receive_messages(max_message_count=2 - len(got), max_wait_time=WAIT_S)
            if len(got) == 2:
                break
        assert [(str(m), m.delivery_count) for m in got] == [("d0", 1), ("d1", 0)]
        for m in got:
            r.complete_message(m)


def test_next_available_times_out_when_no_session_has_messages(sb, client):
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        with client.get_queue_receiver("empty", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as r:
            r.receive_messages(max_message_count=1, max_wait_time=1)
    assert time.monotonic() - started < 30


def test_session_state_round_trips_and_clears(sb, client):
    send_all(client, "orders", ServiceBusMessage("e0", session_id="track-e"))
    with client.get_queue_receiver("orders", session_id="track-e") as r:
        assert r.session.get_state() is None
        r.session.set_state(b"\x00progress=3\xff")
        assert r.session.get_state() == b"\x00progress=3\xff"
    with client.get_queue_receiver("orders", session_id="track-e") as r:
        assert r.session.get_state() == b"\x00progress=3\xff", "state outlives the receiver"
        r.session.set_state(None)
        assert r.session.get_state() is None
        drain = r.receive_messages(max_message_count=5, max_wait_time=WAIT_S)
        for m in drain:
            r.complete_message(m)


def test_renewing_the_session_lock_extends_it(sb, client):
    send_all(client, "brief", ServiceBusMessage("f0", session_id="track-f"))
    with client.get_queue_receiver("brief", session_id="track-f") as r:
        before = r.session.locked_until_utc
        time.sleep(1.1)
        after = r.session.renew_lock()
        assert after > before and r.session.locked_until_utc == after
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.complete_message(m)


def test_a_lapsed_session_lock_is_lost(sb, client):
    send_all(client, "brief", ServiceBusMessage("g0", session_id="track-g"))
    with client.get_queue_receiver("brief", session_id="track-g") as r:
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        time.sleep(5.5)
        with pytest.raises(SessionLockLostError):
            r.complete_message(m)
    with client.get_queue_receiver("brief", session_id="track-g") as r:
        again = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)
        assert [(str(x), x.delivery_count) for x in again] == [("g0", 1)], "the message comes back, its delivery counted"
        r.complete_message(again[0])


def test_sessions_are_listed(sb, client):
    send_all(client, "orders", ServiceBusMessage("h0", session_id="track-h"), ServiceBusMessage("i0", session_id="track-i"))
    listed = set(client.list_queue_sessions("orders"))
    assert {"track-h", "track-i"} <= listed
    marker = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    with client.get_queue_receiver("orders", session_id="track-i") as r:
        r.session.set_state(b"touched")
    assert list(client.list_queue_sessions("orders", state_updated_after=marker)) == ["track-i"]
    for s in ("track-h", "track-i"):
        drain_session(client, "orders", s)
        with client.get_queue_receiver("orders", session_id=s) as r:
            r.session.set_state(None)


def test_peek_and_deferral_stay_within_the_session(sb, client):
    send_all(client, "orders", ServiceBusMessage("j0", session_id="track-j"), ServiceBusMessage("k0", session_id="track-k"))
    with client.get_queue_receiver("orders", session_id="track-j") as r:
        assert [str(m) for m in r.peek_messages(max_message_count=10)] == ["j0"]
        m = r.receive_messages(max_message_count=1, max_wait_time=WAIT_S)[0]
        r.defer_message(m)
        assert r.receive_messages(max_message_count=1, max_wait_time=1) == []
        deferred = r.receive_deferred_messages([m.sequence_number])
        assert [str(x) for x in deferred] == ["j0"]
        r.complete_message(deferred[0])
    drain_session(client, "orders", "track-k")


def test_session_and_plain_receivers_only_work_on_their_kind_of_entity(sb, client):
    with pytest.raises(ServiceBusError):
        with client.get_queue_receiver("orders") as r:
            r.receive_messages(max_message_count=1, max_wait_time=1)
    with pytest.raises(ServiceBusError):
        with client.get_queue_receiver("plain", session_id="x") as r:
            r.receive_messages(max_message_count=1, max_wait_time=1)


def test_a_message_without_a_session_id_cannot_go_to_a_session_queue(sb, client):
    with pytest.raises(ServiceBusError):
        send_all(client, "orders", ServiceBusMessage("no session"))


def test_session_subscription_keeps_each_session_in_order(sb, client):
    with client.get_topic_sender("tracks") as s:
        s.send_messages([ServiceBusMessage(f"{t}-{i}", session_id=t) for i in range(3) for t in ("t1", "t2")], timeout=20)
    for t in ("t1", "t2"):
        with client.get_subscription_receiver("tracks", "comments", session_id=t) as r:
            got = []
            while len(got) < 3:
                batch = r.receive_messages(max_message_count=3, max_wait_time=WAIT_S)
                assert batch
                for m in batch:
                    r.complete_message(m)
                got += [str(m) for m in batch]
            assert got == [f"{t}-{i}" for i in range(3)]
