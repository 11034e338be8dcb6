"""Crash test: SIGKILL the server under concurrent load, restart it on the same
data directory, and check from the clients' side that nothing acknowledged is
lost and nothing settled comes back (DESIGN.md, "Durability contract").

Setup: one `lapis serve --durability strict` on a temp data dir; producer and
consumer threads use the official Python SDK (no SDK retries, so every
acknowledgement belongs to exactly one HTTP request). A killer SIGKILLs the
server at random moments and restarts it on the same ports and data dir;
clients simply keep trying through the outage.

Bookkeeping, per unique message text:
- acked send:   send_message returned (201)        -> must survive
- unknown send: send_message raised                 -> may or may not exist
- acked delete: delete_message returned (204)       -> must never come back
- other delete: raised (any error)                  -> may or may not be gone

After the load, one more SIGKILL + restart, then the queue is drained
(receive with a long visibility timeout and delete). Asserted:
- no message id appears twice in the drain;
- no text whose delete was acknowledged appears;
- every acked-sent text without an acked or attempted delete appears exactly once,
  with the message id its send returned;
- every drained text was really sent (acked or attempted), at most once;
- a text is never seen under two different message ids.

Run:  pytest tests/compat/test_crash.py -s      (about 70-90 s)
Knobs (env): LAPIS_CRASH_SECONDS (default 55), LAPIS_CRASH_KILLS (default 6).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Set, Tuple

import pytest
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.queue import QueueClient

from lapis_harness import LapisServer

QUEUE = "crash-test"
PRODUCERS = 3
CONSUMERS = 3
CONSUMER_VISIBILITY_S = 5  # short, so messages held at a crash come back soon
LOAD_SECONDS = float(os.environ.get("LAPIS_CRASH_SECONDS", "55"))
MIN_KILLS = 5
KILLS = max(MIN_KILLS, int(os.environ.get("LAPIS_CRASH_KILLS", "6")))
MAX_SENDS = 50_000  # hard bound on traffic
DRAIN_DEADLINE_S = 90.0

# No SDK retries: a retried send whose first attempt was persisted would be a
# legitimate client-side duplicate and blur what this test checks.
CLIENT_KW = dict(retry_total=0, connection_timeout=3, read_timeout=15)


def _client(server: LapisServer, **kw) -> QueueClient:
    return QueueClient.from_connection_string(server.conn_str(), QUEUE, **{**CLIENT_KW, **kw})


class Ledger:
    """Thread-safe client-side record of what was acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked_sent: Dict[str, str] = {}  # text -> message id from the send response
        self.unknown_sent: Set[str] = set()
        self.acked_deleted: Set[str] = set()
        self.delete_attempted: Set[str] = set()  # delete raised: outcome unknown / not done
        self.seen_ids: Dict[str, Set[str]] = defaultdict(set)  # text -> ids ever received
        self.errors: Counter = Counter()
        self.receives = 0

    def error(self, kind: str, exc: BaseException) -> None:
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            key = f"{kind}:{exc.status_code}"
        else:
            key = f"{kind}:{type(exc).__name__}"
        with self.lock:
            self.errors[key] += 1


def _producer(server: LapisServer, idx: int, ledger: Ledger, stop: threading.Event) -> None:
    qc = _client(server)
    seq = 0
    while not stop.is_set():
        with ledger.lock:
            if len(ledger.acked_sent) + len(ledger.unknown_sent) >= MAX_SENDS:
                break
        seq += 1
        text = f"p{idx}-{seq}-{uuid.uuid4().hex[:12]}"
        try:
            msg = qc.send_message(text)
        except (AzureError, OSError) as e:
            with ledger.lock:
                ledger.unknown_sent.add(text)
            ledger.error("send", e)
            time.sleep(0.05)
            continue
        with ledger.lock:
            ledger.acked_sent[text] = msg.id
    qc.close()


