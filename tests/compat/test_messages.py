"""Message operations through the official Python SDK: send, receive, peek,
delete, update, clear, visibility and TTL (via the injected clock), size
limits, parameter validation and the SDK's base64 encode/decode policies."""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from lapis_harness import assert_each_fails, assert_storage_error, capture_response, unique_name

SEVEN_DAYS = 7 * 24 * 3600


def _close_to(actual: dt.datetime, expected: dt.datetime, tolerance_s: float = 5.0) -> bool:
    return abs((actual - expected).total_seconds()) <= tolerance_s


# --------------------------------------------------------------------------- send
def test_send_returns_message_fields(queue, lapis):
    seen = {}
    msg = queue.send_message("hello", raw_response_hook=capture_response(seen))
    assert seen["status"] == 201
    assert msg.id and msg.pop_receipt
    uuid.UUID(msg.id)  # Azure message ids are GUIDs
    assert isinstance(msg.inserted_on, dt.datetime)
    assert _close_to(msg.inserted_on, lapis.server_now())
    assert (msg.expires_on - msg.inserted_on).total_seconds() == SEVEN_DAYS, "default TTL is 7 days"
    assert _close_to(msg.next_visible_on, msg.inserted_on, 1), "default visibility timeout 0"
    assert msg.content == "hello"


def test_send_with_visibility_and_ttl_sets_times(queue):
    msg = queue.send_message("later", visibility_timeout=120, time_to_live=3600)
    assert (msg.expires_on - msg.inserted_on).total_seconds() == 3600
    assert (msg.next_visible_on - msg.inserted_on).total_seconds() == pytest.approx(120, abs=1)
    assert queue.peek_messages() == [], "message is invisible for 120 s"


CONTENTS = [
    "plain text",
    "a & b < c > d",
    '<tag attr="1">&amp; \'single\' "double"</tag>',
    "]]> <![CDATA[ x ]]>",
    "unicode: héllo wörld ✓ 日本語 🎉",
    "   \t\n  ",
    "",
    "  leading and trailing  ",
    "line1\nline2\n\ttabbed",
    '{"json": [1, 2, {"k": "v"}]}',
    "%2F+plus=equals?query#hash",
]


@pytest.mark.parametrize("content", CONTENTS, ids=[f"c{i}" for i in range(len(CONTENTS))])
def test_content_round_trips(queue, content):
    queue.send_message(content)
    peeked = queue.peek_messages()
    assert len(peeked) == 1
    assert peeked[0].content == content
    received = queue.receive_message()
    assert received is not None
    assert received.content == content
    queue.delete_message(received)


# --------------------------------------------------------------------------- receive
def test_receive_single_and_empty(queue):
    assert queue.receive_message() is None
    sent = queue.send_message("one")
    got = queue.receive_message()
    assert got.id == sent.id
    assert got.content == "one"
    assert got.dequeue_count == 1
    assert got.pop_receipt
    assert queue.receive_message() is None, "received message is invisible (default 30 s)"


def test_receive_is_fifo_for_visible_messages(queue):
    for i in range(6):
        queue.send_message(f"m{i}")
    order = []
    for _ in range(6):
        m = queue.receive_message(visibility_timeout=60)
        order.append(m.content)
    assert order == [f"m{i}" for i in range(6)]


def test_receive_32_per_page(queue):
    sent = {queue.send_message(f"msg-{i}").id for i in range(40)}
    pages = queue.receive_messages(messages_per_page=32, visibility_timeout=60).by_page()
    first = list(next(pages))
    assert len(first) == 32, "numofmessages=32 returns 32 when available"
    second = list(next(pages))
    assert len(second) == 8
    with pytest.raises(StopIteration):
        next(pages)
    ids = [m.id for m in first + second]
    assert len(set(ids)) == 40 and set(ids) == sent
    assert all(m.dequeue_count == 1 for m in first + second)


