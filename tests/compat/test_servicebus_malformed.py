"""Malformed AMQP input: garbage instead of a protocol header, a header of another
protocol, garbage and oversized frames, frames out of order, clients that go
silent or vanish mid-frame. Each gets the protocol header or a close frame with
the right AMQP error, and the server keeps serving the official SDK meanwhile."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode

from sb_support import sb_client

pytestmark = pytest.mark.timeout(120)

CONFIG = {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "alive", "Properties": {}}]}]}}

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"


def connect(sb) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", sb.amqp_port), timeout=10)
    s.settimeout(10)
    return s


def read_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def frame(performative: bytes, channel: int = 0) -> bytes:
    return struct.pack(">IBBH", 8 + len(performative), 2, 0, channel) + performative


def described_list(code: int, fields: bytes, count: int) -> bytes:
    return bytes([0x00, 0x53, code, 0xC0, len(fields) + 1, count]) + fields


def string(text: str) -> bytes:
    raw = text.encode()
    return bytes([0xA1, len(raw)]) + raw


OPEN = frame(described_list(0x10, string("malformed-test"), 1))
BEGIN = frame(described_list(0x11, bytes([0x40, 0x43, 0x70, 0, 0, 0, 100, 0x70, 0, 0, 0, 100]), 4))


def opened(sb) -> socket.socket:
    s = connect(sb)
    s.sendall(AMQP_HEADER + OPEN)
    assert read_exactly(s, 8) == AMQP_HEADER
    size = struct.unpack(">I", read_exactly(s, 4))[0]
    body = read_exactly(s, size - 4)
    assert body[4:7] == bytes([0x00, 0x53, 0x10]), "the server answers with its open"
    return s


def assert_still_serving(sb) -> None:
    c = sb_client(sb)
    try:
        with c.get_queue_sender("alive") as s:
            s.send_messages(ServiceBusMessage("still here"), timeout=20)
        with c.get_queue_receiver("alive", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
            got = r.receive_messages(max_message_count=1, max_wait_time=5)
            assert [str(m) for m in got] == ["still here"]
    finally:
        c.close()


def test_garbage_instead_of_a_protocol_header_gets_the_header_and_a_hang_up(sb):
    s = connect(sb)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = read_until_closed(s)
    assert answer == SASL_HEADER, answer
    assert_still_serving(sb)


def test_another_protocol_version_gets_the_header_lapis_speaks(sb):
    s = connect(sb)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    assert read_until_closed(s) == SASL_HEADER


def test_a_garbage_frame_is_a_decode_error(sb):
    s = opened(sb)
    s.sendall(struct.pack(">IBBH", 16, 2, 0, 0) + b"\xde\xad\xbe\xef\x01\x02\x03\x04")
    rest = read_until_closed(s)
    assert b"amqp:decode-error" in rest, rest
    assert_still_serving(sb)


def test_an_oversized_frame_is_a_framing_error(sb):
    s = opened(sb)
    s.sendall(struct.pack(">IBBH", 0x7FFF_FFF0, 2, 0, 0) + b"x" * 64)
    rest = read_until_closed(s)
    assert b"amqp:connection:framing-error" in rest, rest
    assert_still_serving(sb)


def test_a_frame_before_open_is_refused(sb):
    s = connect(sb)
    s.sendall(AMQP_HEADER + BEGIN)
    rest = read_until_closed(s)
    assert rest.startswith(AMQP_HEADER) and b"amqp:not-allowed" in rest, rest


def test_a_transfer_on_an_unknown_link_is_refused(sb):
    s = opened(sb)
    s.sendall(BEGIN)
    transfer = frame(described_list(0x14, bytes([0x52, 0x07, 0x43, 0xA0, 0x01, 0x01]), 3)) + b"\x00\x53\x77\xa1\x01x"
    s.sendall(transfer)
    rest = read_until_closed(s)
    assert b"amqp:not-allowed" in rest, rest
    assert_still_serving(sb)


def test_a_detach_after_its_session_ended_is_ignored(sb):
    # The Python SDKs end a session and then detach its last links on close.
    s = opened(sb)
    s.sendall(BEGIN)
    s.sendall(frame(described_list(0x17, b"", 0)))  # end
    s.sendall(frame(described_list(0x16, bytes([0x52, 0x03, 0x41]), 2)))  # detach handle 3, closed
    s.sendall(frame(described_list(0x18, b"", 0)))  # close
    rest = read_until_closed(s)
    performatives = [code for code in (0x11, 0x17, 0x18) if bytes([0x00, 0x53, code]) in rest]
    assert performatives == [0x11, 0x17, 0x18], f"begin, end and close answered: {rest!r}"
    assert b"amqp:" not in rest, f"no error: {rest!r}"
    assert_still_serving(sb)


def test_silent_and_vanishing_clients_do_not_hold_up_others(sb):
    silent = []
    for i in range(30):
        s = connect(sb)
        s.sendall(AMQP_HEADER if i % 2 else b"AM")  # a full header, or half of one
        silent.append(s)
    # A client that vanishes in the middle of a frame.
    v = opened(sb)
    v.sendall(struct.pack(">IBBH", 200, 2, 0, 0) + b"\x00\x53")
    v.close()
    started = time.monotonic()
    assert_still_serving(sb)
    assert time.monotonic() - started < 30
    for s in silent:
        s.close()
    assert_still_serving(sb)
