"""Start, stop and talk to a real `lapis` binary for the compatibility tests.

Nothing here knows about pytest; `conftest.py` wraps it in fixtures, and the
crash and malformed-input tests use `LapisServer` directly. The server is
driven exactly as the CLI contract describes:

    lapis serve --in-memory|--data-dir DIR --host 127.0.0.1 --queue-port QP
        --http-port HP --blob-port 0|BP --amqp-port 0|AP --kafka-port 0
        --enable-test-clock [--durability MODE] [--config FILE]
        [--account NAME:BASE64KEY ...]

The AMQP (Service Bus) and Blob endpoints are off (`--amqp-port 0`,
`--blob-port 0`) unless a test asks for them with `LapisServer(amqp=True)` or
`LapisServer(blob=True)`; each then gets a free port like the others.

Readiness is `GET http://127.0.0.1:HP/health` == 200 (and, with AMQP on, the
AMQP port accepting TCP connections), the injected clock is
moved with `POST /_lapis/clock/advance?seconds=N`, and the server is stopped
with SIGTERM (or SIGKILL for crash tests).

A `LapisServer` keeps its ports across `stop()` / `kill()` / `start()`, so
clients that were talking to it before a restart reach the restarted server
without being rebuilt. The ports are chosen below the kernel's ephemeral
range so an outgoing client connection cannot occupy the queue port while the
server is down.

Hand-made requests (Shared Key signing, raw sockets) live in `lapis_wire.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import requests
from azure.core.exceptions import HttpResponseError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_BIN = REPO / "target" / "debug" / "lapis"

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# A second account handed to the server with --account; the key is a fixed,
# obviously fake 64-byte value so failures are reproducible.
EXTRA_ACCOUNT = "lapisextra"
EXTRA_KEY = base64.b64encode(bytes(range(7, 7 + 64))).decode()

# SDK client knobs used by every test: no retries (a 5xx or a timeout fails the
# test at once and shows the real status instead of backing off for a minute),
# bounded network timeouts.
CLIENT_KWARGS = dict(retry_total=0, connection_timeout=10, read_timeout=30)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def lapis_bin() -> str:
    return os.environ.get("LAPIS_BIN") or str(DEFAULT_BIN)


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


def unique_name(prefix: str = "q") -> str:
    """A valid, unique queue name (lowercase letters and digits)."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def tail(path: Optional[Path], lines: int = 60) -> str:
    if path is None:
        return "<no log>"
    try:
        text = path.read_text(errors="replace")
    except OSError as e:  # pragma: no cover - diagnostic only
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _port_taken(log_text: str) -> bool:
    text = log_text.lower()
    return "address already in use" in text or "addrinuse" in text


