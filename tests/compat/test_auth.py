"""Authentication and authorization as the Python SDK exercises them: Shared
Key, anonymous requests, account SAS, queue (service) SAS, stored access
policies, extra accounts, and the standard response headers.

SAS times are computed from the server's injected clock estimate
(`lapis.server_now()`, which includes every advance_clock of this worker), so
earlier clock moves in the same session cannot make a "valid" token expire.
Tokens meant to be expired use wall-clock times in the past, which are in the
past on either clock."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import re
import uuid

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue import (
    AccessPolicy,
    AccountSasPermissions,
    QueueClient,
    QueueSasPermissions,
    QueueServiceClient,
    ResourceTypes,
    Services,
    generate_account_sas,
    generate_queue_sas,
)

from lapis_harness import (
    CLIENT_KWARGS,
    DEV_ACCOUNT,
    DEV_KEY,
    EXTRA_ACCOUNT,
    EXTRA_KEY,
    assert_each_fails,
    assert_storage_error,
    capture_response,
    service_client,
    unique_name,
)

WRONG_KEY = base64.b64encode(b"not-the-right-key-" * 4).decode()
X_MS_VERSION = "2026-06-06"


def _wall_now():
    return dt.datetime.now(dt.timezone.utc)


def _sas_service(lapis, sas) -> QueueServiceClient:
    return QueueServiceClient(account_url=lapis.account_url(), credential=sas, **CLIENT_KWARGS)


def _sas_queue(lapis, name, sas) -> QueueClient:
    return QueueClient(account_url=lapis.account_url(), queue_name=name, credential=sas, **CLIENT_KWARGS)


def _account_sas(lapis, permission, resource_types=None, services=None, expiry=None, start=None):
    return generate_account_sas(
        DEV_ACCOUNT,
        DEV_KEY,
        resource_types or ResourceTypes(service=True, container=True, object=True),
        permission,
        expiry=expiry or lapis.server_now() + dt.timedelta(days=1),
        start=start,
        services=services or Services(queue=True),
    )


# --------------------------------------------------------------------------- shared key
def test_wrong_account_key_is_403(lapis, queue):
    bad = QueueServiceClient(
        account_url=lapis.account_url(),
        credential={"account_name": DEV_ACCOUNT, "account_key": WRONG_KEY},
        **CLIENT_KWARGS,
    )
    with pytest.raises(ClientAuthenticationError) as ei:
        list(bad.list_queues())
    assert_storage_error(ei.value, 403, "AuthenticationFailed")
    with pytest.raises(ClientAuthenticationError) as ei:
        bad.get_queue_client(queue.queue_name).send_message("nope")
    assert_storage_error(ei.value, 403, "AuthenticationFailed")
    assert queue.get_queue_properties().approximate_message_count == 0


def test_no_credentials_is_403(lapis, queue):
    """The SDK refuses to build a client without credentials, so this is raw HTTP
    exactly as an anonymous browser/curl request would look."""
    base = lapis.account_url()
    hdrs = {"x-ms-version": X_MS_VERSION, "x-ms-date": email.utils.formatdate(usegmt=True)}
    for method, url, body in [
        ("GET", f"{base}/?comp=list", None),
        ("GET", f"{base}/{queue.queue_name}?comp=metadata", None),
        ("GET", f"{base}/{queue.queue_name}/messages?peekonly=true", None),
        ("POST", f"{base}/{queue.queue_name}/messages", "<QueueMessage><MessageText>x</MessageText></QueueMessage>"),
    ]:
        r = requests.request(method, url, headers=hdrs, data=body, timeout=10)
        assert r.status_code == 403, f"{method} {url}: {r.status_code} {r.text[:200]}"
        assert r.headers.get("x-ms-error-code") == "AuthenticationFailed", f"{method} {url}: {r.headers}"
    assert queue.get_queue_properties().approximate_message_count == 0


def test_garbage_shared_key_signature_is_403(lapis, queue):
    hdrs = {
        "x-ms-version": X_MS_VERSION,
        "x-ms-date": email.utils.formatdate(usegmt=True),
        "Authorization": f"SharedKey {DEV_ACCOUNT}:{base64.b64encode(b'x' * 32).decode()}",
    }
    r = requests.get(f"{lapis.account_url()}/{queue.queue_name}?comp=metadata", headers=hdrs, timeout=10)
    assert r.status_code == 403
    assert r.headers.get("x-ms-error-code") == "AuthenticationFailed"


# --------------------------------------------------------------------------- account SAS
def test_account_sas_read_list(lapis, queue):
    queue.set_queue_metadata({"k": "v"})
    queue.send_message("visible to readers")
    sas = _account_sas(lapis, AccountSasPermissions(read=True, list=True))
    svc = _sas_service(lapis, sas)

    names = [q.name for q in svc.list_queues(name_starts_with=queue.queue_name)]
    assert names == [queue.queue_name]
    reader = svc.get_queue_client(queue.queue_name)
    props = reader.get_queue_properties()
    assert props.metadata == {"k": "v"}
    assert [m.content for m in reader.peek_messages()] == ["visible to readers"]
    assert svc.get_service_properties()["analytics_logging"].version == "1.0"

    denied = {
        "send (needs a)": lambda: reader.send_message("x"),
        "receive (needs p)": lambda: reader.receive_message(),
        "create queue (needs c/w)": lambda: svc.create_queue(unique_name()),
        "delete queue (needs d)": lambda: reader.delete_queue(),
        "clear (needs d)": lambda: reader.clear_messages(),
        "set metadata (needs w)": lambda: reader.set_queue_metadata({"x": "y"}),
    }
    assert_each_fails(denied, 403, "AuthorizationPermissionMismatch")
    # nothing changed
    assert queue.get_queue_properties().metadata == {"k": "v"}
    assert queue.get_queue_properties().approximate_message_count == 1


def test_account_sas_full_permissions_message_lifecycle(lapis):
    sas = _account_sas(lapis, AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True, update=True, process=True))
    svc = _sas_service(lapis, sas)
    name = unique_name()
    q = svc.create_queue(name)
    q.send_message("sas message")
    m = q.receive_message(visibility_timeout=30)
    assert m.content == "sas message"
    u = q.update_message(m, content="updated", visibility_timeout=0)
    m2 = q.receive_message()
    assert m2.content == "updated"
    q.delete_message(m2)
    q.set_queue_metadata({"a": "1"})
    assert q.get_queue_properties().metadata == {"a": "1"}
    q.clear_messages()
    svc.delete_queue(name)
    assert u.pop_receipt


def test_account_sas_resource_type_mismatch(lapis, queue):
    sas = _account_sas(lapis, AccountSasPermissions(read=True, list=True), resource_types=ResourceTypes(service=True))
    svc = _sas_service(lapis, sas)
    assert queue.queue_name in [q.name for q in svc.list_queues(name_starts_with=queue.queue_name)]
    with pytest.raises(HttpResponseError) as ei:
        svc.get_queue_client(queue.queue_name).get_queue_properties()
    assert_storage_error(ei.value, 403, "AuthorizationResourceTypeMismatch")


def test_account_sas_service_mismatch(lapis, queue):
    sas = _account_sas(lapis, AccountSasPermissions(read=True, list=True), services=Services(blob=True))
    svc = _sas_service(lapis, sas)
    with pytest.raises(HttpResponseError) as ei:
        list(svc.list_queues())
    assert_storage_error(ei.value, 403, "AuthorizationServiceMismatch")


def test_expired_account_sas_is_403(lapis, queue):
    now = _wall_now()
    sas = _account_sas(lapis, AccountSasPermissions(read=True, list=True), expiry=now - dt.timedelta(hours=1), start=now - dt.timedelta(hours=2))
    svc = _sas_service(lapis, sas)
    with pytest.raises(ClientAuthenticationError) as ei:
        list(svc.list_queues())
    assert_storage_error(ei.value, 403, "AuthenticationFailed")


def test_not_yet_valid_account_sas_is_403(lapis, queue):
    start = lapis.server_now() + dt.timedelta(days=1)
    sas = _account_sas(lapis, AccountSasPermissions(read=True, list=True), start=start, expiry=start + dt.timedelta(days=1))
    with pytest.raises(ClientAuthenticationError) as ei:
        _sas_service(lapis, sas).get_queue_client(queue.queue_name).get_queue_properties()
    assert_storage_error(ei.value, 403, "AuthenticationFailed")


def test_tampered_account_sas_is_403(lapis, queue):
    sas = _account_sas(lapis, AccountSasPermissions(read=True))
    # widen the permissions without re-signing
    tampered = re.sub(r"(^|&)sp=[^&]*", r"\1sp=rwdlacup", sas)
    assert tampered != sas
    with pytest.raises(ClientAuthenticationError) as ei:
        _sas_service(lapis, tampered).get_queue_client(queue.queue_name).send_message("x")
    assert_storage_error(ei.value, 403, "AuthenticationFailed")


# --------------------------------------------------------------------------- queue SAS
def test_queue_sas_add_process(lapis, queue, queue_service):
    sas = generate_queue_sas(
        DEV_ACCOUNT,
        queue.queue_name,
        DEV_KEY,
        permission=QueueSasPermissions(add=True, process=True),
        expiry=lapis.server_now() + dt.timedelta(hours=2),
    )
    client = _sas_queue(lapis, queue.queue_name, sas)
    client.send_message("via queue sas")
    m = client.receive_message(visibility_timeout=30)
    assert m.content == "via queue sas"
    client.delete_message(m)
    assert queue.get_queue_properties().approximate_message_count == 0

    client.send_message("second")
    for what, op in {
        "peek (needs r)": lambda: client.peek_messages(),
        "get properties (needs r)": lambda: client.get_queue_properties(),
    }.items():
        with pytest.raises(HttpResponseError) as ei:
            op()
        assert_storage_error(ei.value, 403, "AuthorizationPermissionMismatch")
    m = client.receive_message(visibility_timeout=30)
    with pytest.raises(HttpResponseError) as ei:
        client.update_message(m, content="needs u", visibility_timeout=0)
    assert_storage_error(ei.value, 403, "AuthorizationPermissionMismatch")

    # the signature covers this queue only
    other = queue_service.create_queue(unique_name())
    try:
        with pytest.raises(HttpResponseError) as ei:
            _sas_queue(lapis, other.queue_name, sas).send_message("wrong queue")
        assert_storage_error(ei.value, 403, "AuthenticationFailed")
        assert other.get_queue_properties().approximate_message_count == 0
    finally:
        other.delete_queue()

    # and grants nothing at the service level
    with pytest.raises(HttpResponseError) as ei:
        list(_sas_service(lapis, sas).list_queues())
    assert ei.value.status_code == 403


def test_expired_queue_sas_is_403(lapis, queue):
    now = _wall_now()
    sas = generate_queue_sas(
        DEV_ACCOUNT, queue.queue_name, DEV_KEY, permission="raup",
        start=now - dt.timedelta(hours=2), expiry=now - dt.timedelta(minutes=5),
    )
    with pytest.raises(ClientAuthenticationError) as ei:
        _sas_queue(lapis, queue.queue_name, sas).send_message("late")
    assert_storage_error(ei.value, 403, "AuthenticationFailed")


# --------------------------------------------------------------------------- stored access policy
def test_sas_with_stored_access_policy_and_revocation(lapis, queue):
    queue.set_queue_access_policy(
        {"writers": AccessPolicy(permission="rap", start=_wall_now() - dt.timedelta(hours=1), expiry=lapis.server_now() + dt.timedelta(days=1))}
    )
    sas = generate_queue_sas(DEV_ACCOUNT, queue.queue_name, DEV_KEY, policy_id="writers")
    assert "si=writers" in sas and "sp=" not in sas
    client = _sas_queue(lapis, queue.queue_name, sas)
    client.send_message("under policy")
    assert [m.content for m in client.peek_messages()] == ["under policy"]
    m = client.receive_message()
    client.delete_message(m)

    # "u" is not granted by the policy
    client.send_message("x")
    m = client.receive_message(visibility_timeout=30)
    with pytest.raises(HttpResponseError) as ei:
        client.update_message(m, content="y", visibility_timeout=0)
    assert_storage_error(ei.value, 403, "AuthorizationPermissionMismatch")
    client.delete_message(m)

    # revoke: remove every stored policy
    queue.set_queue_access_policy({})
    with pytest.raises(ClientAuthenticationError) as ei:
        client.send_message("after revocation")
    assert_storage_error(ei.value, 403, "AuthenticationFailed")
    assert [m.content for m in queue.peek_messages(max_messages=32)].count("after revocation") == 0


def test_sas_policy_permissions_limit_the_token(lapis, queue):
    queue.set_queue_access_policy({"ro": AccessPolicy(permission="r", expiry=lapis.server_now() + dt.timedelta(days=1))})
    sas = generate_queue_sas(DEV_ACCOUNT, queue.queue_name, DEV_KEY, policy_id="ro")
    client = _sas_queue(lapis, queue.queue_name, sas)
    assert client.peek_messages() == []
    with pytest.raises(HttpResponseError) as ei:
        client.send_message("not allowed")
    assert_storage_error(ei.value, 403, "AuthorizationPermissionMismatch")


def test_sas_with_unknown_policy_is_403(lapis, queue):
    sas = generate_queue_sas(DEV_ACCOUNT, queue.queue_name, DEV_KEY, policy_id="nosuchpolicy")
    with pytest.raises(ClientAuthenticationError) as ei:
        _sas_queue(lapis, queue.queue_name, sas).peek_messages()
    assert_storage_error(ei.value, 403, "AuthenticationFailed")


# --------------------------------------------------------------------------- extra account
def test_extra_account_works_and_is_isolated(lapis, queue_service):
    extra = service_client(lapis, EXTRA_ACCOUNT, EXTRA_KEY)
    name = unique_name("shared")
    eq = extra.create_queue(name, metadata={"owner": "extra"})
    try:
        eq.send_message("extra account message")
        assert [q.name for q in extra.list_queues(name_starts_with=name)] == [name]
        # devstoreaccount1 does not see it
        assert [q.name for q in queue_service.list_queues(name_starts_with=name)] == []
        with pytest.raises(ResourceNotFoundError) as ei:
            queue_service.get_queue_client(name).get_queue_properties()
        assert_storage_error(ei.value, 404, "QueueNotFound")
        # the same name is independent in devstoreaccount1
        dq = queue_service.create_queue(name)
        try:
            assert dq.peek_messages() == []
            assert dq.get_queue_properties().metadata == {}
            dq.send_message("dev account message")
            assert [m.content for m in eq.peek_messages(max_messages=32)] == ["extra account message"]
            assert eq.get_queue_properties().metadata == {"owner": "extra"}
        finally:
            dq.delete_queue()
        # the extra account with devstoreaccount1's key, and vice versa, fail
        for account, key in ((EXTRA_ACCOUNT, DEV_KEY), (DEV_ACCOUNT, EXTRA_KEY)):
            crossed = QueueServiceClient(
                account_url=lapis.account_url(account),
                credential={"account_name": account, "account_key": key},
                **CLIENT_KWARGS,
            )
            with pytest.raises(ClientAuthenticationError) as ei:
                list(crossed.list_queues())
            assert_storage_error(ei.value, 403, "AuthenticationFailed")
        # an account SAS for the extra account works there only
        sas = generate_account_sas(
            EXTRA_ACCOUNT, EXTRA_KEY, ResourceTypes(service=True, container=True, object=True),
            AccountSasPermissions(read=True, list=True), expiry=lapis.server_now() + dt.timedelta(days=1),
        )
        via_sas = QueueServiceClient(account_url=lapis.account_url(EXTRA_ACCOUNT), credential=sas, **CLIENT_KWARGS)
        assert [q.name for q in via_sas.list_queues(name_starts_with=name)] == [name]
        misused = QueueServiceClient(account_url=lapis.account_url(DEV_ACCOUNT), credential=sas, **CLIENT_KWARGS)
        with pytest.raises(ClientAuthenticationError) as ei:
            list(misused.list_queues())
        assert_storage_error(ei.value, 403, "AuthenticationFailed")
    finally:
        extra.delete_queue(name)


# --------------------------------------------------------------------------- headers
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _check_common_headers(seen, client_request_id=None):
    h = seen["headers"]
    assert h.get("x-ms-request-id"), f"x-ms-request-id missing: {h}"
    assert _VERSION_RE.match(h.get("x-ms-version", "")), f"x-ms-version missing/odd: {h}"
    date = h.get("date")
    assert date and date.endswith("GMT"), f"Date missing/not RFC 1123: {h}"
    email.utils.parsedate_to_datetime(date)
    if client_request_id is not None:
        assert h.get("x-ms-client-request-id") == client_request_id, f"client request id not echoed: {h}"
    return h["x-ms-request-id"]


def test_standard_response_headers(queue_service):
    name = unique_name()
    q = queue_service.get_queue_client(name)
    request_ids = []
    ops = [
        lambda **kw: q.create_queue(**kw),
        lambda **kw: q.get_queue_properties(**kw),
        lambda **kw: q.send_message("h", **kw),
        lambda **kw: q.peek_messages(**kw),
        lambda **kw: q.get_queue_access_policy(**kw),
        lambda **kw: list(queue_service.list_queues(name_starts_with=name, **kw)),
        lambda **kw: queue_service.get_service_properties(**kw),
        lambda **kw: q.clear_messages(**kw),
        lambda **kw: q.delete_queue(**kw),
    ]
    for i, op in enumerate(ops):
        seen = {}
        crid = f"compat-{i}-{uuid.uuid4()}"
        op(client_request_id=crid, raw_response_hook=capture_response(seen))
        assert seen["request_headers"]["x-ms-client-request-id"] == crid
        request_ids.append(_check_common_headers(seen, crid))
    assert len(set(request_ids)) == len(request_ids), "x-ms-request-id is fresh per request"


def test_error_responses_carry_standard_headers(queue_service):
    q = queue_service.get_queue_client(unique_name())
    seen = {}
    with pytest.raises(ResourceNotFoundError):
        q.get_queue_properties(raw_response_hook=capture_response(seen))
    assert seen["status"] == 404
    _check_common_headers(seen)
    assert seen["headers"].get("x-ms-error-code") == "QueueNotFound"


# --------------------------------------------------------------------------- API versions
@pytest.mark.parametrize("api_version", ["2019-02-02", "2021-12-02", "2024-05-04", "2026-06-06"])
def test_older_and_current_api_versions_work(lapis, api_version):
    """Older 12.x SDKs (and other languages) send older x-ms-version dates."""
    svc = service_client(lapis, api_version=api_version)
    name = unique_name()
    seen = {}
    q = svc.create_queue(name, metadata={"v": api_version}, raw_response_hook=capture_response(seen))
    assert seen["request_headers"]["x-ms-version"] == api_version
    try:
        q.send_message(f"sent with {api_version}")
        m = q.receive_message()
        assert m.content == f"sent with {api_version}"
        q.delete_message(m)
        assert q.get_queue_properties().metadata == {"v": api_version}
        assert name in [x.name for x in svc.list_queues(name_starts_with=name)]
    finally:
        svc.delete_queue(name)


# --------------------------------------------------------------------------- hand-signed schemes
# No current SDK sends Shared Key Lite, and the SDKs always send a fresh x-ms-date,
# so these cases sign requests by hand with the documented string-to-sign.
from lapis_wire import shared_key_signature


def _rfc1123(when: dt.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(dt.timezone.utc), usegmt=True)


def _sign(key_b64: str, string_to_sign: str) -> str:
    return shared_key_signature(string_to_sign, key_b64)


def _shared_key_lite_list(lapis, date: str, key: str = DEV_KEY):
    path = f"/{DEV_ACCOUNT}/"
    headers = {"x-ms-date": date, "x-ms-version": X_MS_VERSION}
    # VERB, Content-MD5, Content-Type, Date, canonical headers, resource + ?comp=
    sts = f"GET\n\n\n\nx-ms-date:{date}\nx-ms-version:{X_MS_VERSION}\n/{DEV_ACCOUNT}{path}?comp=list"
    headers["Authorization"] = f"SharedKeyLite {DEV_ACCOUNT}:{_sign(key, sts)}"
    return requests.get(f"http://{lapis.queue_host}{path}?comp=list", headers=headers, timeout=10)


def test_shared_key_lite_lists_queues(lapis, queue):
    r = _shared_key_lite_list(lapis, _rfc1123(_wall_now()))
    assert r.status_code == 200, r.text
    assert f"<Name>{queue.queue_name}</Name>" in r.text


def test_shared_key_lite_with_wrong_key_is_403(lapis):
    r = _shared_key_lite_list(lapis, _rfc1123(_wall_now()), key=WRONG_KEY)
    assert r.status_code == 403
    assert r.headers["x-ms-error-code"] == "AuthenticationFailed"


def test_request_dated_outside_fifteen_minutes_is_403(lapis):
    stale = _rfc1123(_wall_now() - dt.timedelta(minutes=20))
    r = _shared_key_lite_list(lapis, stale)
    assert r.status_code == 403
    assert r.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert "<AuthenticationErrorDetail>" in r.text


def test_https_only_sas_over_http_is_protocol_mismatch(lapis, queue):
    expiry = (lapis.server_now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sts = f"{DEV_ACCOUNT}\nrl\nq\nsco\n\n{expiry}\n\nhttps\n{X_MS_VERSION}\n\n"
    query = {"sv": X_MS_VERSION, "ss": "q", "srt": "sco", "sp": "rl", "se": expiry, "spr": "https", "sig": _sign(DEV_KEY, sts)}
    r = requests.get(f"http://{lapis.queue_host}/{DEV_ACCOUNT}/", params={"comp": "list", **query}, timeout=10)
    assert r.status_code == 403, r.text
    assert r.headers["x-ms-error-code"] == "AuthorizationProtocolMismatch"
