"""Wire helpers for tests that write HTTP by hand (test_malformed.py):
Shared Key signing of hand-made requests (reference section 2.1, with the
account name doubled in the canonicalized resource for path-style URLs), the
bytes of a request head, reading one response from a raw socket, and a plain
GET that reports only the status code.

The server these requests go to is started with `lapis_harness.LapisServer`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import socket
import urllib.parse
from typing import Dict, Optional, Tuple

from lapis_harness import DEV_ACCOUNT as ACCOUNT, DEV_KEY as ACCOUNT_KEY

API_VERSION = "2021-12-02"


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
