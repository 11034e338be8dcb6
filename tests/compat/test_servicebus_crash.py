"""Service Bus crash test: SIGKILL the server while producers send and peek-lock
consumers complete, restart it on the same data directory and ports, and check
from the clients' side (DESIGN.md, "Durability contract") that:

- every message whose send was acknowledged is delivered (during the load or in
  the final drain);
- no message whose completion was acknowledged comes back;
- with duplicate detection on, no message is duplicated: a producer that does not
  know whether its send landed (the server died mid-send) sends it again with the
  same message id, and the queue keeps one copy.

Bookkeeping is per message id. Producers and consumers use the official
`azure-servicebus` SDK with no SDK retries; on any error they drop their client
and make a new one, as an application's retry loop would.

Run:  pytest tests/compat/test_servicebus_crash.py -s     (about 40-60 s)
Knobs (env): LAPIS_SB_CRASH_SECONDS (default 30), LAPIS_SB_CRASH_KILLS (default 5).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from typing import List, Set

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode

from lapis_harness import kill_at_random
from sb_support import CLIENT_KWARGS, conn_str, start_server

pytestmark = pytest.mark.timeout(300)

QUEUE = "crash"
PRODUCERS = 3
CONSUMERS = 2
LOAD_SECONDS = float(os.environ.get("LAPIS_SB_CRASH_SECONDS", "30"))
KILLS = max(5, int(os.environ.get("LAPIS_SB_CRASH_KILLS", "5")))
MAX_SENDS_PER_PRODUCER = 5_000
DRAIN_DEADLINE_S = 60.0

CONFIG = {
    "UserConfig": {
        "Namespaces": [
            {
                "Name": "sbemulatorns",
                "Queues": [
                    {
                        "Name": QUEUE,
                        "Properties": {
                            # Short locks: messages held at a crash come back soon.
                            "LockDuration": "PT5S",
                            "MaxDeliveryCount": 1000,
                            "RequiresDuplicateDetection": True,
                            "DuplicateDetectionHistoryTimeWindow": "PT10M",
                            "DefaultMessageTimeToLive": "PT1H",
                        },
                    }
                ],
            }
        ]
    }
}

logging.getLogger("azure").setLevel(logging.CRITICAL)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked_sends: Set[str] = set()
        self.attempted_sends: Set[str] = set()
        self.received: Set[str] = set()
        self.completed: List[str] = []

    def add(self, which: str, mid: str) -> None:
        with self.lock:
            target = getattr(self, which)
            if isinstance(target, set):
                target.add(mid)
            else:
                target.append(mid)


def close_quietly(*things) -> None:
    """Closes what is open, ignoring errors (the server may be gone)."""
    for t in things:
        try:
            if t is not None:
                t.close()
        except Exception:
            pass


def client(server) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(conn_str(server), **CLIENT_KWARGS)


def producer(server, worker: int, ledger: Ledger, stop: threading.Event) -> None:
    i = 0
    pending = None  # an id whose send failed: retried with the same id
    c = client(server)
    sender = None
    while not stop.is_set() and i < MAX_SENDS_PER_PRODUCER:
        mid = pending or f"p{worker}-{i}"
        try:
            if sender is None:
                sender = c.get_queue_sender(QUEUE)
            ledger.add("attempted_sends", mid)
            sender.send_messages(ServiceBusMessage(mid, message_id=mid), timeout=10)
            ledger.add("acked_sends", mid)
            pending = None
            i += 1
        except Exception:
            pending = mid
            close_quietly(sender, c)
            sender = None
            time.sleep(0.2)
            c = client(server)
    close_quietly(sender, c)


def consumer(server, ledger: Ledger, stop: threading.Event) -> None:
    c = client(server)
    receiver = None
    while not stop.is_set():
        try:
            if receiver is None:
                receiver = c.get_queue_receiver(QUEUE)
            for m in receiver.receive_messages(max_message_count=10, max_wait_time=1):
                mid = str(m)
                ledger.add("received", mid)
                receiver.complete_message(m)
                ledger.add("completed", mid)
        except Exception:
            close_quietly(receiver, c)
            receiver = None
            time.sleep(0.2)
            c = client(server)
    close_quietly(receiver, c)


def drain(server) -> List[str]:
    """Everything left in the queue, received and deleted."""
    left: List[str] = []
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    quiet_since = None
    c = client(server)
    try:
        with c.get_queue_receiver(QUEUE, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            while time.monotonic() < deadline:
                got = r.receive_messages(max_message_count=50, max_wait_time=1)
                left += [str(m) for m in got]
                if got:
                    quiet_since = None
                    continue
                quiet_since = quiet_since or time.monotonic()
                # Locks taken before the last crash run out after LockDuration (5 s).
                if time.monotonic() - quiet_since > 7:
                    break
    finally:
        c.close()
    return left


def test_sigkill_under_load_loses_no_acked_send_and_resurrects_no_completion(tmp_path):
    server = start_server(tmp_path, CONFIG)
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=producer, args=(server, w, ledger, stop), daemon=True) for w in range(PRODUCERS)]
    threads += [threading.Thread(target=consumer, args=(server, ledger, stop), daemon=True) for _ in range(CONSUMERS)]
    try:
        for t in threads:
            t.start()
        kills = kill_at_random(server, KILLS, LOAD_SECONDS, seed=4)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client thread hung"
        # One more crash with everything quiet, then read what is left.
        server.kill()
        server.start()
        left = drain(server)
    finally:
        stop.set()
        server.close()

    completed = Counter(ledger.completed)
    left_counts = Counter(left)
    print(
        f"kills={kills} acked_sends={len(ledger.acked_sends)} attempted={len(ledger.attempted_sends)} "
        f"completed={len(completed)} left={len(left)}"
    )
    assert len(ledger.acked_sends) > 50, "the load was too small to mean anything"
    assert len(completed) > 20, "consumers completed too little to mean anything"

    delivered = ledger.received | set(left)
    lost = ledger.acked_sends - delivered
    assert not lost, f"{len(lost)} acknowledged sends were never delivered, e.g. {sorted(lost)[:5]}"

    resurrected = set(completed) & set(left)
    assert not resurrected, f"{len(resurrected)} completed messages came back, e.g. {sorted(resurrected)[:5]}"

    twice_completed = [m for m, n in completed.items() if n > 1]
    assert not twice_completed, f"messages completed twice (duplicated in the queue): {twice_completed[:5]}"
    twice_left = [m for m, n in left_counts.items() if n > 1]
    assert not twice_left, f"messages left twice in the queue (duplicated): {twice_left[:5]}"

    unknown = set(left) - ledger.attempted_sends
    assert not unknown, f"messages that nobody sent: {sorted(unknown)[:5]}"
