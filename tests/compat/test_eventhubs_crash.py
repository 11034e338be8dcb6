"""Event Hubs crash test: SIGKILL the server at random moments while producers send
batches and a consumer reads along, restart it on the same data directory and
ports, and check from the clients' side (DESIGN.md, "Durability contract") that:

- every event in an acknowledged batch is readable afterwards;
- what a reader saw at a sequence number before a crash is still there, at the
  same offset;
- each partition's sequence numbers run from 0 with no gap, offsets only grow;
- nothing is torn: every event read is whole (its checksum holds) and was sent by
  a producer (an unacknowledged batch may or may not be there);
- no event is stored twice, except a batch whose first attempt may have landed
  unacknowledged: `EventHubProducerClient.send_batch` sends once more on a new
  producer after any failure of the first attempt, even with retries off, and
  Event Hubs has no duplicate detection. That is a send that overlapped an outage
  (from just before a SIGKILL until the server answered again) or outlasted the
  send timeout.

Producers use the official `azure-eventhub` SDK with no SDK retries; on any error
they drop their client, make a new one and go on with fresh events.

Run:  pytest tests/compat/test_eventhubs_crash.py -s     (about 40-60 s)
Knobs (env): LAPIS_EH_CRASH_SECONDS (default 30), LAPIS_EH_CRASH_KILLS (default 5).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections import Counter
from typing import Dict, List, Optional, Set, Tuple

import pytest
from azure.eventhub import EventData

from eh_support import consumer, hubs_config, producer, start_server

pytestmark = pytest.mark.timeout(300)

HUB = "crash"
PARTITIONS = 4
PRODUCERS = 3
BATCH = 20
LOAD_SECONDS = float(os.environ.get("LAPIS_EH_CRASH_SECONDS", "30"))
KILLS = max(5, int(os.environ.get("LAPIS_EH_CRASH_KILLS", "5")))
MAX_BATCHES_PER_PRODUCER = 2_000
SEND_TIMEOUT = 10.0
CONFIG = hubs_config([{"Name": HUB, "PartitionCount": PARTITIONS}])

logging.getLogger("azure").setLevel(logging.CRITICAL)

# Where a reader saw an event: (partition, sequence number).
Place = Tuple[str, int]


def encode(event_id: str, rng: random.Random) -> str:
    payload = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(10, 3000)))
    return f"{event_id}|{hashlib.sha256(payload.encode()).hexdigest()[:16]}|{payload}"


def decode(body: str) -> Optional[str]:
    """The event id of a whole body, else None."""
    parts = body.split("|", 2)
    if len(parts) != 3 or hashlib.sha256(parts[2].encode()).hexdigest()[:16] != parts[1]:
        return None
    return parts[0]


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: Set[str] = set()
        self.attempted: Set[str] = set()
        # Each batch's send: (started, ended, outcome), on the monotonic clock.
        self.sends: Dict[str, Tuple[float, float, str]] = {}
        # When the server was down: from just before each SIGKILL until it answered again.
        self.outages: List[Tuple[float, float]] = []
        # What a reader saw where: (offset, event id).
        self.seen: Dict[Place, Tuple[str, str]] = {}
        self.changed: List[Tuple[Place, Tuple[str, str], Tuple[str, str]]] = []
        self.torn: List[str] = []

    def saw(self, place: Place, offset: str, body: str) -> None:
        event_id = decode(body)
        with self.lock:
            if event_id is None:
                self.torn.append(body[:80])
                return
            before = self.seen.setdefault(place, (offset, event_id))
            if before != (offset, event_id):
                self.changed.append((place, before, (offset, event_id)))

    def sent(self, batch: str, started: float, outcome: str) -> None:
        with self.lock:
            self.sends[batch] = (started, time.monotonic(), outcome)

    def may_repeat(self) -> Set[str]:
        """Batches the SDK may have sent twice: their send overlapped an outage (begun
        before the server was back, ended after it began to die) or outlasted the
        send timeout."""
        return {
            b
            for b, (start, end, _) in self.sends.items()
            if end - start >= SEND_TIMEOUT or any(start <= back and end >= down for down, back in self.outages)
        }


def close_quietly(*things) -> None:
    for t in things:
        try:
            if t is not None:
                t.close()
        except Exception:
            pass


def produce(server, worker: int, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(worker)
    client = None
    for n in range(MAX_BATCHES_PER_PRODUCER):
        if stop.is_set():
            break
        ids = [f"w{worker}-b{n}-{k}" for k in range(BATCH)]
        try:
            client = client or producer(server, HUB)
            batch = client.create_batch(partition_id=str((worker + n) % PARTITIONS))
            for event_id in ids:
                batch.add(EventData(encode(event_id, rng)))
            with ledger.lock:
                ledger.attempted.update(ids)
            started = time.monotonic()
            try:
                client.send_batch(batch, timeout=SEND_TIMEOUT)
            except Exception as e:
                ledger.sent(batch_of(ids[0]), started, f"{type(e).__name__}: {str(e)[:120]}")
                raise
            ledger.sent(batch_of(ids[0]), started, "acknowledged")
            with ledger.lock:
                ledger.acked.update(ids)
        except Exception:
            close_quietly(client)
            client = None
            time.sleep(0.2)
    close_quietly(client)


def batch_of(event_id: str) -> str:
    return event_id.rsplit("-", 1)[0]


def read_along(server, ledger: Ledger, stop: threading.Event) -> None:
    """Reads every partition as events land; after a crash reconnects and goes on
    after the last event it saw."""
    last: Dict[str, int] = {}
    while not stop.is_set():
        broken = threading.Event()
        client = consumer(server, HUB, load_balancing_interval=1)

        def on_event(ctx, event):
            if event is not None:
                ledger.saw((ctx.partition_id, event.sequence_number), event.offset, event.body_as_str())
                last[ctx.partition_id] = event.sequence_number

        positions = {str(p): last.get(str(p), "-1") for p in range(PARTITIONS)}
        thread = threading.Thread(
            target=lambda: client.receive(on_event=on_event, on_error=lambda ctx, e: broken.set(), starting_position=positions),
            daemon=True,
        )
        thread.start()
        while not (stop.is_set() or broken.is_set()):
            time.sleep(0.1)
        close_quietly(client)
        thread.join(timeout=30)
        time.sleep(0.2)


def read_everything(server) -> Dict[str, List[Tuple[int, str, str]]]:
    """Every event of every partition: (sequence number, offset, body)."""
    out: Dict[str, List[Tuple[int, str, str]]] = {}
    p = producer(server, HUB)
    try:
        last = {str(i): p.get_partition_properties(str(i))["last_enqueued_sequence_number"] for i in range(PARTITIONS)}
    finally:
        p.close()
    for pid, last_seq in last.items():
        got: List[Tuple[int, str, str]] = []
        done = threading.Event()
        client = consumer(server, HUB)

        def on_event(ctx, event):
            got.append((event.sequence_number, event.offset, event.body_as_str()))
            if event.sequence_number >= last_seq:
                done.set()

        thread = threading.Thread(target=lambda: client.receive(on_event=on_event, partition_id=pid, starting_position="-1"), daemon=True)
        thread.start()
        done.wait(timeout=60)
        client.close()
        thread.join(timeout=30)
        assert done.is_set() or last_seq < 0, f"partition {pid}: read {len(got)} events, not up to {last_seq}"
        out[pid] = got
    return out


def describe(batches: Set[str], stored: Dict[Place, Tuple[str, str]], ledger: Ledger) -> str:
    """Where each batch's events landed and how its send went, against the outages."""
    t0 = min((s for s, _, _ in ledger.sends.values()), default=0.0)
    lines = [f"outages {[(round(d - t0, 2), round(b - t0, 2)) for d, b in ledger.outages]}"]
    for b in sorted(batches):
        places = sorted(place for place, (_, event_id) in stored.items() if batch_of(event_id) == b)
        start, end, outcome = ledger.sends.get(b, (t0, t0, "never sent"))
        runs: List[List[int]] = []
        for pid, seq in places:
            if runs and runs[-1][0] == pid and runs[-1][2] + 1 == seq:
                runs[-1][2] = seq
            else:
                runs.append([pid, seq, seq])
        where = ", ".join(f"p{pid} seq {a}-{z}" for pid, a, z in runs)
        lines.append(f"{b}: sent {start - t0:.2f}-{end - t0:.2f} s ({outcome}); stored at {where}")
    return "\n".join(lines)


