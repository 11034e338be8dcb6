"""Event Grid crash test: publishers send with the official `azure-eventgrid` SDK
while the server is SIGKILLed at random moments and started again on the same data
directory and ports; a webhook run by the test (it outlives every crash) counts what
it gets. From the clients' side (DESIGN.md, "Durability contract"):

- every event whose publish was answered 200 is delivered to the webhook at least
  once, after however many crashes;
- repeats (delivered, then the server died before it recorded so) are counted and
  reported, not failed: delivery is at least once, as in Azure;
- the subscription is validated once, when it is made, not again after a restart.

Run:  pytest tests/compat/test_eventgrid_crash.py -s     (about 40 s)
Knobs (env): LAPIS_EG_CRASH_SECONDS (default 25), LAPIS_EG_CRASH_KILLS (default 5).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import Counter
from typing import List, Set

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from eg_support import create_topic, metrics, start_server, subscribe, webhook_destination
from eg_webhook import Webhook
from lapis_harness import kill_at_random

pytestmark = pytest.mark.timeout(300)

PUBLISHERS = 2
BATCH = 20
LOAD_SECONDS = float(os.environ.get("LAPIS_EG_CRASH_SECONDS", "25"))
KILLS = max(5, int(os.environ.get("LAPIS_EG_CRASH_KILLS", "5")))
MAX_BATCHES_PER_PUBLISHER = 2_000
DELIVERY_DEADLINE_S = 60.0

logging.getLogger("azure").setLevel(logging.CRITICAL)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: Set[str] = set()
        self.failed_batches = 0

    def ack(self, ids: List[str]) -> None:
        with self.lock:
            self.acked.update(ids)

    def failed(self) -> None:
        with self.lock:
            self.failed_batches += 1


def publisher(info: dict, ledger: Ledger, stop: threading.Event) -> None:
    """Publishes batches of uniquely numbered events; a batch counts once the SDK
    returns from `send` (the service answered 200). With SDK retries off, a failed
    batch is simply not counted: its fate is unknown to the client."""
    client = EventGridPublisherClient(info["Endpoint"], AzureKeyCredential(info["Key1"]), retry_total=0)
    try:
        for _ in range(MAX_BATCHES_PER_PUBLISHER):
            if stop.is_set():
                return
            ids = [uuid.uuid4().hex for _ in range(BATCH)]
            events = [EventGridEvent(subject="tracks/crash", event_type="MusicShare.TrackUploaded", data={"n": i}, data_version="1", id=i) for i in ids]
            try:
                client.send(events)
                ledger.ack(ids)
            except Exception:  # noqa: BLE001 - the server is down; try again shortly
                ledger.failed()
                time.sleep(0.05)
    finally:
        client.close()


def test_sigkill_under_load_delivers_every_acknowledged_event(tmp_path):
    server = start_server(tmp_path)
    hook = Webhook()
    ledger = Ledger()
    stop = threading.Event()
    try:
        info = create_topic(server, "crash")
        subscribe(server, "crash", "crash-hook", webhook_destination(hook.url, maxEventsPerBatch=50))
        threads = [threading.Thread(target=publisher, args=(info, ledger, stop), daemon=True) for _ in range(PUBLISHERS)]
        for t in threads:
            t.start()
        kills = kill_at_random(server, KILLS, LOAD_SECONDS, seed=6)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a publisher hung"
        # One more crash with everything quiet; what was accepted must still arrive.
        server.kill()
        server.start()
        acked = set(ledger.acked)
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        while time.monotonic() < deadline:
            got = {e["id"] for e in hook.events()}
            if acked <= got:
                break
            time.sleep(0.25)
        final_metrics = metrics(server, "crash", "crash-hook")
    finally:
        stop.set()
        server.close()
        hook.close()

    counts = Counter(e["id"] for e in hook.events())
    repeats = sum(c - 1 for c in counts.values() if c > 1)
    print(
        f"kills={kills} acked={len(acked)} failed_batches={ledger.failed_batches} delivered_distinct={len(counts)} "
        f"repeats={repeats} ({repeats / max(1, len(counts)):.2%}) metrics_since_last_start={final_metrics}"
    )
    assert len(acked) > 500, "the load was too small to mean anything"
    lost = acked - set(counts)
    assert not lost, f"{len(lost)} acknowledged events were never delivered, e.g. {sorted(lost)[:5]}"
    assert len(hook.handshakes()) == 1, "validated once, when the subscription was made"