def _consumer(server: LapisServer, ledger: Ledger, stop: threading.Event) -> None:
    qc = _client(server)
    while not stop.is_set():
        got = []
        try:
            for m in qc.receive_messages(
                messages_per_page=16, max_messages=16, visibility_timeout=CONSUMER_VISIBILITY_S
            ):
                got.append(m)
        except (AzureError, OSError) as e:
            ledger.error("receive", e)
            if not got:
                time.sleep(0.05)
        with ledger.lock:
            ledger.receives += 1
            for m in got:
                ledger.seen_ids[m.content].add(m.id)
        if not got:
            time.sleep(0.02)
        for m in got:
            if stop.is_set():
                break
            try:
                qc.delete_message(m.id, m.pop_receipt)
            except (AzureError, OSError) as e:
                with ledger.lock:
                    ledger.delete_attempted.add(m.content)
                ledger.error("delete", e)
                continue
            with ledger.lock:
                ledger.acked_deleted.add(m.content)
    qc.close()


def _create_queue(server: LapisServer) -> None:
    qc = _client(server)
    try:
        qc.create_queue()
    except ResourceExistsError:
        pass
    finally:
        qc.close()


def _drain(server: LapisServer) -> Tuple[List[tuple], Optional[str]]:
    """Receive and delete everything. Returns ([(id, text)], error or None).
    Waits for messages still invisible from a consumer's receive before the
    last crash."""
    qc = _client(server, retry_total=3)
    drained: List[tuple] = []
    start = time.monotonic()
    last_got = time.monotonic()
    remaining = None
    error = None
    try:
        while time.monotonic() - start < DRAIN_DEADLINE_S:
            batch = list(
                qc.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=600)
            )
            for m in batch:
                drained.append((m.id, m.content))
                qc.delete_message(m.id, m.pop_receipt)
            if batch:
                last_got = time.monotonic()
                continue
            count = qc.get_queue_properties().approximate_message_count
            if count == 0:
                break
            # Messages remain but none is visible: wait for consumer
            # visibility timeouts to lapse (they are short), but not forever.
            if time.monotonic() - last_got > CONSUMER_VISIBILITY_S + 20:
                break
            time.sleep(0.5)
        remaining = qc.get_queue_properties().approximate_message_count
    except AzureError as e:
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        qc.close()
    print(f"[crash] drained {len(drained)} messages in {time.monotonic() - start:.1f}s; "
          f"approximate count afterwards: {remaining}; drain error: {error}")
    return drained, error


