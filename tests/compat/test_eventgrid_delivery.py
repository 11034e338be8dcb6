"""Event Grid push delivery driven as a user would: events published with the official
`azure-eventgrid` SDK reach webhooks run by the test (validated first, with the
service's headers, filtered, batched, in either schema) and Lapis's own Storage
Queues, Service Bus queues and event hubs, where the SDKs read them and
`EventGridEvent.from_json` parses them; a failing webhook is retried on the service's
schedule (moved through the injected clock) and then dead-lettered to a blob read with
`azure-storage-blob`; a hanging webhook holds up no one else."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from azure.eventhub import EventHubConsumerClient
from azure.servicebus import ServiceBusClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

import eh_support
import sb_support
from eg_support import admin, create_topic, metrics, publisher, subscribe, unsubscribe, webhook_destination
from eg_webhook import Webhook, local_ca
from lapis_harness import LapisServer

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "UserConfig": {
        "Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "eg-inbox", "Properties": {}}],
                        "Topics": [{"Name": "eg-fanout", "Properties": {}, "Subscriptions": [{"Name": "audit", "Properties": {}}]}]}],
        "NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": [{"Name": "eg-stream", "PartitionCount": 2, "ConsumerGroups": []}]}],
    }
}


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    base = tmp_path_factory.mktemp("eventgrid-delivery")
    path = base / "config.json"
    path.write_text(json.dumps(CONFIG))
    data = base / "data"
    data.mkdir()
    server = LapisServer(data_dir=data, log_dir=base, amqp=True, blob=True, config=path).start()
    yield server
    server.close()


@pytest.fixture
def hooks():
    made = []

    def make(**kw) -> Webhook:
        h = Webhook(**kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def upload(i: int, genre: str = "rock", event_type: str = "MusicShare.TrackUploaded") -> EventGridEvent:
    return EventGridEvent(subject=f"tracks/{genre}/{i}", event_type=event_type, data={"track": i, "genre": genre, "plays": i * 10}, data_version="2.0")


def test_a_webhook_is_validated_then_gets_the_events_its_filter_passes(eg, hooks):
    topic = create_topic(eg, name("uploads"))
    everything, rock_uploads, popular = hooks(), hooks(), hooks()
    subscribe(eg, topic["Name"], "everything", webhook_destination(everything.url))
    subscribe(eg, topic["Name"], "rock-uploads", webhook_destination(rock_uploads.url),
              filter={"subjectBeginsWith": "tracks/rock/", "includedEventTypes": ["MusicShare.TrackUploaded"]})
    subscribe(eg, topic["Name"], "popular", webhook_destination(popular.url),
              filter={"advancedFilters": [{"operatorType": "NumberGreaterThanOrEquals", "key": "data.plays", "value": 30},
                                          {"operatorType": "StringIn", "key": "data.genre", "values": ["JAZZ", "rock"]}]})
    for h in (everything, rock_uploads, popular):
        [v] = h.handshakes()
        assert v.kind == "SubscriptionValidation"
        assert json.loads(v.body)[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    with publisher(topic) as client:
        client.send([upload(1), upload(2, "jazz"), upload(3), upload(4, "jazz", "MusicShare.TrackPlayed"), upload(5, "pop")])
    assert sorted(e["data"]["track"] for e in everything.wait_events(5)) == [1, 2, 3, 4, 5]
    assert sorted(e["data"]["track"] for e in rock_uploads.wait_events(2)) == [1, 3]
    assert sorted(e["data"]["track"] for e in popular.wait_events(2)) == [3, 4]
    time.sleep(0.5)
    assert len(rock_uploads.events()) == 2 and len(popular.events()) == 2, "nothing else arrives"

    first = everything.notifications()[0]
    assert first.headers["aeg-event-type"] == "Notification"
    assert first.headers["aeg-subscription-name"] == "EVERYTHING"
    assert first.headers["aeg-delivery-count"] == "0"
    assert first.headers["aeg-data-version"] == "2.0"
    assert first.headers["aeg-metadata-version"] == "1"
    assert first.headers["content-type"].startswith("application/json")
    parsed = EventGridEvent.from_dict(json.loads(first.body)[0])
    assert parsed.event_type == "MusicShare.TrackUploaded"
    assert parsed.topic.endswith(f"/topics/{topic['Name']}")
    m = metrics(eg, topic["Name"], "rock-uploads")
    assert (m["matchedEvents"], m["deliveredEvents"], m["failedAttempts"]) == (2, 2, 0)
    assert m["latencyP99Ms"] is not None


def test_cloud_events_are_validated_with_options_and_batched(eg, hooks):
    topic = create_topic(eg, name("plays"), schema="CloudEventSchemaV1_0")
    hook = hooks()
    subscribe(eg, topic["Name"], "batched", webhook_destination(hook.url, maxEventsPerBatch=10, preferredBatchSizeInKilobytes=64))
    [options] = hook.handshakes()
    assert options.method == "OPTIONS" and options.headers["webhook-request-origin"]
    with publisher(topic) as client:
        client.send([CloudEvent(source="/music-share", type="MusicShare.TrackPlayed", data={"track": i}) for i in range(25)])
    events = hook.wait_events(25)
    assert sorted(e["data"]["track"] for e in events) == list(range(25))
    assert all(len(r.events()) <= 10 for r in hook.notifications()), "max events per batch"
    batch = next(r for r in hook.notifications() if len(r.events()) > 1)
    assert batch.headers["content-type"].startswith("application/cloudevents-batch+json")
    assert CloudEvent.from_dict(batch.events()[0]).type == "MusicShare.TrackPlayed"


def test_event_grid_events_can_be_delivered_as_cloud_events(eg, hooks):
    topic = create_topic(eg, name("converted"))
    hook = hooks()
    subscribe(eg, topic["Name"], "as-cloud-events", webhook_destination(hook.url), eventDeliverySchema="CloudEventSchemaV1_0")
    assert hook.handshakes()[0].method == "OPTIONS", "a CloudEvents delivery is validated the CloudEvents way"
    with publisher(topic) as client:
        client.send(upload(7))
    [event] = hook.wait_events(1)
    ce = CloudEvent.from_dict(event)
    assert (ce.type, ce.subject, ce.data["track"]) == ("MusicShare.TrackUploaded", "tracks/rock/7", 7)
    assert ce.source.endswith(f"/topics/{topic['Name']}")


def test_a_webhook_that_fails_the_handshake_is_refused(eg, hooks):
    topic = create_topic(eg, name("refused"))
    deaf = hooks(validate=False)
    r = admin(eg, "PUT", f"topics/{topic['Name']}/subscriptions/deaf", {"destination": webhook_destination(deaf.url)})
    assert r.status_code == 400, r.text
    assert "validation handshake failed" in r.json()["error"]["message"]
    r = admin(eg, "PUT", f"topics/{topic['Name']}/subscriptions/nobody", {"destination": webhook_destination("http://127.0.0.1:9/none")})
    assert r.status_code == 400, r.text
    assert admin(eg, "GET", f"topics/{topic['Name']}/subscriptions").json()["Subscriptions"] == []


def test_manual_validation_through_the_validation_url(eg, hooks):
    topic = create_topic(eg, name("manual"))
    by_hand = hooks(validate="manual")
    sub = subscribe(eg, topic["Name"], "by-hand", webhook_destination(by_hand.url))
    assert sub["provisioningState"] == "AwaitingManualAction"
    url = by_hand.validation_url()
    assert url == sub["validationUrl"] and url.startswith(eg.http_url)
    with publisher(topic) as client:
        client.send(upload(1))
    time.sleep(0.5)
    assert by_hand.notifications() == [], "nothing is delivered before the endpoint validates"
    r = requests.get(url.replace("code=", "code=X"), timeout=10)
    assert r.status_code == 400, "a wrong code does not validate"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert admin(eg, "GET", f"topics/{topic['Name']}/subscriptions/by-hand").json()["provisioningState"] == "Succeeded"
    with publisher(topic) as client:
        client.send(upload(2))
    assert [e["data"]["track"] for e in by_hand.wait_events(1)] == [2], "events from validation on"

    late = hooks(validate="manual")
    subscribe(eg, topic["Name"], "too-late", webhook_destination(late.url))
    eg.advance_clock(11 * 60)
    assert admin(eg, "GET", f"topics/{topic['Name']}/subscriptions/too-late").json()["provisioningState"] == "Failed"
    r = requests.get(late.validation_url(), timeout=10)
    assert r.status_code == 400 and "expired" in r.json()["error"]["message"]
    unsubscribe(eg, topic["Name"], "too-late")


def wait_failed(server, topic_name: str, sub: str, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while metrics(server, topic_name, sub)["failedAttempts"] < n:
        assert time.monotonic() < deadline, f"the server did not file failed attempt {n}"
        time.sleep(0.05)


def test_a_failing_webhook_is_retried_on_schedule_then_dead_lettered_to_a_blob(eg, hooks):
    blobs = BlobServiceClient.from_connection_string(eg.conn_str())
    container = blobs.create_container(name("dead"))
    topic = create_topic(eg, name("flaky"))
    failing = hooks(answer=500)
    subscribe(eg, topic["Name"], "flaky-hook", webhook_destination(failing.url),
              retryPolicy={"maxDeliveryAttempts": 3, "eventTimeToLiveInMinutes": 60}, deadLetterContainer=container.container_name)
    with publisher(topic) as client:
        client.send(upload(1))
    failing.wait_for(lambda h: len(h.notifications()) == 1, what="the first attempt")
    # The clock moves only once the server has filed the failure (and taken its time).
    wait_failed(eg, topic["Name"], "flaky-hook", 1)
    eg.advance_clock(9)
    time.sleep(0.6)
    assert len(failing.notifications()) == 1, "no retry before 10 seconds"
    eg.advance_clock(3)
    failing.wait_for(lambda h: len(h.notifications()) == 2, what="the retry after 10 s")
    wait_failed(eg, topic["Name"], "flaky-hook", 2)
    eg.advance_clock(28)
    time.sleep(0.6)
    assert len(failing.notifications()) == 2, "the second wait is 30 seconds"
    eg.advance_clock(6)
    failing.wait_for(lambda h: len(h.notifications()) == 3, what="the retry after 30 s")
    assert [r.headers["aeg-delivery-count"] for r in failing.notifications()] == ["0", "1", "2"]

    deadline = time.monotonic() + 10
    while not (found := list(container.list_blobs(name_starts_with="FLAKY-HOOK/"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(found) == 1, "one dead-letter blob"
    parts = found[0].name.split("/")
    now = eg.server_now()
    assert parts[1:4] == [str(now.year), str(now.month), str(now.day)] and parts[-1].endswith(".json"), found[0].name
    [record] = json.loads(container.download_blob(found[0].name).readall())
    assert record["data"]["track"] == 1
    assert record["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert record["deliveryAttempts"] == 3
    assert record["lastDeliveryOutcome"] == "Busy"
    assert record["lastHttpStatusCode"] == 500
    assert "publishTime" in record and "lastDeliveryAttemptTime" in record
    m = metrics(eg, topic["Name"], "flaky-hook")
    assert (m["failedAttempts"], m["deadLetteredEvents"], m["deliveredEvents"], m["retryingEvents"]) == (3, 1, 0, 0)
    unsubscribe(eg, topic["Name"], "flaky-hook")


def test_a_bad_request_is_dead_lettered_at_once(eg, hooks):
    blobs = BlobServiceClient.from_connection_string(eg.conn_str())
    container = blobs.create_container(name("poison"))
    topic = create_topic(eg, name("strict"))
    picky = hooks(answer=lambda r: 400 if r.events()[0]["data"]["track"] == 13 else 200)
    subscribe(eg, topic["Name"], "picky", webhook_destination(picky.url), deadLetterContainer=container.container_name)
    with publisher(topic) as client:
        client.send([upload(12), upload(13), upload(14)])
    picky.wait_events(3)
    deadline = time.monotonic() + 10
    while not (found := list(container.list_blobs())) and time.monotonic() < deadline:
        time.sleep(0.2)
    [blob] = found
    [record] = json.loads(container.download_blob(blob.name).readall())
    assert record["data"]["track"] == 13
    assert record["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert record["deliveryAttempts"] == 1
    m = metrics(eg, topic["Name"], "picky")
    assert (m["deliveredEvents"], m["deadLetteredEvents"]) == (2, 1)
    unsubscribe(eg, topic["Name"], "picky")


def test_a_hanging_webhook_holds_up_no_one_else(eg, hooks):
    topic = create_topic(eg, name("mixed"))
    stuck, healthy = hooks(hang_s=20), hooks()
    subscribe(eg, topic["Name"], "stuck", webhook_destination(stuck.url))
    subscribe(eg, topic["Name"], "healthy", webhook_destination(healthy.url))
    with publisher(topic) as client:
        client.send([upload(i) for i in range(40)])
    assert len(healthy.wait_events(40, timeout=10)) == 40, "the healthy endpoint got everything while the other hangs"
    stuck.wait_for(lambda h: len(h.notifications()) >= 1, what="the stuck endpoint's first request")
    unsubscribe(eg, topic["Name"], "stuck")


def test_events_flow_into_a_storage_queue(eg):
    queue = QueueClient.from_connection_string(eg.conn_str(), name("inbox"), message_decode_policy=TextBase64DecodePolicy())
    queue.create_queue()
    topic = create_topic(eg, name("to-queue"))
    subscribe(eg, topic["Name"], "queue-jobs", {"endpointType": "StorageQueue", "properties": {"queueName": queue.queue_name}})
    with publisher(topic) as client:
        client.send([upload(1), upload(2)])
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 2 and time.monotonic() < deadline:
        for msg in queue.receive_messages():
            got.append(EventGridEvent.from_json(msg))
            queue.delete_message(msg)
        time.sleep(0.1)
    assert sorted(e.data["track"] for e in got) == [1, 2], "one message per event, parsed by the SDK"
    assert got[0].event_type == "MusicShare.TrackUploaded"


def test_events_flow_into_a_service_bus_queue_with_the_delivery_properties(eg):
    topic = create_topic(eg, name("to-sb"))
    subscribe(eg, topic["Name"], "sb-jobs", {"endpointType": "ServiceBusQueue", "properties": {"queueName": "eg-inbox"}})
    with publisher(topic) as client:
        client.send([upload(1), upload(2)])
    with ServiceBusClient.from_connection_string(sb_support.conn_str(eg)) as sb, sb.get_queue_receiver("eg-inbox", max_wait_time=10) as receiver:
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            for msg in receiver.receive_messages(max_message_count=10, max_wait_time=2):
                got.append(msg)
                receiver.complete_message(msg)
    assert sorted(EventGridEvent.from_json(m).data["track"] for m in got) == [1, 2]
    props = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v for k, v in got[0].application_properties.items()}
    assert props["aeg-subscription-name"] == "SB-JOBS"
    assert props["aeg-event-type"] == "Notification"
    assert props["aeg-delivery-count"] == "0"
    assert got[0].message_id != EventGridEvent.from_json(got[0]).id, "the message id is the service's, not the event's"


def test_events_flow_into_a_service_bus_topic(eg):
    topic = create_topic(eg, name("to-sbt"))
    subscribe(eg, topic["Name"], "sbt-jobs", {"endpointType": "ServiceBusTopic", "properties": {"topicName": "eg-fanout"}})
    with publisher(topic) as client:
        client.send(upload(5))
    with ServiceBusClient.from_connection_string(sb_support.conn_str(eg)) as sb, \
            sb.get_subscription_receiver("eg-fanout", "audit", max_wait_time=10) as receiver:
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = receiver.receive_messages(max_message_count=5, max_wait_time=2)
        for m in got:
            receiver.complete_message(m)
    assert [EventGridEvent.from_json(m).data["track"] for m in got] == [5]


def test_events_flow_into_an_event_hub(eg):
    topic = create_topic(eg, name("to-hub"))
    subscribe(eg, topic["Name"], "hub-stream", {"endpointType": "EventHub", "properties": {"eventHubName": "eg-stream"}})
    with publisher(topic) as client:
        client.send([upload(i) for i in range(4)])
    consumer = EventHubConsumerClient.from_connection_string(eh_support.conn_str(eg, "eg-stream"), consumer_group="$Default", **eh_support.CLIENT_KWARGS)
    collector = eh_support.Collector(consumer, starting_position="-1")
    try:
        got = [event for _, event in collector.wait_for(4, timeout=20)]
    finally:
        collector.stop()
    parsed = [EventGridEvent.from_json(e) for e in got]
    assert sorted(e.data["track"] for e in parsed) == [0, 1, 2, 3], "an array of one event per EventData, parsed by the SDK"
    assert got[0].properties[b"aeg-subscription-name"] == b"HUB-STREAM"


def test_an_unknown_destination_is_retried_then_delivered_once_it_exists(eg):
    queue = QueueClient.from_connection_string(eg.conn_str(), name("later"), message_decode_policy=TextBase64DecodePolicy())
    topic = create_topic(eg, name("early"))
    subscribe(eg, topic["Name"], "waits", {"endpointType": "StorageQueue", "properties": {"queueName": queue.queue_name}})
    with publisher(topic) as client:
        client.send(upload(1))
    deadline = time.monotonic() + 10
    while metrics(eg, topic["Name"], "waits")["failedAttempts"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    m = metrics(eg, topic["Name"], "waits")
    assert m["failedAttempts"] == 1 and m["retryingEvents"] == 1 and "NotFound" in m["lastFailure"]
    queue.create_queue()
    eg.advance_clock(12)
    deadline = time.monotonic() + 10
    got = []
    while not got and time.monotonic() < deadline:
        got = list(queue.receive_messages())
        time.sleep(0.1)
    assert [EventGridEvent.from_json(m).data["track"] for m in got] == [1]


def test_an_https_webhook_is_used_once_its_ca_is_trusted(eg, hooks, tmp_path):
    ca, cert, key = local_ca(tmp_path)
    secure = hooks(tls=(cert, key))
    assert secure.url.startswith("https://")
    topic = create_topic(eg, name("secure"))
    r = admin(eg, "PUT", f"topics/{topic['Name']}/subscriptions/untrusted", {"destination": webhook_destination(secure.url)})
    assert r.status_code == 400 and "validation handshake failed" in r.json()["error"]["message"], "a local CA is not trusted by default"
    data = tmp_path / "data"
    data.mkdir()
    trusting = LapisServer(data_dir=data, log_dir=tmp_path, extra_args=["--webhook-ca", str(ca)]).start()
    try:
        topic = create_topic(trusting, "secure")
        subscribe(trusting, "secure", "trusted", webhook_destination(secure.url))
        with publisher(topic) as client:
            client.send(upload(1))
        assert [e["data"]["track"] for e in secure.wait_events(1)] == [1]
    finally:
        trusting.close()
