"""Event Hubs retention with the server's injected clock: once a hub's events are
older than its retention they go (whole segments), what a client sees of the
partition says so, a reader that was already reading carries on with new events,
hubs with a longer retention keep theirs, and all of it holds across a restart."""

from __future__ import annotations

import pytest
from azure.eventhub import EventData

from eh_support import Collector, bodies, consumer, hubs_config, producer, start_server, wait_until

pytestmark = pytest.mark.timeout(180)

CONFIG = hubs_config(
    [
        {"Name": "short", "PartitionCount": 1, "MessageRetentionInHours": 1},
        {"Name": "kept", "PartitionCount": 1, "MessageRetentionInHours": 24},
    ]
)
# The server drops expired events every few seconds.
RETENTION_PASS_S = 30.0


def send(server, hub: str, texts) -> None:
    p = producer(server, hub)
    try:
        batch = p.create_batch(partition_id="0")
        for t in texts:
            batch.add(EventData(t))
        p.send_batch(batch)
    finally:
        p.close()


def partition(server, hub: str) -> dict:
    p = producer(server, hub)
    try:
        return p.get_partition_properties("0")
    finally:
        p.close()


def read_from(server, hub: str, n: int, position, timeout: float = 15.0):
    c = Collector(consumer(server, hub), partition_id="0", starting_position=position)
    try:
        return c.wait_for(n, timeout)
    finally:
        c.stop()


def test_expired_events_go_and_readers_carry_on(tmp_path):
    server = start_server(tmp_path, CONFIG)
    try:
        old = [f"old-{i}" for i in range(20)]
        send(server, "short", old)
        send(server, "kept", old)
        live = Collector(consumer(server, "short"), partition_id="0", starting_position="-1")
        try:
            assert bodies(live.wait_for(20)) == old

            server.advance_clock(2 * 3600 + 60)
            expired = lambda: partition(server, "short")["is_empty"]
            assert wait_until(expired, RETENTION_PASS_S), f"events past retention go: {partition(server, 'short')}"
            short = partition(server, "short")
            assert (short["beginning_sequence_number"], short["last_enqueued_sequence_number"]) == (20, 19)
            kept = partition(server, "kept")
            assert (kept["is_empty"], kept["beginning_sequence_number"], kept["last_enqueued_sequence_number"]) == (False, 0, 19)

            new = [f"new-{i}" for i in range(5)]
            send(server, "short", new)
            got = live.wait_for(25)
            assert bodies(got) == old + new, "the reader that was reading goes on with the new events"
            assert [e.sequence_number for _, e in got[20:]] == [20, 21, 22, 23, 24]
            assert live.errors == []
        finally:
            live.stop()

        assert bodies(read_from(server, "short", 5, "-1")) == new, "a new reader starts at the oldest event kept"
        assert bodies(read_from(server, "short", 5, 3)) == new, "a position already gone starts at the oldest event kept"
        assert bodies(read_from(server, "kept", 20, "-1")) == old

        server.restart()
        after = partition(server, "short")
        assert (after["is_empty"], after["beginning_sequence_number"], after["last_enqueued_sequence_number"]) == (False, 20, 24)
        assert bodies(read_from(server, "short", 5, "-1")) == new, "what retention removed stays removed"
        assert bodies(read_from(server, "kept", 20, "-1")) == old
    finally:
        server.close()
