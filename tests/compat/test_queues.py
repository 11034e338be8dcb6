"""Queue-level operations through the official Python SDK: create, delete,
metadata, listing and paging, name validation, access policies (ACL)."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import AccessPolicy, QueueSasPermissions

from lapis_harness import assert_storage_error, capture_response, error_code_of, parse_iso, unique_name


# --------------------------------------------------------------------------- create
def test_create_queue_answers_201(queue_service):
    name = unique_name()
    seen = {}
    client = queue_service.get_queue_client(name)
    client.create_queue(raw_response_hook=capture_response(seen))
    assert seen["status"] == 201
    props = client.get_queue_properties()
    assert props.name == name
    assert props.approximate_message_count == 0
    client.delete_queue()


def test_create_via_service_client_returns_usable_client(queue_service):
    name = unique_name()
    client = queue_service.create_queue(name, metadata={"k": "v"})
    assert client.queue_name == name
    assert client.get_queue_properties().metadata == {"k": "v"}
    queue_service.delete_queue(name)


@pytest.mark.parametrize("metadata", [None, {"color": "red", "size": "10"}])
def test_create_again_with_same_metadata_is_204_which_sdk_raises(queue_service, metadata):
    """Azure answers 204 when the queue exists with identical metadata. The
    Python SDK (deserialize_queue_creation) turns that 204 into a
    ResourceExistsError with error_code QueueAlreadyExists."""
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata=metadata)
    seen = {}
    with pytest.raises(ResourceExistsError) as ei:
        client.create_queue(metadata=metadata, raw_response_hook=capture_response(seen))
    assert ei.value.status_code == 204, f"expected 204 (same metadata), got {ei.value.status_code}"
    assert seen["status"] == 204
    assert error_code_of(ei.value) == "QueueAlreadyExists"
    # the queue is untouched
    assert client.get_queue_properties().metadata == (metadata or {})
    client.delete_queue()


def test_create_again_with_different_metadata_is_409(queue_service):
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata={"color": "red"})
    with pytest.raises(ResourceExistsError) as ei:
        client.create_queue(metadata={"color": "blue"})
    assert_storage_error(ei.value, 409, "QueueAlreadyExists")
    with pytest.raises(ResourceExistsError) as ei:
        client.create_queue()  # no metadata vs. existing metadata also differs
    assert_storage_error(ei.value, 409, "QueueAlreadyExists")
    assert client.get_queue_properties().metadata == {"color": "red"}
    client.delete_queue()


# --------------------------------------------------------------------------- delete
def test_delete_queue(queue_service):
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue()
    client.send_message("bye")
    seen = {}
    client.delete_queue(raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    with pytest.raises(ResourceNotFoundError) as ei:
        client.get_queue_properties()
    assert_storage_error(ei.value, 404, "QueueNotFound")
    assert name not in [q.name for q in queue_service.list_queues(name_starts_with=name)]


def test_delete_unknown_queue_is_404(queue_service):
    client = queue_service.get_queue_client(unique_name())
    with pytest.raises(ResourceNotFoundError) as ei:
        client.delete_queue()
    assert_storage_error(ei.value, 404, "QueueNotFound")


def test_recreated_queue_starts_empty(queue_service):
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata={"gen": "1"})
    for i in range(3):
        client.send_message(f"old-{i}")
    client.delete_queue()
    client.create_queue()
    props = client.get_queue_properties()
    assert props.approximate_message_count == 0
    assert props.metadata == {}
    assert client.peek_messages(max_messages=32) == []
    client.delete_queue()


# --------------------------------------------------------------------------- metadata
def test_get_and_set_metadata(queue_service):
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata={"owner": "alice", "purpose": "tests"})
    assert client.get_queue_properties().metadata == {"owner": "alice", "purpose": "tests"}

    seen = {}
    client.set_queue_metadata({"owner": "bob", "extra": "value with spaces"}, raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    # set replaces the whole set
    assert client.get_queue_properties().metadata == {"owner": "bob", "extra": "value with spaces"}

    client.set_queue_metadata({})
    assert client.get_queue_properties().metadata == {}
    client.delete_queue()


def test_metadata_name_case_is_preserved_in_headers(queue_service):
    """Names are case-insensitive but returned as they were set (Azure, Azurite):
    the x-ms-meta-* response header names keep the case."""
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata={"Color": "Red", "camelCaseName": "x"})
    try:
        assert client.get_queue_properties().metadata == {"Color": "Red", "camelCaseName": "x"}
    finally:
        client.delete_queue()


def test_metadata_name_case_is_preserved_in_listing(queue_service):
    """Same for the <Metadata> element names of List Queues."""
    name = unique_name()
    client = queue_service.get_queue_client(name)
    client.create_queue(metadata={"Color": "Red", "camelCaseName": "x"})
    try:
        listed = [q for q in queue_service.list_queues(name_starts_with=name, include_metadata=True)]
        assert [q.name for q in listed] == [name]
        assert listed[0].metadata == {"Color": "Red", "camelCaseName": "x"}
    finally:
        client.delete_queue()


def test_approximate_message_count(queue):
    assert queue.get_queue_properties().approximate_message_count == 0
    queue.send_message("a")
    queue.send_message("b")
    queue.send_message("hidden", visibility_timeout=3600)  # invisible messages count too
    assert queue.get_queue_properties().approximate_message_count == 3
    msg = queue.receive_message(visibility_timeout=60)
    assert queue.get_queue_properties().approximate_message_count == 3  # dequeued, not deleted
    queue.delete_message(msg)
    assert queue.get_queue_properties().approximate_message_count == 2
    queue.clear_messages()
    assert queue.get_queue_properties().approximate_message_count == 0


def test_metadata_on_unknown_queue_is_404(queue_service):
    client = queue_service.get_queue_client(unique_name())
    with pytest.raises(ResourceNotFoundError) as ei:
        client.get_queue_properties()
    assert_storage_error(ei.value, 404, "QueueNotFound")
    with pytest.raises(ResourceNotFoundError) as ei:
        client.set_queue_metadata({"a": "b"})
    assert_storage_error(ei.value, 404, "QueueNotFound")


# --------------------------------------------------------------------------- list
def _make_queues(queue_service, prefix, count, metadata=None):
    names = []
    for i in range(count):
        name = f"{prefix}{i:03d}"
        queue_service.create_queue(name, metadata=metadata)
        names.append(name)
    return names


def _drop_queues(queue_service, names):
    for n in names:
        try:
            queue_service.delete_queue(n)
        except HttpResponseError:
            pass


def test_list_queues_with_prefix(queue_service):
    prefix = unique_name("lp")
    other = unique_name("lo")
    names = _make_queues(queue_service, prefix, 3)
    queue_service.create_queue(other)
    try:
        listed = [q.name for q in queue_service.list_queues(name_starts_with=prefix)]
        assert listed == sorted(names)
        everything = [q.name for q in queue_service.list_queues()]
        assert set(names) | {other} <= set(everything)
        assert everything == sorted(everything), "list is sorted by name"
        assert [q.name for q in queue_service.list_queues(name_starts_with=unique_name("none"))] == []
    finally:
        _drop_queues(queue_service, names + [other])


def test_list_queues_paging_sees_each_queue_once_in_order(queue_service):
    prefix = unique_name("pg")
    names = _make_queues(queue_service, prefix, 23)
    try:
        pages = [list(page) for page in queue_service.list_queues(name_starts_with=prefix, results_per_page=5).by_page()]
        sizes = [len(p) for p in pages]
        assert sizes == [5, 5, 5, 5, 3], f"page sizes {sizes}"
        seen = [q.name for p in pages for q in p]
        assert seen == sorted(names), "all queues, each once, sorted"
    finally:
        _drop_queues(queue_service, names)


def test_list_queues_continuation_token(queue_service):
    prefix = unique_name("ct")
    names = _make_queues(queue_service, prefix, 7)
    try:
        pager = queue_service.list_queues(name_starts_with=prefix, results_per_page=3).by_page()
        first = [q.name for q in next(pager)]
        token = pager.continuation_token
        assert first == sorted(names)[:3]
        assert token, "a NextMarker is returned when more results exist"
        resumed = queue_service.list_queues(name_starts_with=prefix, results_per_page=3).by_page(continuation_token=token)
        rest = [q.name for page in resumed for q in page]
        assert rest == sorted(names)[3:]
    finally:
        _drop_queues(queue_service, names)


def test_list_queues_paging_without_prefix_is_stable(queue_service):
    """Paging over the whole account (other tests may own queues too) still
    yields strictly increasing names and includes ours."""
    prefix = unique_name("ap")
    names = _make_queues(queue_service, prefix, 4)
    try:
        seen = [q.name for page in queue_service.list_queues(results_per_page=2).by_page() for q in page]
        assert seen == sorted(set(seen)), "no repeats, sorted"
        assert set(names) <= set(seen)
    finally:
        _drop_queues(queue_service, names)


def test_list_queues_include_metadata(queue_service):
    prefix = unique_name("md")
    with_md = f"{prefix}a"
    without_md = f"{prefix}b"
    queue_service.create_queue(with_md, metadata={"k1": "v1", "k2": "v2"})
    queue_service.create_queue(without_md)
    try:
        listed = {q.name: q for q in queue_service.list_queues(name_starts_with=prefix, include_metadata=True)}
        assert set(listed) == {with_md, without_md}
        assert listed[with_md].metadata == {"k1": "v1", "k2": "v2"}
        assert not listed[without_md].metadata
        plain = {q.name: q for q in queue_service.list_queues(name_starts_with=prefix)}
        assert plain[with_md].metadata is None, "no <Metadata> unless include=metadata"
    finally:
        _drop_queues(queue_service, [with_md, without_md])


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name,code",
    [
        ("MyQueue", "InvalidResourceName"),
        ("UPPER", "InvalidResourceName"),
        ("ab--cd", "InvalidResourceName"),
        ("-abc", "InvalidResourceName"),
        ("abc-", "InvalidResourceName"),
        ("ab_cd", "InvalidResourceName"),
        ("ab", "OutOfRangeInput"),
        ("a" * 64, "OutOfRangeInput"),
    ],
)
def test_invalid_queue_names(queue_service, name, code):
    with pytest.raises(HttpResponseError) as ei:
        queue_service.create_queue(name)
    assert_storage_error(ei.value, 400, code)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "a-b-c", "1queue", "q-0-9"])
def test_valid_boundary_queue_names(queue_service, name):
    client = queue_service.get_queue_client(name)
    try:
        client.delete_queue()
    except ResourceNotFoundError:
        pass
    client.create_queue()
    assert client.get_queue_properties().name == name
    client.delete_queue()


# --------------------------------------------------------------------------- ACL
def _utc(y, mo, d, h=0, mi=0, s=0):
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.timezone.utc)


def test_access_policy_round_trip(queue):
    assert queue.get_queue_access_policy() == {}
    policies = {
        "full": AccessPolicy(permission="raup", start=_utc(2024, 1, 1), expiry=_utc(2030, 1, 2, 3, 4, 5)),
        "readonly": AccessPolicy(permission=QueueSasPermissions(read=True), expiry=_utc(2031, 6, 7)),
        "addproc": AccessPolicy(permission="ap", start=_utc(2025, 2, 3, 4, 5, 6), expiry=_utc(2032, 1, 1)),
    }
    seen = {}
    queue.set_queue_access_policy(policies, raw_response_hook=capture_response(seen))
    assert seen["status"] == 204
    got = queue.get_queue_access_policy()
    assert set(got) == set(policies)
    assert got["full"].permission == "raup"
    assert parse_iso(got["full"].start) == _utc(2024, 1, 1)
    assert parse_iso(got["full"].expiry) == _utc(2030, 1, 2, 3, 4, 5)
    assert got["readonly"].permission == "r"
    assert got["readonly"].start in (None, "")
    assert parse_iso(got["readonly"].expiry) == _utc(2031, 6, 7)
    assert got["addproc"].permission == "ap"
    assert parse_iso(got["addproc"].start) == _utc(2025, 2, 3, 4, 5, 6)

    # replace: the new set wins entirely
    queue.set_queue_access_policy({"only": AccessPolicy(permission="p", expiry=_utc(2030, 1, 1))})
    got = queue.get_queue_access_policy()
    assert list(got) == ["only"]
    assert got["only"].permission == "p"

    # clearing with an empty set (the SDK sends no body at all)
    queue.set_queue_access_policy({})
    assert queue.get_queue_access_policy() == {}


def test_five_access_policies_allowed_six_rejected(queue):
    five = {f"id{i}": AccessPolicy(permission="r", expiry=_utc(2030, 1, 1)) for i in range(5)}
    queue.set_queue_access_policy(five)
    assert set(queue.get_queue_access_policy()) == set(five)

    six = {f"id{i}": AccessPolicy(permission="r", expiry=_utc(2030, 1, 1)) for i in range(6)}
    with pytest.raises(HttpResponseError) as ei:
        queue.set_queue_access_policy(six)
    assert_storage_error(ei.value, 400, "InvalidXmlDocument")
    # the rejected request changed nothing
    assert set(queue.get_queue_access_policy()) == set(five)


def test_access_policy_on_unknown_queue_is_404(queue_service):
    client = queue_service.get_queue_client(unique_name())
    with pytest.raises(ResourceNotFoundError) as ei:
        client.get_queue_access_policy()
    assert_storage_error(ei.value, 404, "QueueNotFound")
    with pytest.raises(ResourceNotFoundError) as ei:
        client.set_queue_access_policy({"p": AccessPolicy(permission="r", expiry=_utc(2030, 1, 1))})
    assert_storage_error(ei.value, 404, "QueueNotFound")


def test_host_style_url_names_the_account_in_the_host(lapis, queue):
    """Production-style addressing: `Host: devstoreaccount1.queue.localhost` and a path
    without the account, as clients built for *.queue.core.windows.net send it."""
    import requests

    from lapis_wire import signed_headers

    headers = signed_headers("GET", "/", {"comp": "list"})
    headers["Host"] = f"devstoreaccount1.queue.localhost:{lapis.queue_port}"
    r = requests.get(f"http://127.0.0.1:{lapis.queue_port}/?comp=list", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert f"<Name>{queue.queue_name}</Name>" in r.text
    assert f'ServiceEndpoint="http://devstoreaccount1.queue.localhost:{lapis.queue_port}/"' in r.text