def test_receive_max_messages(queue):
    for i in range(10):
        queue.send_message(f"m{i}")
    got = list(queue.receive_messages(max_messages=4, messages_per_page=3, visibility_timeout=60))
    assert [m.content for m in got] == ["m0", "m1", "m2", "m3"]
    peeked = queue.peek_messages(max_messages=32)
    assert [m.content for m in peeked] == [f"m{i}" for i in range(4, 10)]
    assert queue.get_queue_properties().approximate_message_count == 10


def test_receive_visibility_timeout_and_expiry(queue, lapis, advance_clock):
    queue.send_message("vt")
    m = queue.receive_message(visibility_timeout=30)
    assert m.dequeue_count == 1
    assert _close_to(m.next_visible_on, lapis.server_now() + dt.timedelta(seconds=30))
    assert queue.peek_messages() == []
    assert queue.receive_message() is None
    advance_clock(20)
    assert queue.receive_message() is None, "still invisible after 20 of 30 s"
    advance_clock(11)
    again = queue.receive_message(visibility_timeout=30)
    assert again is not None and again.id == m.id
    assert again.dequeue_count == 2
    assert again.pop_receipt != m.pop_receipt


def test_dequeue_count_increments_on_redelivery(queue, advance_clock):
    sent = queue.send_message("redeliver")
    for expected in range(1, 5):
        m = queue.receive_message(visibility_timeout=5)
        assert m is not None and m.id == sent.id
        assert m.dequeue_count == expected
        advance_clock(6)
    assert queue.peek_messages()[0].dequeue_count == 4


def test_peek_does_not_dequeue(queue, advance_clock):
    sent = queue.send_message("peek me")
    for _ in range(3):
        p = queue.peek_messages()
        assert len(p) == 1
        assert p[0].id == sent.id
        assert p[0].dequeue_count == 0
        assert p[0].pop_receipt is None
        assert p[0].next_visible_on is None
        assert p[0].content == "peek me"
    m = queue.receive_message(visibility_timeout=5)
    assert m.dequeue_count == 1
    assert queue.peek_messages() == []
    advance_clock(6)
    assert queue.peek_messages()[0].dequeue_count == 1


def test_peek_many(queue):
    for i in range(35):
        queue.send_message(f"p{i}")
    peeked = queue.peek_messages(max_messages=32)
    assert [m.content for m in peeked] == [f"p{i}" for i in range(32)]


