"""Event Grid namespace topics with the official `azure-eventgrid` SDK as a user
drives them: `EventGridPublisherClient(namespace_topic=...)` publishes CloudEvents and
`EventGridConsumerClient` receives them from a queue subscription under a lock, then
acknowledges, releases (now or with a delay), rejects and renews; a lapsed lock gives
the event out again, `maxDeliveryCount` receives dead-letter it to a blob read with
`azure-storage-blob`; wrong keys, unknown subscriptions and bad parameters get the
service's errors; what was acknowledged stays gone across a SIGKILL."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient
from azure.storage.blob import BlobServiceClient

from eg_support import admin, metrics, subscribe
from lapis_harness import LapisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    base = tmp_path_factory.mktemp("eventgrid-namespaces")
    data = base / "data"
    data.mkdir()
    server = LapisServer(data_dir=data, log_dir=base, blob=True).start()
    yield server
    server.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def namespace_topic(server: LapisServer, topic: str) -> dict:
    r = admin(server, "PUT", f"topics/{topic}", {"Kind": "Namespace"})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["Kind"] == "Namespace" and info["InputSchema"] == "CloudEventSchemaV1_0"
    return info


def queue(server: LapisServer, topic: str, sub: str, **properties) -> None:
    subscribe(server, topic, sub, {"endpointType": "Queue", "properties": properties}, **properties.pop("spec", {}))


def clients(info: dict, topic: str, sub: str, key: str | None = None):
    credential = AzureKeyCredential(key or info["Key1"])
    return (EventGridPublisherClient(info["Endpoint"], credential, namespace_topic=topic),
            EventGridConsumerClient(info["Endpoint"], credential, namespace_topic=topic, subscription=sub))


def queue_topic(server: LapisServer, prefix: str, sub: str):
    """A fresh namespace topic with queue subscription `sub`, and a publisher and a
    consumer for it: (topic, info, publisher, consumer)."""
    topic = name(prefix)
    info = namespace_topic(server, topic)
    queue(server, topic, sub)
    return (topic, info, *clients(info, topic, sub))


def played(i: int) -> CloudEvent:
    return CloudEvent(source="/music-share", type="MusicShare.TrackPlayed", data={"track": i})


def test_publish_receive_and_acknowledge(eg):
    topic, _, publisher, consumer = queue_topic(eg, "plays", "trending")
    with publisher, consumer:
        publisher.send([played(i) for i in range(3)])
        publisher.send(played(3))
        got = consumer.receive(max_events=10, max_wait_time=10)
        assert sorted(d.event.data["track"] for d in got) == [0, 1, 2, 3]
        assert all(d.broker_properties.delivery_count == 1 for d in got)
        assert got[0].event.type == "MusicShare.TrackPlayed"
        result = consumer.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])
        assert len(result.succeeded_lock_tokens) == 4 and not result.failed_lock_tokens
        again = consumer.acknowledge(lock_tokens=[got[0].broker_properties.lock_token])
        assert again.failed_lock_tokens[0].error.code == "TokenLost"
        started = time.monotonic()
        assert consumer.receive(max_events=5, max_wait_time=10) == []
        assert time.monotonic() - started >= 9, "an empty receive waits out its max wait time"
    m = metrics(eg, topic, "trending")
    assert (m["matchedEvents"], m["deliveredEvents"], m["retryingEvents"]) == (4, 4, 0)


def test_release_with_and_without_delay_reject_and_renew(eg):
    _, _, publisher, consumer = queue_topic(eg, "uploads", "work")
    with publisher, consumer:
        publisher.send([played(i) for i in range(3)])
        got = {d.event.data["track"]: d for d in consumer.receive(max_events=3, max_wait_time=10)}
        token = lambda i: got[i].broker_properties.lock_token  # noqa: E731
        assert consumer.release(lock_tokens=[token(0)]).succeeded_lock_tokens == [token(0)]
        assert consumer.release(lock_tokens=[token(1)], release_delay=10).succeeded_lock_tokens == [token(1)]
        assert consumer.reject(lock_tokens=[token(2)]).succeeded_lock_tokens == [token(2)]
        [back] = consumer.receive(max_events=10, max_wait_time=10)
        assert (back.event.data["track"], back.broker_properties.delivery_count) == (0, 2), "released at once, counted again"
        renewed = consumer.renew_locks(lock_tokens=[back.broker_properties.lock_token])
        assert renewed.succeeded_lock_tokens == [back.broker_properties.lock_token]
        eg.advance_clock(11)
        [delayed] = consumer.receive(max_events=10, max_wait_time=10)
        assert (delayed.event.data["track"], delayed.broker_properties.delivery_count) == (1, 2), "back after its delay"
        consumer.acknowledge(lock_tokens=[back.broker_properties.lock_token, delayed.broker_properties.lock_token])
        with pytest.raises(HttpResponseError) as bad:
            consumer.release(lock_tokens=[delayed.broker_properties.lock_token], release_delay=42)
        assert bad.value.status_code == 400


def test_a_lapsed_lock_redelivers_and_too_many_deliveries_dead_letter(eg):
    blobs = BlobServiceClient.from_connection_string(eg.conn_str())
    container = blobs.create_container(name("dead"))
    topic = name("lapsing")
    info = namespace_topic(eg, topic)
    r = admin(eg, "PUT", f"topics/{topic}/subscriptions/slow",
              {"destination": {"endpointType": "Queue", "properties": {"receiveLockDurationInSeconds": 60, "maxDeliveryCount": 2}},
               "deadLetterContainer": container.container_name})
    assert r.status_code == 201, r.text
    publisher, consumer = clients(info, topic, "slow")
    with publisher, consumer:
        publisher.send(played(7))
        [first] = consumer.receive(max_wait_time=10)
        eg.advance_clock(61)
        [second] = consumer.receive(max_wait_time=10)
        assert (second.event.id, second.broker_properties.delivery_count) == (first.event.id, 2)
        assert second.broker_properties.lock_token != first.broker_properties.lock_token
        assert consumer.acknowledge(lock_tokens=[first.broker_properties.lock_token]).failed_lock_tokens[0].error.code == "TokenLost"
        eg.advance_clock(61)
        assert consumer.receive(max_wait_time=10) == [], "received twice: dead-lettered, not given out again"
    deadline = time.monotonic() + 10
    while not (found := list(container.list_blobs())) and time.monotonic() < deadline:
        time.sleep(0.2)
    [blob] = found
    assert blob.name.startswith(f"lapis/{topic}/slow/"), blob.name
    [record] = json.loads(container.download_blob(blob.name).readall())
    assert record["event"]["data"] == {"track": 7}
    assert record["deadletterProperties"]["deadletterreason"] == "Maximum delivery attempts was exceeded."
    assert record["deadletterProperties"]["deliveryattempts"] == 2


def test_errors_a_client_sees(eg):
    topic = name("strict")
    info = namespace_topic(eg, topic)
    queue(eg, topic, "work")
    wrong = AzureKeyCredential("bm90IHRoZSBrZXk=")
    with EventGridPublisherClient(info["Endpoint"], wrong, namespace_topic=topic) as p, pytest.raises(ClientAuthenticationError):
        p.send(played(1))
    with EventGridConsumerClient(info["Endpoint"], wrong, namespace_topic=topic, subscription="work") as c, pytest.raises(ClientAuthenticationError):
        c.receive(max_wait_time=10)
    _, consumer = clients(info, topic, "nosuch")
    with consumer, pytest.raises(ResourceNotFoundError):
        consumer.receive(max_wait_time=10)
    _, consumer = clients(info, topic, "work")
    with consumer:
        with pytest.raises(HttpResponseError) as too_many:
            consumer.receive(max_events=101, max_wait_time=10)
        assert too_many.value.status_code == 400
        with pytest.raises(HttpResponseError) as too_short:
            consumer.receive(max_wait_time=5)
        assert too_short.value.status_code == 400
    publisher, _ = clients(info, topic, "work")
    with publisher, pytest.raises(HttpResponseError) as big:
        publisher.send(CloudEvent(source="/s", type="T", data="x" * (1 << 20)))
    assert big.value.status_code == 413
    r = admin(eg, "PUT", f"topics/{name('custom')}", {"InputSchema": "CloudEventSchemaV1_0"})
    custom = r.json()["Name"]
    r = admin(eg, "PUT", f"topics/{custom}/subscriptions/pull", {"destination": {"endpointType": "Queue", "properties": {}}})
    assert r.status_code == 400 and "namespace topics" in r.json()["error"]["message"]


def test_acknowledged_events_stay_gone_after_a_sigkill(eg):
    topic, info, publisher, consumer = queue_topic(eg, "durable", "work")
    with publisher, consumer:
        publisher.send([played(i) for i in range(4)])
        got = consumer.receive(max_events=2, max_wait_time=10)
        consumer.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])
        done = {d.event.data["track"] for d in got}
    eg.kill()
    eg.start()
    publisher, consumer = clients(info, topic, "work")
    with consumer:
        rest = consumer.receive(max_events=10, max_wait_time=10)
    assert sorted(d.event.data["track"] for d in rest) == sorted({0, 1, 2, 3} - done)
