"""Process and wire helpers for the crash and malformed-input tests
(test_crash.py, test_malformed.py).

Self-contained on purpose: it does not use conftest.py's fixtures, so these
tests keep working whatever the shared fixtures become. It only follows the
server's CLI contract:

    lapis serve --data-dir DIR | --in-memory  --host 127.0.0.1
        --queue-port QP --http-port HP --blob-port 0 --amqp-port 0
        --kafka-port 0 [--durability strict]

The server is ready when `GET http://127.0.0.1:HP/health` answers 200.

Unlike a server that picks new ports on every start, `LapisProc` keeps its
ports across `kill()` / `start()`, so clients that were talking to it before a
crash reconnect to the restarted server without being rebuilt. The ports are
chosen below the kernel's ephemeral range so an outgoing client connection
cannot occupy the queue port while the server is down.

Also here: Shared Key signing of hand-made requests (reference section 2.1,
with the account name doubled in the canonicalized resource for path-style
URLs) and a tiny raw-socket HTTP helper.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-12-02"

START_TIMEOUT_S = 30.0


def lapis_bin() -> str:
    return os.environ.get("LAPIS_BIN") or str(REPO / "target" / "debug" / "lapis")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(text[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(exclude: Tuple[int, ...] = ()) -> int:
    """A free loopback TCP port, preferably below the ephemeral range."""
    hi = min(_ephemeral_low(), 65535)
    lo = 20000 if hi > 21000 else 1024
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(lo, hi)
        if port not in exclude and _port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_status(port: int, path: str = "/health", timeout: float = 2.0) -> Optional[int]:
    """Status code of a plain GET, or None if there was no HTTP answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    parts = data.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _tail(path: Optional[Path], lines: int = 60) -> str:
    if path is None:
        return "<no log>"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<cannot read {path.name}: {e}>"


class LapisProc:
    """One `lapis serve` process on fixed ports, restartable on the same data
    directory (SIGKILL / start) for crash testing."""

    def __init__(
        self,
        data_dir: Optional[Path] = None,
        in_memory: bool = False,
        durability: Optional[str] = None,
        extra_args: Tuple[str, ...] = (),
    ) -> None:
        self._own_tmp: Optional[tempfile.TemporaryDirectory] = None
        if in_memory:
            self.data_dir: Optional[Path] = None
        elif data_dir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="lapis-data-")
            self.data_dir = Path(self._own_tmp.name)
        else:
            self.data_dir = Path(data_dir)
        self.durability = durability
        self.extra_args = tuple(extra_args)
        self.queue_port = free_port()
        self.http_port = free_port(exclude=(self.queue_port,))
        self._log_tmp = tempfile.TemporaryDirectory(prefix="lapis-log-")
        self.log_dir = Path(self._log_tmp.name)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.log_path: Optional[Path] = None

    # ----------------------------------------------------------- addressing
    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};"
        )

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/health"

    # ----------------------------------------------------------- lifecycle
    def command(self) -> List[str]:
        cmd = [lapis_bin(), "serve"]
        if self.data_dir is None:
            cmd.append("--in-memory")
        else:
            cmd += ["--data-dir", str(self.data_dir)]
        cmd += [
            "--host", "127.0.0.1",
            "--queue-port", str(self.queue_port),
            "--http-port", str(self.http_port),
            "--blob-port", "0",
            "--amqp-port", "0",
            "--kafka-port", "0",
        ]
        if self.durability:
            cmd += ["--durability", self.durability]
        cmd += list(self.extra_args)
        return cmd

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return http_get_status(self.http_port) == 200

    def start(self, timeout: float = START_TIMEOUT_S) -> "LapisProc":
        """Start on the same ports and data dir; wait for /health == 200.
        Retries briefly if the process exits at once (e.g. a port still held
        for a moment after a kill)."""
        if self.running:
            raise RuntimeError("lapis already running")
        if not Path(lapis_bin()).exists():
            raise RuntimeError(f"lapis binary not found at {lapis_bin()}: build it or set LAPIS_BIN")
        deadline = time.monotonic() + timeout
        why = ""
        while True:
            self.starts += 1
            self.log_path = self.log_dir / f"lapis-{self.starts}.log"
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "RUST_BACKTRACE": "1"},
                )
            while time.monotonic() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    why = f"exited with code {rc}"
                    break
                if self.healthy():
                    return self
                time.sleep(0.05)
            else:
                why = why or "no 200 from /health"
                self._reap(signal.SIGKILL)
                raise RuntimeError(self._failure(f"lapis not healthy within {timeout}s: {why}"))
            self.proc = None
            if time.monotonic() >= deadline:
                raise RuntimeError(self._failure(f"lapis failed to start: {why}"))
            time.sleep(0.3)

    def _failure(self, msg: str) -> str:
        return f"{msg}\ncommand: {' '.join(self.command())}\n--- log tail ---\n{_tail(self.log_path)}"

    def _reap(self, sig: int, timeout: float = 20.0) -> Optional[int]:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def kill(self) -> Optional[int]:
        """SIGKILL, as a crash would, and wait for the process to be gone."""
        return self._reap(signal.SIGKILL)

    def stop(self) -> Optional[int]:
        """SIGTERM (graceful), SIGKILL after 20 s."""
        return self._reap(signal.SIGTERM)

    def restart_after_kill(self) -> "LapisProc":
        self.kill()
        return self.start()

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def close(self) -> None:
        self.kill()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None
        self._log_tmp.cleanup()

    def __enter__(self) -> "LapisProc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------- Shared Key