# --------------------------------------------------------------------------- delete
def test_delete_with_pop_receipt(queue):
    queue.send_message("to delete")
    m = queue.receive_message()
    seen = {}
    queue.delete_message(m.id, m.pop_receipt, raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    assert queue.get_queue_properties().approximate_message_count == 0
    with pytest.raises(ResourceNotFoundError) as ei:
        queue.delete_message(m.id, m.pop_receipt)
    assert_storage_error(ei.value, 404, "MessageNotFound")


def test_delete_with_pop_receipt_from_send(queue):
    """Put Message returns a pop receipt that can delete the message."""
    sent = queue.send_message("sent receipt")
    queue.delete_message(sent)
    assert queue.peek_messages() == []
    assert queue.get_queue_properties().approximate_message_count == 0


def test_delete_with_wrong_pop_receipt_is_404(queue):
    sent = queue.send_message("guarded")
    m = queue.receive_message(visibility_timeout=60)
    assert m.pop_receipt != sent.pop_receipt, "receiving issues a new pop receipt"
    with pytest.raises(HttpResponseError) as ei:
        queue.delete_message(m.id, sent.pop_receipt)  # stale receipt from the put
    assert_storage_error(ei.value, 404, "MessageNotFound")
    other = queue.send_message("other")
    with pytest.raises(HttpResponseError) as ei:
        queue.delete_message(m.id, other.pop_receipt)  # another message's receipt
    assert_storage_error(ei.value, 404, "MessageNotFound")
    assert queue.get_queue_properties().approximate_message_count == 2
    queue.delete_message(m)  # the right one still works


def test_delete_after_redequeue_with_old_receipt_fails(queue, advance_clock):
    queue.send_message("lease")
    first = queue.receive_message(visibility_timeout=10)
    advance_clock(11)
    second = queue.receive_message(visibility_timeout=10)
    assert second.id == first.id and second.dequeue_count == 2
    with pytest.raises(HttpResponseError) as ei:
        queue.delete_message(first.id, first.pop_receipt)
    assert_storage_error(ei.value, 404, "MessageNotFound")
    queue.delete_message(second.id, second.pop_receipt)
    assert queue.get_queue_properties().approximate_message_count == 0


def test_delete_unknown_message_is_404(queue):
    real = queue.send_message("real")
    with pytest.raises(ResourceNotFoundError) as ei:
        queue.delete_message(str(uuid.uuid4()), real.pop_receipt)
    assert_storage_error(ei.value, 404, "MessageNotFound")


# --------------------------------------------------------------------------- update
def test_update_content_and_visibility(queue, lapis, advance_clock):
    queue.send_message("original")
    m = queue.receive_message(visibility_timeout=30)

    seen = {}
    u1 = queue.update_message(m, content="updated", visibility_timeout=0, raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    assert "x-ms-popreceipt" in seen["headers"] and "x-ms-time-next-visible" in seen["headers"]
    assert u1.pop_receipt and u1.pop_receipt != m.pop_receipt
    assert _close_to(u1.next_visible_on, lapis.server_now())
    peeked = queue.peek_messages()
    assert len(peeked) == 1 and peeked[0].content == "updated" and peeked[0].dequeue_count == 1

    # the old receipt is no longer valid
    with pytest.raises(HttpResponseError) as ei:
        queue.update_message(m.id, m.pop_receipt, content="stale", visibility_timeout=0)
    assert_storage_error(ei.value, 404, "MessageNotFound")

    # visibility-only update keeps the text and issues yet another receipt
    u2 = queue.update_message(m.id, u1.pop_receipt, visibility_timeout=60)
    assert u2.pop_receipt not in (m.pop_receipt, u1.pop_receipt)
    assert _close_to(u2.next_visible_on, lapis.server_now() + dt.timedelta(seconds=60))
    assert queue.peek_messages() == []
    with pytest.raises(HttpResponseError) as ei:
        queue.delete_message(m.id, u1.pop_receipt)
    assert_storage_error(ei.value, 404, "MessageNotFound")

    advance_clock(61)
    again = queue.receive_message()
    assert again.id == m.id
    assert again.content == "updated"
    assert again.dequeue_count == 2
    queue.delete_message(again)


def test_update_extends_lease(queue, advance_clock):
    queue.send_message("long job")
    m = queue.receive_message(visibility_timeout=10)
    receipt = m.pop_receipt
    for _ in range(3):
        advance_clock(8)
        receipt = queue.update_message(m.id, receipt, visibility_timeout=10).pop_receipt
        assert queue.receive_message() is None, "lease extended, still invisible"
    queue.delete_message(m.id, receipt)
    assert queue.get_queue_properties().approximate_message_count == 0


def test_update_with_special_content(queue):
    queue.send_message("x")
    m = queue.receive_message()
    new = "<&> ünïcödé \t  "
    queue.update_message(m, content=new, visibility_timeout=0)
    assert queue.peek_messages()[0].content == new


def test_update_unknown_message_is_404(queue):
    real = queue.send_message("real")
    with pytest.raises(ResourceNotFoundError) as ei:
        queue.update_message(str(uuid.uuid4()), real.pop_receipt, content="x", visibility_timeout=0)
    assert_storage_error(ei.value, 404, "MessageNotFound")


# --------------------------------------------------------------------------- clear
def test_clear_messages(queue):
    for i in range(5):
        queue.send_message(f"c{i}")
    queue.send_message("hidden", visibility_timeout=300)
    seen = {}
    queue.clear_messages(raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    assert queue.peek_messages(max_messages=32) == []
    assert queue.get_queue_properties().approximate_message_count == 0
    queue.clear_messages()  # clearing an empty queue is fine
    queue.send_message("after clear")
    assert [m.content for m in queue.peek_messages()] == ["after clear"]


# --------------------------------------------------------------------------- TTL
def test_message_ttl_expiry(queue, advance_clock):
    short = queue.send_message("short", time_to_live=60)
    queue.send_message("long", time_to_live=3600)
    assert (short.expires_on - short.inserted_on).total_seconds() == 60
    assert [m.content for m in queue.peek_messages(max_messages=32)] == ["short", "long"]
    advance_clock(61)
    assert [m.content for m in queue.peek_messages(max_messages=32)] == ["long"]
    m = queue.receive_message()
    assert m.content == "long"
    assert queue.receive_message() is None


def test_expired_message_cannot_be_deleted(queue, advance_clock):
    queue.send_message("brief", time_to_live=30)
    m = queue.receive_message(visibility_timeout=10)
    advance_clock(31)
    with pytest.raises(ResourceNotFoundError) as ei:
        queue.delete_message(m)
    assert_storage_error(ei.value, 404, "MessageNotFound")


def test_default_ttl_is_seven_days(queue, advance_clock):
    queue.send_message("default ttl")
    advance_clock(SEVEN_DAYS - 60)
    assert len(queue.peek_messages()) == 1
    advance_clock(61)
    assert queue.peek_messages() == []


def test_infinite_ttl(queue, advance_clock):
    msg = queue.send_message("forever", time_to_live=-1)
    assert msg.expires_on.year == 9999
    assert (msg.expires_on.month, msg.expires_on.day) == (12, 31)
    advance_clock(30 * 24 * 3600)  # a month later
    got = queue.receive_message()
    assert got is not None and got.content == "forever"
    assert got.expires_on.year == 9999


# --------------------------------------------------------------------------- size limits
def test_message_of_exactly_64_kib_is_accepted(queue):
    content = "a" * 65536
    queue.send_message(content)
    got = queue.receive_message()
    assert got.content == content


def test_message_over_64_kib_is_413(queue):
    with pytest.raises(HttpResponseError) as ei:
        queue.send_message("a" * 65537)
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")
    assert queue.get_queue_properties().approximate_message_count == 0


def test_update_over_64_kib_is_413(queue):
    queue.send_message("small")
    m = queue.receive_message(visibility_timeout=60)
    with pytest.raises(HttpResponseError) as ei:
        queue.update_message(m, content="b" * 65537, visibility_timeout=0)
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")


# --------------------------------------------------------------------------- bad parameters
def test_send_visibility_timeout_out_of_range(queue):
    with pytest.raises(HttpResponseError) as ei:
        queue.send_message("x", visibility_timeout=604801)
    assert_storage_error(ei.value, 400, "OutOfRangeQueryParameterValue")


def test_send_visibility_timeout_max_is_accepted(queue):
    queue.send_message("x", visibility_timeout=604800, time_to_live=-1)
    assert queue.get_queue_properties().approximate_message_count == 1


@pytest.mark.parametrize("ttl", [0, -2])
def test_send_invalid_ttl(queue, ttl):
    with pytest.raises(HttpResponseError) as ei:
        queue.send_message("x", time_to_live=ttl)
    assert_storage_error(ei.value, 400, "InvalidQueryParameterValue")


def test_send_visibility_not_below_ttl(queue):
    with pytest.raises(HttpResponseError) as ei:
        queue.send_message("x", visibility_timeout=60, time_to_live=60)
    assert_storage_error(ei.value, 400, "InvalidQueryParameterValue")


@pytest.mark.parametrize("vt", [0, 604801])
def test_receive_visibility_timeout_out_of_range(queue, vt):
    queue.send_message("x")
    with pytest.raises(HttpResponseError) as ei:
        queue.receive_message(visibility_timeout=vt)
    assert_storage_error(ei.value, 400, "OutOfRangeQueryParameterValue")
    assert len(queue.peek_messages()) == 1, "the failed receive did not hide the message"


@pytest.mark.parametrize("n", [33, 0])
def test_receive_numofmessages_out_of_range(queue, n):
    queue.send_message("x")
    with pytest.raises(HttpResponseError) as ei:
        list(queue.receive_messages(messages_per_page=n))
    assert_storage_error(ei.value, 400, "OutOfRangeQueryParameterValue")


def test_update_visibility_timeout_out_of_range(queue):
    queue.send_message("x")
    m = queue.receive_message()
    with pytest.raises(HttpResponseError) as ei:
        queue.update_message(m, visibility_timeout=604801)
    assert_storage_error(ei.value, 400, "OutOfRangeQueryParameterValue")


# --------------------------------------------------------------------------- unknown queue
def test_message_operations_on_unknown_queue_are_404(queue_service, queue):
    real = queue.send_message("for a receipt")
    ghost = queue_service.get_queue_client(unique_name("ghost"))
    ops = {
        "send": lambda: ghost.send_message("x"),
        "receive": lambda: ghost.receive_message(),
        "receive_many": lambda: list(ghost.receive_messages(messages_per_page=5)),
        "peek": lambda: ghost.peek_messages(),
        "clear": lambda: ghost.clear_messages(),
        "delete": lambda: ghost.delete_message(real.id, real.pop_receipt),
        "update": lambda: ghost.update_message(real.id, real.pop_receipt, content="x", visibility_timeout=0),
    }
    assert_each_fails(ops, 404, "QueueNotFound")


# --------------------------------------------------------------------------- encoding policies
def test_text_base64_policies(queue_service, queue):
    text = "héllo <&> wörld 🎉"
    encoded_client = queue_service.get_queue_client(
        queue.queue_name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    encoded_client.send_message(text)
    # the server stores the base64 text verbatim
    raw = queue.peek_messages()[0].content
    assert raw == base64.b64encode(text.encode("utf-8")).decode("ascii")
    got = encoded_client.receive_message()
    assert got.content == text


def test_binary_base64_policies(queue_service, queue):
    payload = bytes(range(256)) + os.urandom(1024) + b"\x00\xff\x00"
    binary_client = queue_service.get_queue_client(
        queue.queue_name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    binary_client.send_message(payload)
    assert queue.peek_messages()[0].content == base64.b64encode(payload).decode("ascii")
    got = binary_client.receive_message()
    assert isinstance(got.content, bytes)
    assert got.content == payload
    # update with new binary content
    new_payload = os.urandom(300)
    binary_client.update_message(got, content=new_payload, visibility_timeout=0)
    assert binary_client.peek_messages()[0].content == new_payload


def test_binary_48_kib_is_64_kib_encoded_and_accepted(queue_service, queue):
    payload = os.urandom(48 * 1024)  # base64 of 49152 bytes is exactly 65536 chars
    binary_client = queue_service.get_queue_client(
        queue.queue_name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    binary_client.send_message(payload)
    assert binary_client.receive_message().content == payload
    with pytest.raises(HttpResponseError) as ei:
        binary_client.send_message(os.urandom(48 * 1024 + 1))
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")


def test_missing_required_parameters_are_named(lapis, queue):
    """Delete without popreceipt and Update without visibilitytimeout: 400
    MissingRequiredQueryParameter naming the parameter (sent raw: the SDK never omits them)."""
    import datetime as _dt

    import requests
    from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

    from lapis_harness import DEV_ACCOUNT, DEV_KEY

    sas = generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, ResourceTypes(object=True), AccountSasPermissions(process=True, update=True),
        expiry=lapis.server_now() + _dt.timedelta(hours=1),
    )
    sent = queue.send_message("needs a receipt")
    base = f"{lapis.account_url()}/{queue.queue_name}/messages/{sent.id}"
    r = requests.delete(f"{base}?{sas}", timeout=10)
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "MissingRequiredQueryParameter", r.text
    assert "<QueryParameterName>popreceipt</QueryParameterName>" in r.text
    r = requests.put(f"{base}?popreceipt={requests.utils.quote(sent.pop_receipt, safe='')}&{sas}", timeout=10)
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "MissingRequiredQueryParameter", r.text
    assert "<QueryParameterName>visibilitytimeout</QueryParameterName>" in r.text
    assert [m.content for m in queue.peek_messages()] == ["needs a receipt"], "nothing changed"
