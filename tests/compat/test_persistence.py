"""Durability through the SDK: state written before a SIGTERM or a SIGKILL is
there after a restart on the same data directory.

Each test runs its own server on a fresh temp data dir (`lapis_factory`). The
injected clock starts again at wall-clock time after a restart, so visibility
deadlines that were set before the stop are checked with `advance_clock` on
the restarted server."""

from __future__ import annotations

import datetime as dt
import signal

from azure.storage.queue import (
    AccessPolicy,
    CorsRule,
    Metrics,
    QueueAnalyticsLogging,
    RetentionPolicy,
)

from lapis_harness import parse_iso, service_client, unique_name

ORIGIN = "https://persist.example.com"


def _utc(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


POLICIES = {
    "readers": AccessPolicy(permission="r", start=_utc(2024, 1, 1), expiry=_utc(2035, 1, 1)),
    "workers": AccessPolicy(permission="raup", expiry=_utc(2036, 6, 30, 12, 0, 0)),
}


def _set_properties(svc):
    svc.set_service_properties(
        analytics_logging=QueueAnalyticsLogging(read=True, write=True, delete=False, retention_policy=RetentionPolicy(enabled=True, days=4)),
        hour_metrics=Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=9)),
        minute_metrics=Metrics(enabled=False),
        cors=[CorsRule([ORIGIN], ["GET", "POST"], allowed_headers=["x-ms-*"], exposed_headers=["x-ms-meta-*"], max_age_in_seconds=77)],
    )


def _check_properties(svc):
    props = svc.get_service_properties()
    lg = props["analytics_logging"]
    assert (lg.read, lg.write, lg.delete) == (True, True, False)
    assert (lg.retention_policy.enabled, lg.retention_policy.days) == (True, 4)
    hm = props["hour_metrics"]
    assert (hm.enabled, hm.include_apis, hm.retention_policy.days) == (True, True, 9)
    assert props["minute_metrics"].enabled is False
    assert len(props["cors"]) == 1
    rule = props["cors"][0]
    assert (rule.allowed_origins, rule.allowed_methods, rule.max_age_in_seconds) == (ORIGIN, "GET,POST", 77)
    assert rule.allowed_headers == "x-ms-*" and rule.exposed_headers == "x-ms-meta-*"


def _check_acl(qc):
    acl = qc.get_queue_access_policy()
    assert set(acl) == set(POLICIES)
    assert acl["readers"].permission == "r"
    assert parse_iso(acl["readers"].start) == _utc(2024, 1, 1)
    assert parse_iso(acl["readers"].expiry) == _utc(2035, 1, 1)
    assert acl["workers"].permission == "raup"
    assert parse_iso(acl["workers"].expiry) == _utc(2036, 6, 30, 12, 0, 0)


def _populate(svc):
    """Write the scenario; return what must be found after a restart."""
    main = unique_name("main")
    side = unique_name("side")
    gone = unique_name("gone")
    ttl = unique_name("ttl")

    mq = svc.create_queue(main, metadata={"team": "core", "tier": "gold"})
    mq.set_queue_access_policy(POLICIES)
    sq = svc.create_queue(side)
    svc.create_queue(gone).send_message("lost with its queue")
    svc.delete_queue(gone)
    tq = svc.create_queue(ttl)
    _set_properties(svc)

    # main: one dequeued once (visible again 60 s later), two plain ones that
    # were received and put back, one leased for an hour (its pop receipt must
    # survive), one invisible for an hour
    dequeued = mq.send_message("dequeued-once")
    got = mq.receive_message(visibility_timeout=60)
    assert got.id == dequeued.id
    plain1 = mq.send_message("plain-1 <&> ünï")
    plain2 = mq.send_message("   ")
    leased = mq.send_message("leased")
    peeked_ids = [m.id for m in mq.peek_messages(max_messages=32)]
    assert peeked_ids == [plain1.id, plain2.id, leased.id]
    lease = mq.receive_messages(messages_per_page=32, visibility_timeout=3600).by_page()
    leased_msgs = [m for m in next(lease)]
    # plain1, plain2 and leased were all received; put the two plain ones back
    by_id = {m.id: m for m in leased_msgs}
    assert set(by_id) == {plain1.id, plain2.id, leased.id}
    mq.update_message(by_id[plain1.id], visibility_timeout=0)
    mq.update_message(by_id[plain2.id], visibility_timeout=0)
    hidden = mq.send_message("hidden-for-an-hour", visibility_timeout=3600)

    # side: one deleted, one kept
    to_delete = sq.send_message("deleted")
    kept = sq.send_message("kept")
    r = sq.receive_message(visibility_timeout=60)
    assert r.id == to_delete.id
    sq.delete_message(r)
    sq.update_message(kept, content="kept-updated", visibility_timeout=0)  # Put's receipt allows update

    # ttl: expires 600 s after insertion
    short = tq.send_message("short-lived", time_to_live=600)

    return dict(
        main=main, side=side, gone=gone, ttl=ttl,
        dequeued=dequeued.id, plain1=plain1.id, plain2=plain2.id,
        leased=leased.id, leased_receipt=by_id[leased.id].pop_receipt,
        hidden=hidden.id, kept=kept.id, short=short.id,
    )


