"""What the Event Grid tests share: a server, topics made through the admin API, and
the publisher client a user would build from a topic's endpoint and key."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import requests
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient

from lapis_harness import LapisServer
from sb_support import sas_token


def start_server(base: Path) -> LapisServer:
    data = base / "data"
    data.mkdir()
    return LapisServer(data_dir=data, log_dir=base).start()


def admin(server: LapisServer, method: str, path: str, body=None) -> requests.Response:
    url = f"{server.http_url}/admin/eventgrid/{path}"
    return requests.request(method, url, json=body, headers={"Authorization": sas_token(url)}, timeout=10)


def create_topic(server: LapisServer, name: str, schema: str = "EventGridSchema") -> dict:
    r = admin(server, "PUT", f"topics/{urllib.parse.quote(name, safe='')}", {"InputSchema": schema})
    assert r.status_code == 201, f"creating topic {name}: {r.status_code} {r.text[:300]}"
    return r.json()


def topic(server: LapisServer, name: str) -> dict:
    r = admin(server, "GET", f"topics/{urllib.parse.quote(name, safe='')}")
    assert r.status_code == 200, f"topic {name}: {r.status_code} {r.text[:300]}"
    return r.json()


def publisher(info: dict, key: str | None = None) -> EventGridPublisherClient:
    return EventGridPublisherClient(info["Endpoint"], AzureKeyCredential(key or info["Key1"]))


def webhook_destination(url: str, **properties) -> dict:
    return {"endpointType": "WebHook", "properties": {"endpointUrl": url, **properties}}


def subscribe(server: LapisServer, topic_name: str, name: str, destination: dict, **spec) -> dict:
    """Creates an event subscription through the admin API (Azure's property names)."""
    r = admin(server, "PUT", f"topics/{topic_name}/subscriptions/{name}", {"destination": destination, **spec})
    assert r.status_code == 201, f"creating subscription {name}: {r.status_code} {r.text[:500]}"
    return r.json()


def unsubscribe(server: LapisServer, topic_name: str, name: str) -> None:
    r = admin(server, "DELETE", f"topics/{topic_name}/subscriptions/{name}")
    assert r.status_code == 204, f"deleting subscription {name}: {r.status_code} {r.text[:300]}"


def metrics(server: LapisServer, topic_name: str, name: str) -> dict:
    r = admin(server, "GET", f"topics/{topic_name}/subscriptions/{name}")
    assert r.status_code == 200, f"subscription {name}: {r.status_code} {r.text[:300]}"
    return r.json()["deliveryMetrics"]
