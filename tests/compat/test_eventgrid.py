"""Event Grid publishing with the official `azure-eventgrid` SDK: custom topics of
either schema made through the admin API, `EventGridPublisherClient` with a key or a
SAS token, Event Grid events, CloudEvents and dicts, and the service's answers to a
wrong key, an expired token, an unknown topic, a request over 1 MB, malformed JSON and
missing fields; accepted events survive a SIGKILL."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from eg_support import admin, create_topic, publisher, start_server, topic

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("eventgrid"))
    yield server
    server.close()


def grid_event(i: int = 0, data=None) -> EventGridEvent:
    return EventGridEvent(subject=f"tracks/{i}", event_type="MusicShare.TrackUploaded", data=data or {"track": i}, data_version="1.0")


def test_event_grid_events_are_accepted_and_counted(eg):
    info = create_topic(eg, "uploads")
    assert info["InputSchema"] == "EventGridSchema"
    assert info["Endpoint"].endswith("/topics/uploads/api/events")
    with publisher(info) as client:
        client.send([grid_event(i) for i in range(3)])
        client.send(grid_event(3))
    with publisher(info, key=info["Key2"]) as client:
        client.send({"id": "d1", "subject": "tracks/9", "eventType": "MusicShare.TrackUploaded", "eventTime": "2026-12-01T10:00:00Z", "data": {}, "dataVersion": "1"})
    assert topic(eg, "uploads")["PublishedEvents"] == 5


def test_cloud_events_single_list_and_binary(eg):
    info = create_topic(eg, "plays", schema="CloudEventSchemaV1_0")
    with publisher(info) as client:
        client.send(CloudEvent(source="/music-share", type="MusicShare.TrackPlayed", data={"track": 1}))
        client.send([CloudEvent(source="/music-share", type="MusicShare.TrackPlayed", data={"track": i}, extensions={"region": "eu"}) for i in range(2)])
        client.send(CloudEvent(source="/music-share", type="MusicShare.Waveform", data=b"\x00\x01bytes", datacontenttype="application/octet-stream"))
    assert topic(eg, "plays")["PublishedEvents"] == 4


def test_a_sas_token_publishes_until_it_expires(eg):
    info = create_topic(eg, "tokens")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    token = generate_sas(info["Endpoint"], info["Key1"], later)
    with EventGridPublisherClient(info["Endpoint"], AzureSasCredential(token)) as client:
        client.send(grid_event())
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    expired = generate_sas(info["Endpoint"], info["Key1"], earlier)
    with EventGridPublisherClient(info["Endpoint"], AzureSasCredential(expired)) as client:
        with pytest.raises(ClientAuthenticationError, match="expired"):
            client.send(grid_event())
    forged = generate_sas(info["Endpoint"], "bm90IHRoZSB0b3BpYydzIGtleQ==", later)
    with EventGridPublisherClient(info["Endpoint"], AzureSasCredential(forged)) as client:
        with pytest.raises(ClientAuthenticationError):
            client.send(grid_event())
    assert topic(eg, "tokens")["PublishedEvents"] == 1


def test_a_wrong_key_an_unknown_topic_and_a_wrong_schema_are_refused(eg):
    info = create_topic(eg, "guarded")
    with publisher(info, key="bm90IHRoZSB0b3BpYydzIGtleQ==") as client:
        with pytest.raises(ClientAuthenticationError):
            client.send(grid_event())
    elsewhere = dict(info, Endpoint=info["Endpoint"].replace("/guarded/", "/no-such-topic/"))
    with publisher(elsewhere) as client:
        with pytest.raises(ResourceNotFoundError):
            client.send(grid_event())
    with publisher(info) as client:
        with pytest.raises(HttpResponseError) as e:
            client.send(CloudEvent(source="/music-share", type="MusicShare.TrackPlayed", data={}))
        assert e.value.status_code == 400
    assert topic(eg, "guarded")["PublishedEvents"] == 0


def test_a_request_over_one_megabyte_is_413_and_nothing_lands(eg):
    info = create_topic(eg, "large")
    with publisher(info) as client:
        with pytest.raises(HttpResponseError) as e:
            client.send([grid_event(0, data={"blob": "x" * 600_000}), grid_event(1, data={"blob": "y" * 600_000})])
        assert e.value.status_code == 413
        client.send(grid_event(2, data={"blob": "z" * 900_000}))
    assert topic(eg, "large")["PublishedEvents"] == 1


def test_malformed_json_and_missing_fields_get_400_with_the_error_body(eg):
    info = create_topic(eg, "strict")
    url = info["Endpoint"] + "?api-version=2018-01-01"
    headers = {"aeg-sas-key": info["Key1"], "Content-Type": "application/json"}
    r = requests.post(url, data=b'[{"id": "1",', headers=headers, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest", r.text
    missing = [{"id": "1", "subject": "s", "eventTime": "2026-12-01T10:00:00Z", "data": {}}]
    r = requests.post(url, json=missing, headers=headers, timeout=10)
    assert r.status_code == 400 and "eventType" in r.json()["error"]["message"], r.text
    r = requests.post(url, json=[], headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 401, r.text
    assert topic(eg, "strict")["PublishedEvents"] == 0


def test_topics_are_listed_and_deleted(eg):
    create_topic(eg, "short-lived")
    names = [t["Name"] for t in admin(eg, "GET", "topics").json()["Topics"]]
    assert "short-lived" in names
    assert admin(eg, "PUT", "topics/short-lived", {"InputSchema": "EventGridSchema"}).status_code == 409
    assert admin(eg, "DELETE", "topics/short-lived").status_code == 204
    assert admin(eg, "GET", "topics/short-lived").status_code == 404
    assert admin(eg, "PUT", "topics/x", {}).status_code == 400, "names are 3-50 characters"


def test_accepted_events_and_topics_survive_a_sigkill(tmp_path):
    server = start_server(tmp_path)
    try:
        info = create_topic(server, "durable")
        with publisher(info) as client:
            for i in range(10):
                client.send([grid_event(i), grid_event(i + 100)])
        server.kill()
        server.start()
        after = topic(server, "durable")
        assert after["PublishedEvents"] == 20
        assert (after["Key1"], after["Key2"]) == (info["Key1"], info["Key2"])
        with publisher(after) as client:
            client.send(grid_event(999))
        assert topic(server, "durable")["PublishedEvents"] == 21
    finally:
        server.close()
