"""Event Hubs through the asynchronous clients of `azure-eventhub`
(`azure.eventhub.aio`) and `azure-eventhub-checkpointstoreblob-aio`, as an asyncio
application uses them: concurrent producers, batches by partition key, a batch
receiver, hub properties, a processor with the async Blob checkpoint store that
resumes after its checkpoints, and an unknown hub."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Dict, List

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import EventHubError
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from azure.storage.blob import BlobServiceClient

from eh_support import CLIENT_KWARGS, conn_str, hubs_config, start_server

pytestmark = pytest.mark.timeout(120)

CONFIG = hubs_config([{"Name": "clicks", "PartitionCount": 3}, {"Name": "resumed", "PartitionCount": 2}])


@pytest.fixture(scope="module")
def eh(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("eventhubs-async"), CONFIG, blob=True)
    yield server
    server.close()


def producer(server, hub: str) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(conn_str(server, hub), **CLIENT_KWARGS)


def consumer(server, hub: str, **kw) -> EventHubConsumerClient:
    # The receive loop notices `close()` at its next balancing turn: keep those short.
    kw = {**CLIENT_KWARGS, "load_balancing_interval": 1, **kw}
    return EventHubConsumerClient.from_connection_string(conn_str(server, hub), consumer_group="$Default", **kw)


async def receive_until(client: EventHubConsumerClient, count: int, timeout: float = 20.0, **receive_kw) -> Dict[str, List]:
    """Runs `receive_batch` until `count` events came in (or the timeout); events by
    partition id."""
    got: Dict[str, List] = defaultdict(list)
    done = asyncio.Event()

    async def on_batch(ctx, events):
        got[ctx.partition_id].extend(events)
        if sum(len(v) for v in got.values()) >= count:
            done.set()

    task = asyncio.create_task(client.receive_batch(on_event_batch=on_batch, max_wait_time=0.5, **receive_kw))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        await client.close()
        await asyncio.wait_for(task, 20)
    return got


def test_concurrent_producers_and_a_batch_receiver(eh):
    async def run():
        async def send(worker: int):
            async with producer(eh, "clicks") as p:
                for round_ in range(5):
                    batch = await p.create_batch(partition_key=f"user-{worker}")
                    for i in range(10):
                        batch.add(EventData(f"w{worker}-r{round_}-{i}"))
                    await p.send_batch(batch)

        await asyncio.gather(*(send(w) for w in range(6)))
        async with producer(eh, "clicks") as p:
            props = await p.get_eventhub_properties()
            parts = [await p.get_partition_properties(pid) for pid in props["partition_ids"]]
        got = await receive_until(consumer(eh, "clicks"), 300, starting_position="-1")
        return props, parts, got

    props, parts, got = asyncio.run(run())
    assert props["partition_ids"] == ["0", "1", "2"]
    assert sum(p["last_enqueued_sequence_number"] + 1 for p in parts) == 300
    bodies = sorted(e.body_as_str() for events in got.values() for e in events)
    assert bodies == sorted(f"w{w}-r{r}-{i}" for w in range(6) for r in range(5) for i in range(10))
    for pid, events in got.items():
        # One key lands on one partition, in the order it was sent.
        seqs = [e.sequence_number for e in events]
        assert seqs == sorted(seqs) == list(range(len(seqs))), f"partition {pid} reads its events in order"
        for e in events:
            assert e.partition_key.startswith(b"user-"), "the key comes back, as bytes in this SDK"
    by_key = defaultdict(set)
    for pid, events in got.items():
        for e in events:
            by_key[e.partition_key].add(pid)
    assert all(len(p) == 1 for p in by_key.values()), f"each key stays on one partition: {dict(by_key)}"


def test_async_processor_resumes_after_its_checkpoints(eh):
    container = f"async-checkpoints-{uuid.uuid4().hex[:8]}"
    BlobServiceClient.from_connection_string(eh.conn_str(), **CLIENT_KWARGS).create_container(container)

    async def send(texts: List[str]):
        async with producer(eh, "resumed") as p:
            for pid in ("0", "1"):
                batch = await p.create_batch(partition_id=pid)
                for t in texts:
                    batch.add(EventData(f"{pid}:{t}"))
                await p.send_batch(batch)

    async def process(expected: int) -> List[str]:
        store = BlobCheckpointStore.from_connection_string(eh.conn_str(), container, **CLIENT_KWARGS)
        client = consumer(eh, "resumed", checkpoint_store=store)
        seen: List[str] = []
        done = asyncio.Event()

        async def on_event(ctx, event):
            await ctx.update_checkpoint(event)
            seen.append(event.body_as_str())
            if len(seen) >= expected:
                done.set()

        task = asyncio.create_task(client.receive(on_event=on_event, starting_position="-1"))
        try:
            await asyncio.wait_for(done.wait(), 30)
            await asyncio.sleep(1.5)  # anything extra would arrive now
        finally:
            await client.close()
            await asyncio.wait_for(task, 20)
            await store.close()
        return seen

    async def run():
        await send(["a", "b", "c"])
        first = await process(6)
        await send(["d", "e"])
        second = await process(4)
        return first, second

    first, second = asyncio.run(run())
    assert sorted(first) == ["0:a", "0:b", "0:c", "1:a", "1:b", "1:c"]
    assert sorted(second) == ["0:d", "0:e", "1:d", "1:e"], "the second run starts after the first one's checkpoints"


def test_unknown_hub_fails_the_async_producer(eh):
    async def run():
        async with producer(eh, "no-such-hub") as p:
            await p.get_eventhub_properties()

    with pytest.raises(EventHubError) as info:
        asyncio.run(run())
    assert "could not be found" in str(info.value) or "not found" in str(info.value).lower(), str(info.value)
