"""A webhook endpoint as a user would run one for Event Grid: it answers the
validation handshakes (the Event Grid schema's validation event, the CloudEvents
OPTIONS request), keeps every request it gets, and answers notifications with a
status the test chooses (or not at all, for a while)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union


@dataclass
class Received:
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        return self.headers.get("aeg-event-type", "")

    def events(self) -> List[dict]:
        """The events in a notification: an array, or one structured CloudEvent."""
        doc = json.loads(self.body)
        return doc if isinstance(doc, list) else [doc]


Answer = Union[int, Callable[[Received], int]]


class Webhook:
    def __init__(self, answer: Answer = 200, validate: Union[bool, str] = True, hang_s: float = 0.0, tls: Optional[Tuple[Path, Path]] = None) -> None:
        """`validate`: True answers the handshake, False refuses it, "manual" answers
        200 without the code (the test then GETs the validation URL). `tls` =
        (certificate, key) PEM files: serve https instead of http."""
        self.answer = answer
        self.validate = validate
        self.hang_s = hang_s
        self.received: List[Received] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> Received:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with hook.cond:
                    hook.received.append(got)
                    hook.cond.notify_all()
                return got

            def do_OPTIONS(self) -> None:
                got = self._record()
                if hook.validate:
                    origin = got.headers.get("webhook-request-origin", "*")
                    self._reply(200, headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "120", "Allow": "POST"})
                else:
                    self._reply(405)

            def do_POST(self) -> None:
                got = self._record()
                if got.kind == "SubscriptionValidation":
                    if not hook.validate:
                        self._reply(404)
                        return
                    if hook.validate == "manual":
                        self._reply(200)
                        return
                    code = json.loads(got.body)[0]["data"]["validationCode"]
                    self._reply(200, json.dumps({"validationResponse": code}).encode(), {"Content-Type": "application/json"})
                    return
                if hook.hang_s:
                    time.sleep(hook.hang_s)
                status = hook.answer(got) if callable(hook.answer) else hook.answer
                self._reply(status)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a sender that died mid-request (the crash test's SIGKILL)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/api/updates"

    def notifications(self) -> List[Received]:
        with self.cond:
            return [r for r in self.received if r.kind == "Notification"]

    def handshakes(self) -> List[Received]:
        with self.cond:
            return [r for r in self.received if r.method == "OPTIONS" or r.kind == "SubscriptionValidation"]

    def events(self) -> List[dict]:
        return [e for r in self.notifications() for e in r.events()]

    def validation_url(self) -> str:
        """The `validationUrl` of the last validation event received."""
        [*_, last] = [r for r in self.handshakes() if r.kind == "SubscriptionValidation"]
        return last.events()[0]["data"]["validationUrl"]

    def wait_for(self, check: Callable[["Webhook"], bool], timeout: float = 15.0, what: str = "deliveries") -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {len(self.received)} requests")
                # The check takes the lock itself; Condition locks are reentrant.
                self.cond.wait(min(left, 0.2))

    def wait_events(self, n: int, timeout: float = 15.0) -> List[dict]:
        self.wait_for(lambda h: len(h.events()) >= n, timeout, f"{n} events")
        return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def local_ca(directory: Path) -> Tuple[Path, Path, Path]:
    """A local CA nobody trusts by default and a certificate it issued for 127.0.0.1
    (and localhost): (ca certificate, endpoint certificate, endpoint key)."""
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key, csr, ext = directory / "hook-cert.pem", directory / "hook-key.pem", directory / "hook.csr", directory / "hook.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for cmd in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", ca_key, "-out", ca, "-subj", "/CN=Lapis test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True)
    return ca, cert, key
