"""Event Hubs through the official `azure-eventhub` SDK, as an application uses it:
hub and partition properties, sending batches by partition id and by partition key,
reading from the start, a sequence number, an enqueued time or the end, event
properties, independent consumer groups, owner levels, and the errors a user meets
(unknown hub, wrong key, bad partition, an event too large)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.eventhub import EventData
from azure.eventhub.amqp import AmqpAnnotatedMessage, AmqpMessageBodyType
from azure.eventhub.exceptions import AuthenticationError, ConnectError, EventDataSendError, EventHubError

from eh_support import Collector, bodies, consumer, hubs_config, producer, start_server

pytestmark = pytest.mark.timeout(120)

CONFIG = hubs_config(
    [
        {"Name": "plays", "PartitionCount": "4", "ConsumerGroups": [{"Name": "trending"}]},
        {"Name": "uploads", "PartitionCount": 2},
        {"Name": "owners", "PartitionCount": 1},
        {"Name": "positions", "PartitionCount": 1},
        {"Name": "bodies", "PartitionCount": 1},
        {"Name": "crowded", "PartitionCount": 1},
    ]
)


@pytest.fixture(scope="module")
def eh(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("eventhubs"), CONFIG)
    yield server
    server.close()


def send_batch(server, hub: str, texts, **batch_kw) -> None:
    p = producer(server, hub)
    try:
        batch = p.create_batch(**batch_kw)
        for t in texts:
            batch.add(EventData(t))
        p.send_batch(batch)
    finally:
        p.close()


def test_hub_and_partition_properties(eh):
    p = producer(eh, "plays")
    try:
        hub = p.get_eventhub_properties()
        assert hub["eventhub_name"] == "plays"
        assert hub["partition_ids"] == ["0", "1", "2", "3"]
        assert hub["created_at"] <= dt.datetime.now(dt.timezone.utc)
        empty = p.get_partition_properties("3")
        assert (empty["id"], empty["is_empty"], empty["last_enqueued_sequence_number"]) == ("3", True, -1)
        batch = p.create_batch(partition_id="3")
        batch.add(EventData("one"))
        batch.add(EventData("two"))
        p.send_batch(batch)
        full = p.get_partition_properties("3")
        assert (full["is_empty"], full["beginning_sequence_number"], full["last_enqueued_sequence_number"]) == (False, 0, 1)
        assert int(full["last_enqueued_offset"]) > 0
        assert full["last_enqueued_time_utc"] > dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    finally:
        p.close()


def test_a_partition_key_always_lands_in_the_same_partition(eh):
    p = producer(eh, "uploads")
    try:
        for i in range(3):
            p.send_event(EventData(f"track-42 #{i}"), partition_key="track-42")
        p.send_event(EventData("by id"), partition_id="0")
    finally:
        p.close()
    c = Collector(consumer(eh, "uploads"), starting_position="-1")
    try:
        got = c.wait_for(4)
    finally:
        c.stop()
    keyed = [(pid, e.sequence_number, e.body_as_str(), e.partition_key) for pid, e in got if e.partition_key]
    assert len(keyed) == 3
    assert {pid for pid, *_ in keyed} == {"1"}, "Azure's hash of 'track-42' over 2 partitions is partition 1"
    assert [b for _, _, b, _ in sorted(keyed, key=lambda k: k[1])] == [f"track-42 #{i}" for i in range(3)]
    assert [(pid, e.body_as_str()) for pid, e in got if not e.partition_key] == [("0", "by id")]


def test_reading_from_the_start_a_sequence_number_a_time_or_the_end(eh):
    send_batch(eh, "positions", [f"e{i}" for i in range(5)], partition_id="0")
    time.sleep(0.05)
    marker = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    send_batch(eh, "positions", ["e5", "e6"], partition_id="0")

    def read(**kw):
        c = Collector(consumer(eh, "positions"), partition_id="0", **kw)
        try:
            return bodies(c.wait_for(kw.pop("expect", 7), timeout=3))
        finally:
            c.stop()

    assert read(starting_position="-1") == [f"e{i}" for i in range(7)]
    assert read(starting_position=2, starting_position_inclusive=True) == [f"e{i}" for i in range(2, 7)]
    assert read(starting_position=2, starting_position_inclusive=False) == [f"e{i}" for i in range(3, 7)]
    assert read(starting_position=marker) == ["e5", "e6"]
    latest = Collector(consumer(eh, "positions"), partition_id="0", starting_position="@latest")
    try:
        time.sleep(1.5)
        send_batch(eh, "positions", ["after"], partition_id="0")
        assert bodies(latest.wait_for(1)) == ["after"], "only events sent after the reader started"
    finally:
        latest.stop()


def test_event_properties_round_trip(eh):
    p = producer(eh, "plays")
    try:
        event = EventData(b"\x00binary\xff")
        event.properties = {"track": "t-1", "seconds": 245, "liked": True, "score": 4.5}
        event.content_type = "application/octet-stream"
        event.correlation_id = "corr-1"
        event.message_id = "msg-1"
        p.send_event(event, partition_id="2")
    finally:
        p.close()
    c = Collector(consumer(eh, "plays"), partition_id="2", starting_position="-1")
    try:
        got = c.wait_for(1)
    finally:
        c.stop()
    e = got[0][1]
    assert e.body_as_str(encoding="latin-1") == "\x00binary\xff"
    assert {k.decode() if isinstance(k, bytes) else k: v for k, v in e.properties.items()} == {"track": b"t-1", "seconds": 245, "liked": True, "score": 4.5}
    assert (e.content_type, e.correlation_id, e.message_id) == ("application/octet-stream", "corr-1", "msg-1")
    assert e.enqueued_time is not None and e.sequence_number == 0


def test_every_amqp_body_type_and_annotations_round_trip(eh):
    """Events made as raw AMQP messages: a value body, a sequence body, several
    data sections; message annotations of the sender's own and a header and footer
    come back as sent, next to the annotations the hub stamps."""
    sent = [
        AmqpAnnotatedMessage(value_body={"track": "t-9", "plays": [1, 2, 3]}, annotations={"x-opt-app": "player"}),
        AmqpAnnotatedMessage(sequence_body=[[1, "two"], [3.5]], application_properties={"kind": "seq"}),
        AmqpAnnotatedMessage(data_body=[b"part-1|", b"part-2"], footer={"checksum": "abc"}),
    ]
    p = producer(eh, "bodies")
    try:
        batch = p.create_batch(partition_id="0")
        for m in sent:
            batch.add(m)
        p.send_batch(batch)
    finally:
        p.close()
    c = Collector(consumer(eh, "bodies"), partition_id="0", starting_position="-1")
    try:
        got = [e for _, e in c.wait_for(3)]
    finally:
        c.stop()
    assert [e.body_type for e in got] == [AmqpMessageBodyType.VALUE, AmqpMessageBodyType.SEQUENCE, AmqpMessageBodyType.DATA]
    value = got[0].body
    assert {k.decode() if isinstance(k, bytes) else k: v for k, v in value.items()} == {"track": b"t-9", "plays": [1, 2, 3]}
    assert [[x.decode() if isinstance(x, bytes) else x for x in section] for section in got[1].body] == [[1, "two"], [3.5]]
    assert list(got[2].body) == [b"part-1|", b"part-2"]
    first = got[0].raw_amqp_message.annotations
    assert first[b"x-opt-app"] == b"player" and first[b"x-opt-sequence-number"] == 0, first
    assert got[1].properties == {b"kind": b"seq"}
    assert got[2].raw_amqp_message.footer == {b"checksum": b"abc"}


def test_consumer_groups_read_the_same_events_independently(eh):
    send_batch(eh, "plays", ["g1", "g2"], partition_id="1")
    default = Collector(consumer(eh, "plays", "$Default"), partition_id="1", starting_position="-1")
    trending = Collector(consumer(eh, "plays", "trending"), partition_id="1", starting_position="-1")
    try:
        assert bodies(default.wait_for(2)) == ["g1", "g2"]
        assert bodies(trending.wait_for(2)) == ["g1", "g2"]
    finally:
        default.stop()
        trending.stop()


def test_a_higher_owner_level_takes_the_partition(eh):
    first = Collector(consumer(eh, "owners"), partition_id="0", starting_position="-1", owner_level=1)
    try:
        time.sleep(1.5)
        second = Collector(consumer(eh, "owners"), partition_id="0", starting_position="-1", owner_level=2)
        try:
            error = first.wait_for_error()
            assert isinstance(error, EventHubError), f"the first consumer lost its partition: {error!r}"
            assert "stolen" in str(error).lower() or "epoch" in str(error).lower(), repr(error)
            send_batch(eh, "owners", ["for the owner"], partition_id="0")
            assert bodies(second.wait_for(1)) == ["for the owner"]
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_sixth_reader_without_an_owner_level_is_refused(eh):
    readers = [Collector(consumer(eh, "crowded"), partition_id="0", starting_position="-1") for _ in range(5)]
    try:
        send_batch(eh, "crowded", ["for five"], partition_id="0")
        for r in readers:
            assert bodies(r.wait_for(1)) == ["for five"], "each of five readers gets the event"
        sixth = Collector(consumer(eh, "crowded"), partition_id="0", starting_position="-1")
        try:
            error = sixth.wait_for_error()
            assert isinstance(error, EventHubError), f"the sixth reader is refused: {error!r}"
            assert "maximum number of allowed receivers per partition" in str(error), repr(error)
            assert sixth.events == []
            send_batch(eh, "crowded", ["still five"], partition_id="0")
            for r in readers:
                assert bodies(r.wait_for(2)) == ["for five", "still five"], "the five keep reading"
        finally:
            sixth.stop()
    finally:
        for r in readers:
            r.stop()


def test_an_unknown_hub_is_an_error(eh):
    p = producer(eh, "no-such-hub")
    try:
        with pytest.raises(EventHubError):
            p.get_eventhub_properties()
        with pytest.raises(EventHubError):
            p.send_event(EventData("lost"))
    finally:
        p.close()


def test_a_wrong_key_is_an_authentication_error(eh):
    from eh_support import conn_str

    from azure.eventhub import EventHubProducerClient

    p = EventHubProducerClient.from_connection_string(conn_str(eh, "plays", key="WRONG"), retry_total=0)
    try:
        with pytest.raises(AuthenticationError):
            p.send_event(EventData("intruder"))
    finally:
        p.close()


def test_a_partition_that_does_not_exist_is_an_error(eh):
    p = producer(eh, "plays")
    try:
        with pytest.raises(ConnectError):
            p.send_event(EventData("nowhere"), partition_id="9")
        with pytest.raises(EventHubError):
            p.get_partition_properties("9")
    finally:
        p.close()


def test_an_event_over_one_megabyte_is_refused(eh):
    p = producer(eh, "plays")
    try:
        with pytest.raises((EventDataSendError, ValueError)) as ei:
            p.send_event(EventData(b"x" * (1024 * 1024 + 10)), partition_id="0")
        print(f"SDK raised: {ei.value!r}")
        assert p.get_partition_properties("0")["is_empty"], "nothing was stored"
    finally:
        p.close()