def test_sigkill_under_load_keeps_every_acknowledged_event_where_it_was(tmp_path):
    server = start_server(tmp_path, CONFIG)
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=produce, args=(server, w, ledger, stop), daemon=True) for w in range(PRODUCERS)]
    threads.append(threading.Thread(target=read_along, args=(server, ledger, stop), daemon=True))
    try:
        for t in threads:
            t.start()
        rng = random.Random(5)
        started = time.monotonic()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.5, max(2.0, LOAD_SECONDS / KILLS)))
            down = time.monotonic()
            server.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            server.start()
            ledger.outages.append((down, time.monotonic()))
        while time.monotonic() - started < LOAD_SECONDS:
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client thread hung"
        server.kill()
        server.start()
        final = read_everything(server)
    finally:
        stop.set()
        server.close()

    read_ids: List[str] = []
    stored: Dict[Place, Tuple[str, str]] = {}
    for pid, events in final.items():
        seqs = [s for s, _, _ in events]
        assert seqs == list(range(len(events))), f"partition {pid}: sequence numbers have a gap or repeat near {next((i for i, s in enumerate(seqs) if s != i), None)}"
        offsets = [int(o) for _, o, _ in events]
        assert offsets == sorted(set(offsets)), f"partition {pid}: offsets do not only grow"
        for seq, offset, body in events:
            event_id = decode(body)
            assert event_id is not None, f"partition {pid} seq {seq}: a torn event {body[:80]!r}"
            read_ids.append(event_id)
            stored[(pid, seq)] = (offset, event_id)

    assert ledger.torn == [] and ledger.changed == [], f"torn {ledger.torn[:3]}, changed {ledger.changed[:3]}"
    moved = {place: (was, stored.get(place)) for place, was in ledger.seen.items() if stored.get(place) != was}
    assert not moved, f"{len(moved)} events a reader saw are no longer where it saw them, e.g. {list(moved.items())[:3]}"
    assert set(read_ids) <= ledger.attempted, "an event no producer sent"
    twice = {i for i, c in Counter(read_ids).items() if c > 1}
    unexplained = {batch_of(i) for i in twice} - ledger.may_repeat()
    assert not unexplained, f"stored twice, though sent in good time away from any outage:\n{describe(unexplained, stored, ledger)}"
    lost = ledger.acked - set(read_ids)
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
    assert len(ledger.acked) >= BATCH * KILLS, f"too little load to mean anything: {len(ledger.acked)} acknowledged"
    print(
        f"\n{KILLS} kills; {len(ledger.attempted)} events sent, {len(ledger.acked)} acknowledged, {len(read_ids)} stored "
        f"({len(twice)} twice, of batches sent during an outage), {len(ledger.seen)} read along the way"
    )
    if twice:
        print(describe({batch_of(i) for i in twice}, stored, ledger))
