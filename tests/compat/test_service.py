"""Service-level operations: service properties (logging, metrics, CORS),
CORS enforcement as a browser would see it, and service stats through the
`-secondary` account path.

These tests change account-wide settings, so they run against their own
in-memory server (module scope) instead of the shared session server."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import (
    CorsRule,
    Metrics,
    QueueAnalyticsLogging,
    QueueServiceClient,
    RetentionPolicy,
)

from lapis_harness import (
    CLIENT_KWARGS,
    DEV_ACCOUNT,
    DEV_KEY,
    LapisServer,
    assert_storage_error,
    capture_response,
    service_client,
    unique_name,
)

ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LapisServer(log_dir=tmp_path_factory.mktemp("lapis-service-log")) as s:
        yield s


@pytest.fixture
def svc(server):
    client = service_client(server)
    yield client
    client.close()


def _reset(svc):
    svc.set_service_properties(
        analytics_logging=QueueAnalyticsLogging(),
        hour_metrics=Metrics(),
        minute_metrics=Metrics(),
        cors=[],
    )


# --------------------------------------------------------------------------- properties
def test_default_service_properties(lapis_factory, make_service):
    fresh = lapis_factory()
    props = make_service(fresh).get_service_properties()
    assert set(props) == {"analytics_logging", "hour_metrics", "minute_metrics", "cors"}
    assert props["analytics_logging"].version == "1.0"
    assert props["hour_metrics"].enabled is False
    assert props["minute_metrics"].enabled is False
    assert props["cors"] == []


def test_service_properties_round_trip(svc):
    logging = QueueAnalyticsLogging(
        version="1.0", delete=True, read=True, write=False, retention_policy=RetentionPolicy(enabled=True, days=5)
    )
    hour = Metrics(version="1.0", enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=7))
    minute = Metrics(version="1.0", enabled=True, include_apis=False, retention_policy=RetentionPolicy(enabled=False))
    cors = [
        CorsRule(
            [ORIGIN, "https://b.example.com"],
            ["GET", "PUT"],
            allowed_headers=["x-ms-meta-*", "x-custom"],
            exposed_headers=["x-ms-*"],
            max_age_in_seconds=200,
        ),
        CorsRule(["*"], ["DELETE", "POST", "OPTIONS"], max_age_in_seconds=0),
    ]
    seen = {}
    svc.set_service_properties(logging, hour, minute, cors, raw_response_hook=capture_response(seen))
    assert seen["status"] == 202

    got = svc.get_service_properties()
    lg = got["analytics_logging"]
    assert (lg.version, lg.delete, lg.read, lg.write) == ("1.0", True, True, False)
    assert (lg.retention_policy.enabled, lg.retention_policy.days) == (True, 5)

    hm = got["hour_metrics"]
    assert (hm.version, hm.enabled, hm.include_apis) == ("1.0", True, True)
    assert (hm.retention_policy.enabled, hm.retention_policy.days) == (True, 7)

    mm = got["minute_metrics"]
    assert (mm.enabled, mm.include_apis) == (True, False)
    assert mm.retention_policy.enabled is False

    rules = got["cors"]
    assert len(rules) == 2
    r0, r1 = rules
    assert r0.allowed_origins == f"{ORIGIN},https://b.example.com"
    assert r0.allowed_methods == "GET,PUT"
    assert r0.allowed_headers == "x-ms-meta-*,x-custom"
    assert r0.exposed_headers == "x-ms-*"
    assert r0.max_age_in_seconds == 200
    assert r1.allowed_origins == "*"
    assert r1.allowed_methods == "DELETE,POST,OPTIONS"
    assert r1.allowed_headers == "" and r1.exposed_headers == ""
    assert r1.max_age_in_seconds == 0
    _reset(svc)


def test_set_service_properties_keeps_omitted_sections(svc):
    """Azure: elements not present in the request keep their current value."""
    logging = QueueAnalyticsLogging(read=True, write=True, delete=True, retention_policy=RetentionPolicy(enabled=True, days=3))
    svc.set_service_properties(analytics_logging=logging, cors=[CorsRule([ORIGIN], ["GET"], max_age_in_seconds=10)])
    svc.set_service_properties(hour_metrics=Metrics(enabled=True, include_apis=False, retention_policy=RetentionPolicy(enabled=True, days=2)))
    got = svc.get_service_properties()
    assert got["analytics_logging"].read is True and got["analytics_logging"].retention_policy.days == 3
    assert got["hour_metrics"].enabled is True and got["hour_metrics"].retention_policy.days == 2
    assert [r.allowed_origins for r in got["cors"]] == [ORIGIN]
    # an empty <Cors/> clears the rules, the rest stays
    svc.set_service_properties(cors=[])
    got = svc.get_service_properties()
    assert got["cors"] == []
    assert got["analytics_logging"].read is True
    _reset(svc)


# --------------------------------------------------------------------------- CORS enforcement
@pytest.fixture
def cors_rules(svc):
    svc.set_service_properties(
        cors=[
            CorsRule(
                [ORIGIN],
                ["GET", "PUT", "POST"],
                allowed_headers=["x-ms-*", "content-type"],
                exposed_headers=["x-ms-meta-*", "x-ms-request-id"],
                max_age_in_seconds=120,
            )
        ]
    )
    yield
    svc.set_service_properties(cors=[])


def _preflight(server, path, origin, method, req_headers=None):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        headers["Access-Control-Request-Headers"] = req_headers
    return requests.options(f"http://{server.queue_host}/{DEV_ACCOUNT}/{path}", headers=headers, timeout=10)


def _error_code(resp) -> str:
    code = resp.headers.get("x-ms-error-code")
    if code:
        return code
    try:
        return ET.fromstring(resp.content).findtext("Code") or ""
    except ET.ParseError:
        return ""


def _split(value):
    return [v.strip().lower() for v in (value or "").split(",") if v.strip()]


def test_cors_preflight_allowed(server, cors_rules):
    r = _preflight(server, "anyqueue/messages", ORIGIN, "PUT", "x-ms-version, x-ms-date, content-type")
    assert r.status_code == 200, f"{r.status_code} {r.headers} {r.text[:300]}"
    assert r.headers.get("Access-Control-Allow-Origin") == ORIGIN
    assert "put" in _split(r.headers.get("Access-Control-Allow-Methods"))
    assert r.headers.get("Access-Control-Max-Age") == "120"
    allowed = _split(r.headers.get("Access-Control-Allow-Headers"))
    for h in ("x-ms-version", "x-ms-date", "content-type"):
        assert h in allowed, f"{h} missing from Access-Control-Allow-Headers {allowed}"


def test_cors_preflight_on_service_root(server, cors_rules):
    r = _preflight(server, "?comp=list", ORIGIN, "GET")
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    assert r.headers.get("Access-Control-Allow-Origin") == ORIGIN


@pytest.mark.parametrize(
    "origin,method,req_headers",
    [
        (OTHER_ORIGIN, "GET", None),  # origin not allowed
        (ORIGIN, "DELETE", None),  # method not allowed
        (ORIGIN, "GET", "x-other-header"),  # header not allowed
    ],
    ids=["origin", "method", "header"],
)
def test_cors_preflight_rejected(server, cors_rules, origin, method, req_headers):
    r = _preflight(server, "anyqueue", origin, method, req_headers)
    assert r.status_code == 403, f"{r.status_code} {r.headers} {r.text[:300]}"
    assert _error_code(r) == "CorsPreflightFailure"
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_preflight_without_rules_is_403(server, svc):
    svc.set_service_properties(cors=[])
    r = _preflight(server, "anyqueue", ORIGIN, "GET")
    assert r.status_code == 403
    assert _error_code(r) == "CorsPreflightFailure"


def test_cors_headers_on_authenticated_request(svc, cors_rules):
    name = unique_name()
    q = svc.create_queue(name, metadata={"a": "b"})
    try:
        seen = {}
        q.get_queue_properties(headers={"Origin": ORIGIN}, raw_response_hook=capture_response(seen))
        assert seen["status"] == 200
        assert seen["headers"].get("access-control-allow-origin") == ORIGIN, seen["headers"]
        exposed = _split(seen["headers"].get("access-control-expose-headers"))
        assert exposed, f"Access-Control-Expose-Headers missing: {seen['headers']}"

        seen = {}
        q.get_queue_properties(headers={"Origin": OTHER_ORIGIN}, raw_response_hook=capture_response(seen))
        assert seen["status"] == 200, "CORS never blocks the request itself"
        assert "access-control-allow-origin" not in seen["headers"]

        seen = {}
        q.get_queue_properties(raw_response_hook=capture_response(seen))
        assert "access-control-allow-origin" not in seen["headers"], "no Origin, no CORS headers"
    finally:
        svc.delete_queue(name)


# --------------------------------------------------------------------------- stats
def _secondary_client(server) -> QueueServiceClient:
    """What a Python user does to reach the emulator's secondary: the account
    URL ends in `<account>-secondary`, the credential names the real account,
    and secondary_hostname makes the SDK's forced SECONDARY location keep the
    same host (the SDK only swaps the netloc)."""
    return QueueServiceClient(
        account_url=server.account_url(f"{DEV_ACCOUNT}-secondary"),
        credential={"account_name": DEV_ACCOUNT, "account_key": DEV_KEY},
        secondary_hostname=server.queue_host,
        **CLIENT_KWARGS,
    )


def test_service_stats_on_secondary(server):
    client = _secondary_client(server)
    seen = {}
    stats = client.get_service_stats(raw_response_hook=capture_response(seen))
    assert f"/{DEV_ACCOUNT}-secondary/" in seen["url"]
    assert seen["status"] == 200
    assert stats["geo_replication"]["status"] == "live"
    last_sync = stats["geo_replication"]["last_sync_time"]
    assert isinstance(last_sync, dt.datetime)


def test_service_stats_on_primary_is_400(server):
    client = QueueServiceClient(
        account_url=server.account_url(),
        credential=DEV_KEY,
        secondary_hostname=server.queue_host,  # keeps the primary path
        **CLIENT_KWARGS,
    )
    seen = {}
    with pytest.raises(HttpResponseError) as ei:
        client.get_service_stats(raw_response_hook=capture_response(seen))
    assert f"/{DEV_ACCOUNT}/" in seen["url"] and "-secondary" not in seen["url"]
    assert_storage_error(ei.value, 400, "InvalidQueryParameterValue")


def test_secondary_path_is_the_same_account(server, svc):
    name = unique_name()
    svc.create_queue(name, metadata={"via": "primary"})
    try:
        secondary = _secondary_client(server)
        listed = [q.name for q in secondary.list_queues(name_starts_with=name)]
        assert listed == [name]
        props = secondary.get_queue_client(name).get_queue_properties()
        assert props.metadata == {"via": "primary"}
    finally:
        svc.delete_queue(name)
