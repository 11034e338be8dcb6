"""What the Event Hubs compatibility tests share: the emulator-style connection
string, a server with hubs declared in the Event Hubs emulator's Config.json, and a
consumer that collects events in a background thread for a bounded time."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from azure.eventhub import EventHubConsumerClient, EventHubProducerClient

from lapis_harness import LapisServer

KEY_NAME = "RootManageSharedAccessKey"
KEY = "SAS_KEY_VALUE"
CLIENT_KWARGS = dict(retry_total=0)


def conn_str(server: LapisServer, hub: str, key: str = KEY) -> str:
    return (
        f"Endpoint=sb://localhost:{server.amqp_port};SharedAccessKeyName={KEY_NAME};"
        f"SharedAccessKey={key};UseDevelopmentEmulator=true;EntityPath={hub}"
    )


def hubs_config(hubs: List[Dict]) -> dict:
    """The Event Hubs emulator's Config.json declaring `hubs`."""
    return {"UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": hubs}], "LoggingConfig": {"Type": "File"}}}


def start_server(base: Path, config: dict, blob: bool = False) -> LapisServer:
    path = base / "config.json"
    path.write_text(json.dumps(config, indent=2))
    data = base / "data"
    data.mkdir()
    return LapisServer(data_dir=data, log_dir=base, amqp=True, blob=blob, config=path).start()


def producer(server: LapisServer, hub: str, **kw) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(conn_str(server, hub), **{**CLIENT_KWARGS, **kw})


def consumer(server: LapisServer, hub: str, group: str = "$Default", **kw) -> EventHubConsumerClient:
    return EventHubConsumerClient.from_connection_string(conn_str(server, hub), consumer_group=group, **{**CLIENT_KWARGS, **kw})


class Collector:
    """Runs `client.receive(...)` in a thread, keeping every event (and error) it
    gets, until `stop()` or the deadline."""

    def __init__(self, client: EventHubConsumerClient, **receive_kw) -> None:
        self.client = client
        self.events: List = []
        self.errors: List[Exception] = []
        self.lock = threading.Lock()

        def on_event(ctx, event):
            if event is not None:
                with self.lock:
                    self.events.append((ctx.partition_id, event))

        def on_error(ctx, error):
            with self.lock:
                self.errors.append(error)

        self.thread = threading.Thread(target=lambda: client.receive(on_event=on_event, on_error=on_error, **receive_kw), daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 15.0) -> List:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            return list(self.events)

    def wait_for_error(self, timeout: float = 15.0) -> Optional[Exception]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.errors:
                    return self.errors[0]
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self.client.close()
        self.thread.join(timeout=20)


def bodies(events) -> List[str]:
    return [e.body_as_str() for _, e in events]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