def _verify(server, svc, s):
    names = {q.name: q for q in svc.list_queues(include_metadata=True)}
    assert s["main"] in names and s["side"] in names and s["ttl"] in names
    assert s["gone"] not in names, "deleted queue came back"
    assert names[s["main"]].metadata == {"team": "core", "tier": "gold"}

    mq = svc.get_queue_client(s["main"])
    sq = svc.get_queue_client(s["side"])
    tq = svc.get_queue_client(s["ttl"])
    assert mq.get_queue_properties().metadata == {"team": "core", "tier": "gold"}
    _check_acl(mq)
    _check_properties(svc)

    # counts include invisible messages
    assert mq.get_queue_properties().approximate_message_count == 5
    assert sq.get_queue_properties().approximate_message_count == 1

    # side: the deleted message stays deleted, the update survived
    side_msgs = sq.peek_messages(max_messages=32)
    assert [(m.id, m.content) for m in side_msgs] == [(s["kept"], "kept-updated")]

    # ttl message still there (600 s not yet elapsed)
    assert [m.id for m in tq.peek_messages()] == [s["short"]]

    # the lease taken before the stop is still held, and its receipt still works
    mq.update_message(s["leased"], s["leased_receipt"], visibility_timeout=3600)

    # 61 s later the once-dequeued message is visible again; hidden/leased are not
    server.advance_clock(61)
    peeked = mq.peek_messages(max_messages=32)
    contents = {m.id: (m.content, m.dequeue_count) for m in peeked}
    assert set(contents) == {s["dequeued"], s["plain1"], s["plain2"]}, [m.content for m in peeked]
    assert contents[s["dequeued"]] == ("dequeued-once", 1)
    assert contents[s["plain1"]] == ("plain-1 <&> ünï", 1)
    assert contents[s["plain2"]] == ("   ", 1)

    # an hour later the invisible ones show up with their dequeue counts; the
    # short-lived message has expired
    server.advance_clock(3600)
    peeked = {m.id: (m.content, m.dequeue_count) for m in mq.peek_messages(max_messages=32)}
    assert peeked.get(s["hidden"]) == ("hidden-for-an-hour", 0)
    assert peeked.get(s["leased"]) == ("leased", 1)
    assert len(peeked) == 5
    assert tq.peek_messages() == [], "TTL kept counting across the restart"


def test_state_survives_sigterm_restart(lapis_factory):
    server = lapis_factory()
    svc = service_client(server)
    scenario = _populate(svc)
    svc.close()

    rc = server.stop(signal.SIGTERM)
    assert rc == 0, f"graceful SIGTERM shutdown should exit 0, got {rc}"
    server.start()
    _verify(server, service_client(server), scenario)


def test_state_survives_sigkill_restart(lapis_factory):
    server = lapis_factory()
    svc = service_client(server)
    scenario = _populate(svc)
    svc.close()

    server.kill()  # no chance to flush: everything acknowledged must be on disk
    server.start()
    _verify(server, service_client(server), scenario)


def test_acknowledged_messages_survive_sigkill(lapis_factory):
    server = lapis_factory()
    svc = service_client(server)
    q = svc.create_queue(unique_name("bulk"), metadata={"kind": "bulk"})
    sent = {}
    for i in range(60):
        m = q.send_message(f"bulk-{i:03d}")
        sent[m.id] = f"bulk-{i:03d}"
    received = list(q.receive_messages(max_messages=12, messages_per_page=12, visibility_timeout=30))
    assert len(received) == 12
    deleted = set()
    for m in received[:6]:
        q.delete_message(m)
        deleted.add(m.id)
    redelivered = {m.id for m in received[6:]}
    server.kill()

    server.start()
    q = service_client(server).get_queue_client(q.queue_name)
    assert q.get_queue_properties().metadata == {"kind": "bulk"}
    assert q.get_queue_properties().approximate_message_count == 54
    server.advance_clock(31)
    got = list(q.receive_messages(messages_per_page=32, visibility_timeout=300))
    got_ids = {m.id for m in got}
    assert len(got) == 54 and len(got_ids) == 54, "each surviving message exactly once"
    assert got_ids == set(sent) - deleted
    for m in got:
        assert m.content == sent[m.id]
        assert m.dequeue_count == (2 if m.id in redelivered else 1), (m.content, m.dequeue_count)


def test_two_crash_cycles(lapis_factory):
    server = lapis_factory()
    q = service_client(server).create_queue(unique_name("cyc"))
    first = [q.send_message(f"a{i}").id for i in range(5)]
    server.kill()

    server.start()
    q = service_client(server).get_queue_client(q.queue_name)
    second = [q.send_message(f"b{i}").id for i in range(5)]
    m = q.receive_message(visibility_timeout=600)
    assert m.id == first[0]
    q.delete_message(m)
    server.kill()

    server.start()
    q = service_client(server).get_queue_client(q.queue_name)
    ids = [m.id for m in q.peek_messages(max_messages=32)]
    assert ids == first[1:] + second
    server.stop()
    server.start()
    q = service_client(server).get_queue_client(q.queue_name)
    assert [m.id for m in q.peek_messages(max_messages=32)] == first[1:] + second