class LapisServer:
    """One `lapis serve` process on fixed ports. Can be stopped (SIGTERM) or
    killed (SIGKILL) and started again on the same ports and data directory."""

    def __init__(
        self,
        data_dir: Optional[Path] = None,
        accounts: Iterable[Tuple[str, str]] = ((EXTRA_ACCOUNT, EXTRA_KEY),),
        log_dir: Optional[Path] = None,
        durability: Optional[str] = None,
        amqp: bool = False,
        blob: bool = False,
        config: Optional[Path] = None,
        extra_args: Iterable[str] = (),
    ) -> None:
        """`data_dir=None` runs `--in-memory`; `durability` is passed as
        `--durability` when given. `amqp=True` serves AMQP on a free port
        (`amqp_port`, kept across restarts like the others), `blob=True` the
        Blob endpoint (`blob_port`); `config` is passed as `--config`;
        `extra_args` are appended to the command line."""
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.accounts: List[Tuple[str, str]] = list(accounts)
        self.durability = durability
        self.amqp = amqp
        self.blob = blob
        self.extra_args = list(extra_args)
        # Resolved now: the server runs with the log dir as its working directory.
        self.config = Path(config).resolve() if config is not None else None
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="lapis-log-"))
        self.proc: Optional[subprocess.Popen] = None
        self.log_path: Optional[Path] = None
        self.starts = 0
        # True once a start succeeded: from then on clients know the ports, so
        # they are never changed again.
        self.served = False
        self._pick_ports()
        # Seconds the injected clock was moved forward since this process started.
        self.clock_offset = 0.0

    def _pick_ports(self) -> None:
        self.queue_port = free_port()
        self.http_port = free_port(exclude=(self.queue_port,))
        self.amqp_port = free_port(exclude=(self.queue_port, self.http_port)) if self.amqp else 0
        taken = (self.queue_port, self.http_port, self.amqp_port)
        self.blob_port = free_port(exclude=taken) if self.blob else 0

    # ------------------------------------------------------------------ lifecycle
    def _command(self) -> List[str]:
        cmd = [lapis_bin(), "serve"]
        if self.data_dir is None:
            cmd.append("--in-memory")
        else:
            cmd += ["--data-dir", str(self.data_dir)]
        cmd += [
            "--host", "127.0.0.1",
            "--queue-port", str(self.queue_port),
            "--http-port", str(self.http_port),
            "--blob-port", str(self.blob_port),
            "--amqp-port", str(self.amqp_port),
            "--kafka-port", "0",
            "--enable-test-clock",
        ]
        if self.durability:
            cmd += ["--durability", self.durability]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        for name, key in self.accounts:
            cmd += ["--account", f"{name}:{key}"]
        return cmd + self.extra_args

    def _spawn(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"lapis-{os.getpid()}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=str(self.log_dir),
                    env={**os.environ, "RUST_BACKTRACE": "1"},
                )
            except FileNotFoundError as e:
                raise RuntimeError(f"lapis binary not found ({lapis_bin()}); build it or set LAPIS_BIN") from e
        self.clock_offset = 0.0

    def start(self, timeout: float = START_TIMEOUT_S) -> "LapisServer":
        """Start and wait for /health == 200. If a port is taken, retries: on
        fresh ports before the first successful start, on the same ports
        (until `timeout`) after it, e.g. while a killed server's port is
        still held for a moment."""
        if self.running:
            raise RuntimeError("server already running")
        deadline = time.monotonic() + timeout
        while True:
            self._spawn()
            ok, why = self._wait_healthy(deadline)
            if ok:
                self.served = True
                return self
            # Leave the next attempt a moment, so the last failure reported is a real one.
            retry = _port_taken(tail(self.log_path, 200)) and time.monotonic() + 1.0 < deadline
            self.close()
            if not retry:
                raise RuntimeError(
                    f"lapis did not become healthy: {why}\n"
                    f"command: {' '.join(self._command())}\n"
                    f"--- tail of {self.log_path} ---\n{tail(self.log_path)}"
                )
            if self.served:
                time.sleep(0.3)
            else:
                self._pick_ports()  # nobody knows these ports yet

    def _wait_healthy(self, deadline: float) -> Tuple[bool, str]:
        why = "timeout"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return False, f"process exited with code {rc}"
            try:
                r = requests.get(f"{self.http_url}/health", timeout=1)
                if r.status_code == 200:
                    if not self.amqp or _accepts_tcp(self.amqp_port):
                        return True, ""
                    why = f"/health is 200 but AMQP port {self.amqp_port} does not accept connections"
                else:
                    why = f"/health answered {r.status_code}"
            except requests.RequestException as e:
                why = f"/health not reachable: {e.__class__.__name__}"
            time.sleep(0.05)
        return False, f"{why} at the start deadline"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` and wait for the process. Returns the exit code. Raises if
        it does not exit within `timeout` (after killing it)."""
        if self.proc is None:
            return 0
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.close()
                raise AssertionError(
                    f"lapis did not exit within {timeout}s of signal {sig}\n"
                    f"--- tail of {self.log_path} ---\n{tail(self.log_path)}"
                )
        self.proc = None
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL, as a crash would, and wait for the process to be gone."""
        return self.stop(signal.SIGKILL)

    def close(self) -> None:
        """Teardown: SIGKILL the process if it is still running; never raises."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> "LapisServer":
        self.stop(sig)
        return self.start()

    def __enter__(self) -> "LapisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        """Graceful stop (SIGTERM) if still running."""
        if self.running:
            self.stop()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the current (or last) process's output."""
        return tail(self.log_path, lines)

    # ------------------------------------------------------------------ addressing
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def queue_host(self) -> str:
        return f"127.0.0.1:{self.queue_port}"

    def account_url(self, account: str = DEV_ACCOUNT) -> str:
        return f"http://{self.queue_host}/{account}"

    def blob_account_url(self, account: str = DEV_ACCOUNT) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{account}"

    def conn_str(self, account: str = DEV_ACCOUNT, key: str = DEV_KEY) -> str:
        """The storage connection string, with `BlobEndpoint` when the Blob
        endpoint is on."""
        blob = f"BlobEndpoint={self.blob_account_url(account)};" if self.blob_port else ""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"QueueEndpoint={self.account_url(account)};{blob}"
        )

    # ------------------------------------------------------------------ clock
    def advance_clock(self, seconds: float) -> None:
        r = requests.post(
            f"{self.http_url}/_lapis/clock/advance", params={"seconds": int(seconds)}, timeout=10
        )
        if not 200 <= r.status_code < 300:
            raise AssertionError(f"clock advance answered {r.status_code}: {r.text[:500]}")
        self.clock_offset += int(seconds)

    def server_now(self) -> dt.datetime:
        """Best estimate of the server's (injected) clock, as aware UTC."""
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.clock_offset)


def kill_at_random(server: "LapisServer", kills: int, load_seconds: float, seed: int) -> int:
    """SIGKILLs `server` `kills` times at random moments (and starts it again on the
    same ports and data after up to half a second), then waits out the rest of
    `load_seconds` from the first call. Returns the number of kills."""
    import random

    rng = random.Random(seed)
    started = time.monotonic()
    for _ in range(kills):
        time.sleep(rng.uniform(1.5, max(2.0, load_seconds / kills)))
        server.kill()
        time.sleep(rng.uniform(0.0, 0.5))
        server.start()
    while time.monotonic() - started < load_seconds:
        time.sleep(0.5)
    return kills


def service_client(server: "LapisServer", account: str = DEV_ACCOUNT, key: str = DEV_KEY, **kwargs):
    """QueueServiceClient built from the server's connection string."""
    from azure.storage.queue import QueueServiceClient

    return QueueServiceClient.from_connection_string(server.conn_str(account, key), **{**CLIENT_KWARGS, **kwargs})


# ---------------------------------------------------------------------- assertions
def error_code_of(exc: HttpResponseError) -> Optional[str]:
    code = getattr(exc, "error_code", None)
    return getattr(code, "value", code)


def describe(exc: HttpResponseError) -> str:
    resp = exc.response
    if resp is None:
        return repr(exc)
    try:
        body = resp.text()
    except Exception:  # pragma: no cover
        body = "<unreadable>"
    headers = dict(resp.headers)
    return f"status={resp.status_code} headers={headers} body={body[:800]!r}"


def assert_storage_error(exc: BaseException, status: int, code: str) -> None:
    """The SDK error carries `status`, the body's <Code> and the
    x-ms-error-code header both equal `code`."""
    assert isinstance(exc, HttpResponseError), f"expected HttpResponseError, got {exc!r}"
    info = describe(exc)
    assert exc.status_code == status, f"expected status {status}, got {exc.status_code}: {info}"
    assert exc.response is not None
    header = exc.response.headers.get("x-ms-error-code")
    assert header == code, f"expected x-ms-error-code {code!r}, got {header!r}: {info}"
    assert error_code_of(exc) == code, f"expected error body Code {code!r}, got {error_code_of(exc)!r}: {info}"


def assert_each_fails(ops: Dict[str, Callable[[], object]], status: int, code: str) -> None:
    """Runs every named operation; each must raise a storage error with `status` and
    `code`. Reports every operation that did not, not just the first."""
    problems = []
    for name, op in ops.items():
        try:
            op()
            problems.append(f"{name}: no error")
        except HttpResponseError as e:
            try:
                assert_storage_error(e, status, code)
            except AssertionError as ae:
                problems.append(f"{name}: {ae}")
    assert not problems, "\n".join(problems)


def parse_iso(value) -> dt.datetime:
    """Parse an ISO-8601 time as returned in SignedIdentifiers (any number of
    fraction digits, trailing Z)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    s = str(value).strip()
    if s.endswith("Z"):
        s = s[:-1]
    frac = ""
    if "." in s:
        s, frac = s.split(".", 1)
    parsed = dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    if frac:
        parsed += dt.timedelta(microseconds=int((frac + "000000")[:6]))
    return parsed


def capture_response(into: Dict[str, object]):
    """A raw_response_hook that records the last response's status and headers."""

    def hook(pipeline_response) -> None:
        http = pipeline_response.http_response
        into["status"] = http.status_code
        into["headers"] = {k.lower(): v for k, v in http.headers.items()}
        into["request_headers"] = {k.lower(): v for k, v in pipeline_response.http_request.headers.items()}
        into["url"] = pipeline_response.http_request.url

    return hook
