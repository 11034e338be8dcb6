"""Event processors as applications run them: several `EventHubConsumerClient`s
sharing one hub through `BlobCheckpointStore` on the Blob endpoint. They divide
the partitions between them (claims with ETags, owner level 0 so a new owner takes
the link), checkpoint as they go, take over a stopped peer's partitions, and a
processor started later resumes after the last checkpoint: nothing missed, nothing
read again."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Dict, List, Set

import pytest
from azure.eventhub import EventData, EventHubConsumerClient
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from azure.storage.blob import BlobServiceClient

from eh_support import CLIENT_KWARGS, conn_str, hubs_config, producer, start_server, wait_until

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 4
HUB = "processed"
CONFIG = hubs_config([{"Name": HUB, "PartitionCount": PARTITIONS}])
# Seconds between a processor's balancing turns; claims lapse after six of them.
BALANCE_EVERY = 1.0


@pytest.fixture(scope="module")
def eh(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("processors"), CONFIG, blob=True)
    yield server
    server.close()


@pytest.fixture
def container(eh):
    name = f"checkpoints-{uuid.uuid4().hex[:8]}"
    BlobServiceClient.from_connection_string(eh.conn_str(), **CLIENT_KWARGS).create_container(name)
    return name


class Processor:
    """One consumer client with a checkpoint store, receiving in a thread and
    checkpointing every event before counting it as seen."""

    def __init__(self, server, container: str) -> None:
        self.store = BlobCheckpointStore.from_connection_string(server.conn_str(), container, **CLIENT_KWARGS)
        self.client = EventHubConsumerClient.from_connection_string(
            conn_str(server, HUB),
            consumer_group="$Default",
            checkpoint_store=self.store,
            load_balancing_interval=BALANCE_EVERY,
            **CLIENT_KWARGS,
        )
        self.seen: List[str] = []
        self.owned: Set[str] = set()
        self.lock = threading.Lock()

        def on_event(ctx, event):
            ctx.update_checkpoint(event)
            with self.lock:
                self.seen.append(event.body_as_str())

        def on_init(ctx):
            with self.lock:
                self.owned.add(ctx.partition_id)

        def on_close(ctx, reason):
            with self.lock:
                self.owned.discard(ctx.partition_id)

        receive = dict(on_event=on_event, on_partition_initialize=on_init, on_partition_close=on_close, starting_position="-1")
        self.thread = threading.Thread(target=lambda: self.client.receive(**receive), daemon=True)
        self.thread.start()

    def partitions(self) -> Set[str]:
        with self.lock:
            return set(self.owned)

    def bodies(self) -> List[str]:
        with self.lock:
            return list(self.seen)

    def stop(self) -> None:
        self.client.close()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the consumer client did not stop"


def send(server, texts: List[str]) -> None:
    p = producer(server, HUB)
    try:
        # One batch per partition so every partition has work.
        for i in range(PARTITIONS):
            batch = p.create_batch(partition_id=str(i))
            for t in texts[i::PARTITIONS]:
                batch.add(EventData(t))
            p.send_batch(batch)
    finally:
        p.close()


def last_sequence_numbers(server) -> Dict[str, int]:
    p = producer(server, HUB)
    try:
        return {str(i): p.get_partition_properties(str(i))["last_enqueued_sequence_number"] for i in range(PARTITIONS)}
    finally:
        p.close()


def all_seen(processors: List[Processor], expected: List[str], timeout: float = 60.0) -> Set[str]:
    want = set(expected)
    seen: Set[str] = set()

    def check() -> bool:
        seen.clear()
        for p in processors:
            seen.update(b for b in p.bodies() if b in want)
        return seen == want

    wait_until(check, timeout)
    return seen


def owners(store: BlobCheckpointStore, server) -> Dict[str, str]:
    fqns = f"localhost:{server.amqp_port}"
    return {o["partition_id"]: o["owner_id"] for o in store.list_ownership(fqns, HUB, "$Default")}


def test_processors_share_partitions_take_over_and_resume_from_checkpoints(eh, container):
    first = Processor(eh, container)
    assert wait_until(lambda: first.partitions() == {str(i) for i in range(PARTITIONS)}, 30), f"one processor claims every partition, owns {first.partitions()}"

    second = Processor(eh, container)
    balanced = wait_until(lambda: len(first.partitions()) == 2 and len(second.partitions()) == 2, 45)
    assert balanced, f"two processors split the partitions, own {first.partitions()} and {second.partitions()}"
    assert first.partitions().isdisjoint(second.partitions())
    claims = owners(first.store, eh)
    assert sorted(claims) == [str(i) for i in range(PARTITIONS)]
    assert sorted(Counter(claims.values()).values()) == [2, 2], f"the store records two owners of two partitions each: {claims}"

    round_one = [f"one-{i}" for i in range(200)]
    send(eh, round_one)
    seen = all_seen([first, second], round_one)
    assert seen == set(round_one), f"missing {sorted(set(round_one) - seen)[:10]}"
    assert first.bodies() and second.bodies(), "both processors did work"

    # A stopped peer's partitions lapse and the other takes them over.
    second.stop()
    assert wait_until(lambda: len(first.partitions()) == PARTITIONS, 45), f"the survivor takes every partition, owns {first.partitions()}"
    round_two = [f"two-{i}" for i in range(100)]
    send(eh, round_two)
    assert all_seen([first], round_two) == set(round_two)

    checkpoints = {c["partition_id"]: c["sequence_number"] for c in first.store.list_checkpoints(f"localhost:{eh.amqp_port}", HUB, "$Default")}
    assert checkpoints == last_sequence_numbers(eh), "each partition checkpointed at its last event"
    first.stop()

    # Events sent while nobody runs are read by the next processors, and nothing
    # from before their checkpoints is. Three start at once and settle on 2/1/1;
    # while they settle a partition may move, so an event can be read twice (the
    # at-least-once of any processor), but none is missed.
    round_three = [f"three-{i}" for i in range(40)]
    send(eh, round_three)
    trio = [Processor(eh, container) for _ in range(3)]
    try:
        settled = lambda: sorted(len(p.partitions()) for p in trio) == [1, 1, 2] and set().union(*(p.partitions() for p in trio)) == set(checkpoints)
        assert wait_until(settled, 60), f"three processors split four partitions, own {[p.partitions() for p in trio]}"
        assert all_seen(trio, round_three) == set(round_three)
        time.sleep(2 * BALANCE_EVERY)
        read_again = [b for p in trio for b in p.bodies() if not b.startswith("three-")]
        assert read_again == [], f"events before the checkpoints were read again: {read_again[:10]}"
    finally:
        for p in trio:
            p.stop()


def test_a_processor_without_checkpoints_starts_where_told(eh, container):
    """With no checkpoint a processor begins at `starting_position`; once it has
    checkpointed, a restart ignores the starting position."""
    send(eh, [f"before-{i}" for i in range(8)])
    first = Processor(eh, container)
    try:
        assert wait_until(lambda: len([b for b in first.bodies() if b.startswith("before-")]) >= 8, 30)
    finally:
        first.stop()
    send(eh, ["after-0", "after-1", "after-2", "after-3"])
    again = Processor(eh, container)
    try:
        assert wait_until(lambda: len(again.bodies()) >= 4, 30)
        time.sleep(2 * BALANCE_EVERY)
        assert sorted(again.bodies()) == ["after-0", "after-1", "after-2", "after-3"]
    finally:
        again.stop()