def shared_key_signature(string_to_sign: str, key_b64: str = ACCOUNT_KEY) -> str:
    mac = hmac.new(base64.b64decode(key_b64), string_to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def string_to_sign(
    method: str,
    path: str,
    query: Dict[str, str],
    headers: Dict[str, str],
    account: str = ACCOUNT,
) -> str:
    """Shared Key string-to-sign (reference 2.1). `path` is the URL path as
    sent, e.g. `/devstoreaccount1/q/messages`; the canonicalized resource is
    `/account` + that path, so path-style URLs name the account twice."""
    h = {k.lower(): v for k, v in headers.items()}
    content_length = h.get("content-length", "")
    if content_length == "0":
        content_length = ""
    std = [
        h.get("content-encoding", ""),
        h.get("content-language", ""),
        content_length,
        h.get("content-md5", ""),
        h.get("content-type", ""),
        h.get("date", ""),
        h.get("if-modified-since", ""),
        h.get("if-match", ""),
        h.get("if-none-match", ""),
        h.get("if-unmodified-since", ""),
        h.get("range", ""),
    ]
    canon_headers = "".join(
        f"{k}:{v}\n" for k, v in sorted((k, v) for k, v in h.items() if k.startswith("x-ms-"))
    )
    resource = f"/{account}{path}"
    for name in sorted(query, key=str.lower):
        resource += f"\n{name.lower()}:{query[name]}"
    return method.upper() + "\n" + "\n".join(std) + "\n" + canon_headers + resource


def signed_headers(
    method: str,
    path: str,
    query: Optional[Dict[str, str]] = None,
    headers: Optional[Dict[str, str]] = None,
    content_length: Optional[int] = None,
    account: str = ACCOUNT,
    key_b64: str = ACCOUNT_KEY,
) -> Dict[str, str]:
    """Headers (including Authorization) for a request signed with Shared Key.
    `content_length` is the value the request will *declare*, which need not
    be how many bytes are really sent."""
    out = {
        "x-ms-date": email.utils.formatdate(usegmt=True),
        "x-ms-version": API_VERSION,
    }
    out.update(headers or {})
    if content_length is not None:
        out["Content-Length"] = str(content_length)
    sts = string_to_sign(method, path, query or {}, out, account)
    out["Authorization"] = f"SharedKey {account}:{shared_key_signature(sts, key_b64)}"
    return out


def request_bytes(
    method: str,
    port: int,
    path: str,
    query: Optional[Dict[str, str]] = None,
    headers: Optional[Dict[str, str]] = None,
) -> bytes:
    """Request line + headers + blank line (no body)."""
    target = path
    if query:
        target += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def read_response(sock: socket.socket, timeout: float = 30.0) -> Tuple[Optional[int], Dict[str, str], bytes, str]:
    """Read one HTTP response. Returns (status, headers, body, how) where
    `how` is 'response', 'closed' (EOF before a status line), 'reset' or
    'timeout'. Reads the body by Content-Length when present."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return (None, {}, data, "timeout") if not data else _parse(data, "timeout")
    except (ConnectionResetError, BrokenPipeError):
        return (None, {}, data, "reset") if not data else _parse(data, "reset")
    if not data:
        return None, {}, b"", "closed"
    status, headers, body, how = _parse(data, "response")
    want = headers.get("content-length")
    if status is not None and want is not None and want.isdigit():
        try:
            while len(body) < int(want):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (OSError, socket.timeout):
            pass
    return status, headers, body, how


def _parse(data: bytes, how: str) -> Tuple[Optional[int], Dict[str, str], bytes, str]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None, {}, data, "garbage" if how == "response" else how
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, body, "response"