@pytest.mark.timeout(300)
def test_sigkill_under_load_loses_no_acked_message_and_resurrects_no_acked_delete(tmp_path):
    logging.getLogger("azure").setLevel(logging.CRITICAL)
    rng = random.Random(int(os.environ.get("LAPIS_CRASH_SEED", str(int(time.time())))))
    server = LapisServer(data_dir=tmp_path / "data", log_dir=tmp_path, durability="strict")
    t0 = time.monotonic()
    try:
        server.start()
        _create_queue(server)

        ledger = Ledger()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_producer, args=(server, i, ledger, stop), daemon=True, name=f"producer{i}")
            for i in range(PRODUCERS)
        ] + [
            threading.Thread(target=_consumer, args=(server, ledger, stop), daemon=True, name=f"consumer{i}")
            for i in range(CONSUMERS)
        ]
        for t in threads:
            t.start()

        # Killer: KILLS kills at random moments spread over LOAD_SECONDS.
        kills = 0
        outage = 0.0
        load_start = time.monotonic()
        mean_gap = LOAD_SECONDS / (KILLS + 1)
        while kills < KILLS:
            elapsed = time.monotonic() - load_start
            if elapsed > LOAD_SECONDS and kills >= MIN_KILLS:
                break
            time.sleep(rng.uniform(0.4 * mean_gap, 1.6 * mean_gap))
            server.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))  # clients hit a dead port for a moment
            t_restart = time.monotonic()
            server.start()
            outage += time.monotonic() - t_restart
            with ledger.lock:
                print(f"[crash] kill #{kills} at t={time.monotonic() - load_start:.1f}s: "
                      f"acked sends {len(ledger.acked_sent)}, acked deletes {len(ledger.acked_deleted)}")
        time.sleep(max(0.0, min(3.0, LOAD_SECONDS - (time.monotonic() - load_start))))

        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "client threads did not stop"

        # One more crash after the load, so every acknowledged operation has
        # been through at least one SIGKILL before we look.
        server.kill()
        kills += 1
        server.start()

        drained, drain_error = _drain(server)
    finally:
        log_tail = server.log_tail(40)
        server.close()

    acked_sent = ledger.acked_sent
    drained_ids = Counter(i for i, _ in drained)
    drained_texts = Counter(t for _, t in drained)
    id_of_drained_text = {t: i for i, t in drained}

    must_survive = {
        t for t in acked_sent if t not in ledger.acked_deleted and t not in ledger.delete_attempted
    }
    missing = sorted(t for t in must_survive if t not in drained_texts)
    duplicate_ids = sorted(i for i, c in drained_ids.items() if c > 1)
    duplicate_texts = sorted(t for t, c in drained_texts.items() if c > 1)
    resurrected = sorted(t for t in drained_texts if t in ledger.acked_deleted)
    phantom = sorted(t for t in drained_texts if t not in acked_sent and t not in ledger.unknown_sent)
    wrong_id = sorted(
        t for t in must_survive if t in id_of_drained_text and id_of_drained_text[t] != acked_sent[t]
    )
    split_ids = sorted(t for t, ids in ledger.seen_ids.items() if len(ids) > 1)
    acked_and_deleted = sum(1 for t in acked_sent if t in ledger.acked_deleted)

    summary = (
        f"[crash] run {time.monotonic() - t0:.1f}s, kills {kills} (restart outage total {outage:.1f}s)\n"
        f"[crash] sends: acked {len(acked_sent)}, unknown outcome {len(ledger.unknown_sent)}\n"
        f"[crash] receives {ledger.receives}, distinct texts received {len(ledger.seen_ids)}\n"
        f"[crash] deletes: acked {len(ledger.acked_deleted)} (of acked sends {acked_and_deleted}), "
        f"failed/unknown {len(ledger.delete_attempted)}\n"
        f"[crash] drained {len(drained)}: must-survive {len(must_survive)}, "
        f"from unknown sends {sum(1 for t in drained_texts if t in ledger.unknown_sent)}, "
        f"from failed deletes {sum(1 for t in drained_texts if t in ledger.delete_attempted)}\n"
        f"[crash] violations: missing {len(missing)}, duplicate ids {len(duplicate_ids)}, "
        f"duplicate texts {len(duplicate_texts)}, resurrected {len(resurrected)}, "
        f"phantom {len(phantom)}, wrong id {len(wrong_id)}, text under 2+ ids {len(split_ids)}\n"
        f"[crash] client errors: {dict(sorted(ledger.errors.items()))}\n"
        f"[crash] drain error: {drain_error}"
    )
    print(summary)

    assert kills >= MIN_KILLS + 1
    assert drain_error is None, f"draining the queue after the last restart failed: {drain_error}\n{summary}"
    assert len(acked_sent) > 0 and len(ledger.acked_deleted) > 0, f"no traffic got through\n{summary}\n{log_tail}"
    assert not missing, f"acknowledged sends lost after SIGKILL: {missing[:10]}\n{summary}"
    assert not resurrected, f"acknowledged deletes came back after SIGKILL: {resurrected[:10]}\n{summary}"
    assert not duplicate_ids, f"message ids drained twice: {duplicate_ids[:10]}\n{summary}"
    assert not duplicate_texts, f"one send became several messages: {duplicate_texts[:10]}\n{summary}"
    assert not phantom, f"drained texts that were never sent: {phantom[:10]}\n{summary}"
    assert not wrong_id, f"message id changed across restarts: {wrong_id[:10]}\n{summary}"
    assert not split_ids, f"one text received under several ids: {split_ids[:10]}\n{summary}"
