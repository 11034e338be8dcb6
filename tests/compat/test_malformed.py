"""Malformed and hostile clients against a real server (DESIGN.md, Security:
"Bad input of any kind ... gets the error the real service returns, and never
a panic, a hang or a lost message").

Every case is written with raw sockets; requests that must get past
authentication are signed with Shared Key by hand (lapis_wire.signed_headers,
reference section 2.1). After every case the server must still answer
GET /health with 200 and serve a real SDK round trip (send, receive, delete),
and the process must still be running.

No timing thresholds: socket timeouts below only bound how long the test
waits, and a timeout is never by itself a failure unless noted.

Run:  pytest tests/compat/test_malformed.py
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
from typing import List, Optional, Tuple

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient

import lapis_wire as lp
from lapis_harness import LapisServer

CLIENT_KW = dict(retry_total=0, connection_timeout=10, read_timeout=60)
VALID_BODY = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    "<QueueMessage><MessageText>hello</MessageText></QueueMessage>"
).encode()


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = LapisServer(
        data_dir=tmp_path_factory.mktemp("malformed-data"), log_dir=tmp_path_factory.mktemp("malformed-log")
    )
    proc.start()
    yield proc
    proc.close()


@pytest.fixture(autouse=True)
def _still_alive_after(request, server):
    yield
    assert server.running, f"lapis process died during {request.node.name}\n{server.log_tail()}"
    assert_alive(server)


def new_queue(server: LapisServer) -> str:
    name = f"mal{uuid.uuid4().hex[:16]}"
    qc = QueueClient.from_connection_string(server.conn_str(), name, **CLIENT_KW)
    qc.create_queue()
    qc.close()
    return name


def assert_alive(server: LapisServer) -> None:
    """GET /health is 200 and an SDK send/receive/delete round trip works."""
    status = lp.http_get_status(server.http_port, timeout=30)
    assert status == 200, f"/health answered {status!r}\n{server.log_tail()}"
    svc = QueueServiceClient.from_connection_string(server.conn_str(), **CLIENT_KW)
    name = f"alive{uuid.uuid4().hex[:16]}"
    qc = svc.get_queue_client(name)
    try:
        qc.create_queue()
        text = f"alive-{uuid.uuid4().hex}"
        qc.send_message(text)
        got = list(qc.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=60))
        assert [m.content for m in got] == [text]
        qc.delete_message(got[0].id, got[0].pop_receipt)
        qc.delete_queue()
    finally:
        qc.close()
        svc.close()


def peek_all(server: LapisServer, name: str) -> List[str]:
    qc = QueueClient.from_connection_string(server.conn_str(), name, **CLIENT_KW)
    try:
        return [m.content for m in qc.peek_messages(max_messages=32)]
    finally:
        qc.close()


def connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def send_quietly(sock: socket.socket, data: bytes) -> Optional[str]:
    """sendall, returning the error name if the server already hung up."""
    try:
        sock.sendall(data)
        return None
    except (BrokenPipeError, ConnectionResetError) as e:
        return type(e).__name__


def post_message_head(server: LapisServer, queue: str, content_length: int, extra: Optional[dict] = None) -> bytes:
    path = f"/{lp.ACCOUNT}/{queue}/messages"
    headers = lp.signed_headers(
        "POST", path, headers={"Content-Type": "application/xml", **(extra or {})}, content_length=content_length
    )
    return lp.request_bytes("POST", server.queue_port, path, headers=headers)


def outcome(status, how) -> str:
    return f"status={status} how={how}"


def assert_rejected_or_closed(status: Optional[int], how: str, allowed=(400, 431)) -> None:
    """Either an HTTP error from `allowed`, or the server hung up without an answer."""
    if status is None:
        assert how in ("closed", "reset", "timeout"), outcome(status, how)
    else:
        assert status in allowed, f"expected one of {allowed} or a closed connection, got {outcome(status, how)}"


# ------------------------------------------------------------------ sanity of the signer
def test_shared_key_signature_matches_reference_vector(server):
    h = {"Content-Length": "0", "x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT", "x-ms-version": "2021-12-02"}
    sts = lp.string_to_sign("PUT", "/devstoreaccount1/myqueue", {}, h)
    assert lp.shared_key_signature(sts) == "QaK4Z408bHZfUvHk41AJJd2460j1kCiZaZsw1LbWZf8="


def test_hand_signed_requests_are_accepted(server):
    """Control: the same hand-made requests the other cases corrupt do work
    when well-formed, so their rejections are about the corruption."""
    name = f"raw{uuid.uuid4().hex[:16]}"
    path = f"/{lp.ACCOUNT}/{name}"
    with connect(server.queue_port) as s:
        s.sendall(lp.request_bytes("PUT", server.queue_port, path, headers=lp.signed_headers("PUT", path, content_length=0)))
        status, headers, body, how = lp.read_response(s)
    assert status == 201, f"create queue: {outcome(status, how)} {body[:300]!r}"
    with connect(server.queue_port) as s:
        s.sendall(post_message_head(server, name, len(VALID_BODY)) + VALID_BODY)
        status, headers, body, how = lp.read_response(s)
    assert status == 201, f"put message: {outcome(status, how)} {body[:300]!r}"
    assert peek_all(server, name) == ["hello"]


# ------------------------------------------------------------------ garbage instead of HTTP
CLIENT_ERRORS = set(range(400, 500))
# name -> (bytes, statuses acceptable if the server answers at all; hanging up
# is always acceptable). 5xx is never acceptable except 505 for an unknown
# HTTP version. Where RFC 9112/9110 let a recipient repair the input (bare LF
# line ends; NUL in a field value "MAY be replaced with SP"), a normal answer
# to the repaired request is fine too.
GARBAGE = {
    "random-binary": (os.urandom(4096) + b"\r\n\r\n", CLIENT_ERRORS),
    "tls-client-hello": (bytes.fromhex("16030100a5010000a103035f") + os.urandom(160), CLIENT_ERRORS),
    "text-no-http": (b"HELLO THERE\r\nthis is not http\r\n\r\n", CLIENT_ERRORS),
    "nul-bytes": (b"\x00" * 2048, CLIENT_ERRORS),
    "bad-request-line": (b"GET\r\n\r\n", CLIENT_ERRORS),
    "bad-version": (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", CLIENT_ERRORS | {505}),
    "space-in-target": (b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n", CLIENT_ERRORS),
    "header-without-colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", CLIENT_ERRORS),
    "bare-lf": (b"GET /health HTTP/1.1\nHost: x\n\n", CLIENT_ERRORS | {200}),
    "nul-in-header-value": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", CLIENT_ERRORS | {200}),
}


@pytest.mark.parametrize("port_kind", ["queue", "http"])
@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_bytes_instead_of_http(server, name, port_kind):
    port = server.queue_port if port_kind == "queue" else server.http_port
    data, acceptable = GARBAGE[name]
    with connect(port) as s:
        send_quietly(s, data)
        status, headers, body, how = lp.read_response(s, timeout=10)
    print(f"[malformed] garbage {name} on {port_kind} port: {outcome(status, how)}")
    if status is not None:
        assert status in acceptable, f"garbage {name!r} got {outcome(status, how)} {body[:200]!r}"


# ------------------------------------------------------------------ truncated requests
def test_truncated_request_headers_then_close(server):
    name = f"trunc{uuid.uuid4().hex[:16]}"
    path = f"/{lp.ACCOUNT}/{name}"
    full = lp.request_bytes("PUT", server.queue_port, path, headers=lp.signed_headers("PUT", path, content_length=0))
    cuts = [
        full[:10],                  # inside the request line
        full.split(b"\r\n")[0],     # request line, no CRLF
        full[: len(full) // 2],     # inside the headers
        full[:-2],                  # all headers, final blank line missing
    ]
    for cut in cuts:
        with connect(server.queue_port) as s:
            s.sendall(cut)
        # closed without finishing: nothing to read, server must just drop it
    assert lp.http_get_status(server.http_port, timeout=30) == 200
    # The incomplete create must not have happened.
    qc = QueueClient.from_connection_string(server.conn_str(), name, **CLIENT_KW)
    try:
        with pytest.raises(ResourceNotFoundError):
            qc.get_queue_properties()
    finally:
        qc.close()


def test_truncated_headers_half_closed_gets_no_action(server):
    """Headers without the blank line, then shutdown(SHUT_WR): the server
    sees EOF mid-head; it may answer 400 or just close."""
    path = f"/{lp.ACCOUNT}/?comp=list"
    with connect(server.queue_port) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nx-ms-version: 2021-12-02\r\n")
        s.shutdown(socket.SHUT_WR)
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] half-closed head: {outcome(status, how)}")
    assert_rejected_or_closed(status, how, allowed=(400,))


def test_body_shorter_than_content_length_then_close(server):
    queue = new_queue(server)
    declared = len(VALID_BODY) + 500
    head = post_message_head(server, queue, declared)
    with connect(server.queue_port) as s:
        s.sendall(head + VALID_BODY[: len(VALID_BODY) // 2])
        s.shutdown(socket.SHUT_WR)  # no more bytes will ever come
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] short body, half-closed: {outcome(status, how)}")
    assert_rejected_or_closed(status, how, allowed=(400,))
    # Also the fully closed variant.
    with connect(server.queue_port) as s:
        s.sendall(head + VALID_BODY[:10])
    assert lp.http_get_status(server.http_port, timeout=30) == 200
    assert peek_all(server, queue) == [], "a message was enqueued from a truncated body"


def test_client_vanishes_mid_body_with_reset(server):
    queue = new_queue(server)
    head = post_message_head(server, queue, len(VALID_BODY))
    for _ in range(5):
        s = connect(server.queue_port)
        s.sendall(head + VALID_BODY[:20])
        # SO_LINGER 0: close() sends RST, as a crashed or unplugged client would.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert lp.http_get_status(server.http_port, timeout=30) == 200
    assert peek_all(server, queue) == [], "a message was enqueued from an abandoned body"


def test_client_goes_silent_mid_body(server):
    """The client stops sending mid-body and never closes; meanwhile the
    server keeps serving others. Closed only at the end of the test."""
    queue = new_queue(server)
    head = post_message_head(server, queue, len(VALID_BODY))
    silent = []
    try:
        for _ in range(5):
            s = connect(server.queue_port)
            s.sendall(head + VALID_BODY[:20])
            silent.append(s)
        assert_alive(server)
        assert peek_all(server, queue) == []
    finally:
        for s in silent:
            s.close()
    assert peek_all(server, queue) == [], "a message was enqueued from an abandoned body"


# ------------------------------------------------------------------ wrong XML
BAD_XML = {
    "not-xml": (b"this is not xml at all", ("InvalidXmlDocument",)),
    "truncated-xml": (b"<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>abc", ("InvalidXmlDocument",)),
    "mismatched-tags": (b"<QueueMessage><MessageText>abc</Wrong></QueueMessage>", ("InvalidXmlDocument",)),
    "binary": (b"\x00\x01\x02\xff\xfe<QueueMessage>", ("InvalidXmlDocument",)),
    # Well-formed XML of the wrong shape: Azure's XML-body codes are allowed.
    "wrong-root": (
        b"<?xml version='1.0' encoding='utf-8'?>\n<Foo><Bar>abc</Bar></Foo>",
        ("InvalidXmlDocument", "MissingRequiredXmlNode", "InvalidXmlNodeValue"),
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_XML))
def test_wrong_xml_on_put_message_is_400(server, name):
    queue = new_queue(server)
    body, codes = BAD_XML[name]
    with connect(server.queue_port) as s:
        s.sendall(post_message_head(server, queue, len(body)) + body)
        status, headers, resp_body, how = lp.read_response(s)
    info = f"{outcome(status, how)} headers={headers} body={resp_body[:400]!r}"
    print(f"[malformed] bad xml {name}: {status} {headers.get('x-ms-error-code')}")
    assert status == 400, info
    assert headers.get("x-ms-error-code") in codes, info
    assert f"<Code>{headers.get('x-ms-error-code')}</Code>".encode() in resp_body, info
    assert "x-ms-request-id" in headers, info
    assert peek_all(server, queue) == [], "bad XML enqueued a message"


# ------------------------------------------------------------------ header abuse
def _signed_list_request(server: LapisServer, extra_header_lines: bytes) -> bytes:
    path = f"/{lp.ACCOUNT}/"
    query = {"comp": "list"}
    head = lp.request_bytes("GET", server.queue_port, path, query=query, headers=lp.signed_headers("GET", path, query))
    return head[:-2] + extra_header_lines + b"\r\n"


def test_huge_header_is_refused(server):
    """A 100 KB header on an otherwise valid, signed request: 431 or 400, or
    the connection is closed; never processed."""
    req = _signed_list_request(server, b"X-Huge: " + b"A" * (100 * 1024) + b"\r\n")
    with connect(server.queue_port) as s:
        err = send_quietly(s, req)
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] 100 KB header: {outcome(status, how)} send_error={err}")
    assert_rejected_or_closed(status, how)


def test_huge_header_on_health_port(server):
    req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"B" * (100 * 1024) + b"\r\n\r\n"
    with connect(server.http_port) as s:
        err = send_quietly(s, req)
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] 100 KB header on http port: {outcome(status, how)} send_error={err}")
    assert_rejected_or_closed(status, how)


def test_many_headers_are_refused(server):
    lines = b"".join(b"X-Many-%d: v\r\n" % i for i in range(2000))
    req = _signed_list_request(server, lines)
    with connect(server.queue_port) as s:
        err = send_quietly(s, req)
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] 2000 headers: {outcome(status, how)} send_error={err}")
    assert_rejected_or_closed(status, how)


@pytest.mark.parametrize(
    "cl_lines",
    [
        b"Content-Length: abc\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 10\r\nContent-Length: 20\r\n",
        b"Content-Length: 99999999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",  # followed by a malformed chunk
    ],
    ids=["non-numeric", "negative", "conflicting", "overflow", "bad-chunk"],
)
def test_invalid_framing_is_rejected(server, cl_lines):
    queue = new_queue(server)
    path = f"/{lp.ACCOUNT}/{queue}/messages"
    head = lp.request_bytes("POST", server.queue_port, path, headers={"x-ms-version": lp.API_VERSION, "Content-Type": "application/xml"})
    req = head[:-2] + cl_lines + b"\r\n"
    if b"chunked" in cl_lines:
        req += b"zz-not-hex\r\n" + VALID_BODY + b"\r\n0\r\n\r\n"
    else:
        req += VALID_BODY
    with connect(server.queue_port) as s:
        err = send_quietly(s, req)
        status, headers, body, how = lp.read_response(s, timeout=30)
    print(f"[malformed] framing {cl_lines!r}: {outcome(status, how)} send_error={err}")
    # The request is unsigned too, so 403 would also be a correct refusal when
    # the framing happens to parse; what matters is that nothing was enqueued.
    assert_rejected_or_closed(status, how, allowed=(400, 403, 411, 413, 431, 501))
    assert peek_all(server, queue) == []


# ------------------------------------------------------------------ slow loris
def test_slow_loris_does_not_starve_other_clients(server):
    """50 clients trickle header bytes forever (10 more on the health port);
    an SDK client and /health are served meanwhile."""
    stop = threading.Event()
    socks: List[Tuple[socket.socket, int]] = []
    dropped = [0]
    for i in range(60):
        port = server.queue_port if i < 50 else server.http_port
        s = connect(port)
        s.sendall(f"GET /{lp.ACCOUNT}/?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        socks.append((s, i))

    def trickle() -> None:
        live = list(socks)
        while live and not stop.is_set():
            still = []
            for s, i in live:
                try:
                    s.sendall(b"a")  # one more byte of a header value that never ends
                    still.append((s, i))
                except OSError:
                    dropped[0] += 1
            live = still
            stop.wait(0.2)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        time.sleep(1.0)  # let the trickle start
        for _ in range(3):
            assert_alive(server)
        queue = new_queue(server)
        qc = QueueClient.from_connection_string(server.conn_str(), queue, **CLIENT_KW)
        try:
            for k in range(10):
                qc.send_message(f"m{k}")
            assert sorted(m.content for m in qc.peek_messages(max_messages=32)) == sorted(f"m{k}" for k in range(10))
        finally:
            qc.close()
    finally:
        stop.set()
        t.join(timeout=10)
        for s, _ in socks:
            s.close()
    print(f"[malformed] slow loris: {len(socks)} slow clients, {dropped[0]} dropped by the server meanwhile")
