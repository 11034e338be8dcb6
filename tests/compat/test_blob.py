"""The Blob subset (port `--blob-port`) driven with the official
`azure-storage-blob` SDK and the Event Hubs checkpoint store built on it:
containers, Put/Get/Properties/Set Metadata/Delete of block blobs, Put Block /
Put Block List / Get Block List (large uploads in blocks, ranged downloads),
ETag and date conditions, listing, names and limits, the error bodies Azure
returns, Shared Key and SAS authentication, and state across SIGTERM and
SIGKILL restarts.

SAS validity is checked against the wall clock (as for queues), so SAS times
here are wall-clock times."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import os
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from azure.storage.blob import (
    AccountSasPermissions,
    BlobBlock,
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    BlobType,
    ContainerClient,
    ContainerSasPermissions,
    ContentSettings,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
    generate_container_sas,
)

from lapis_harness import (
    CLIENT_KWARGS,
    DEV_ACCOUNT,
    DEV_KEY,
    EXTRA_ACCOUNT,
    EXTRA_KEY,
    LapisServer,
    assert_each_fails,
    assert_storage_error,
    unique_name,
)
from lapis_wire import shared_key_signature, signed_headers

MIB = 1024 * 1024
# Lapis's bounds: one request body (Put Blob, Put Block) and one blob.
MAX_BODY = 100 * MIB
MAX_BLOB = 256 * MIB
EMPTY_MD5 = "1B2M2Y8AsgTpgAmY7PhCfg=="
FQNS = "lapis.servicebus.windows.net"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LapisServer(blob=True, log_dir=tmp_path_factory.mktemp("blob-log")) as s:
        yield s


@pytest.fixture
def svc(server) -> BlobServiceClient:
    client = BlobServiceClient.from_connection_string(server.conn_str(), **CLIENT_KWARGS)
    yield client
    client.close()


@pytest.fixture
def container(svc):
    client = svc.create_container(unique_name("c"))
    yield client
    try:
        client.delete_container()
    except HttpResponseError:
        pass


def raw(server, method, path, query=None, headers=None, body=b""):
    """A hand-signed request to the blob endpoint; `path` is below the account."""
    full = f"/devstoreaccount1/{path}"
    hdrs = signed_headers(method, full, query or {}, headers or {}, content_length=len(body) if body or method == "PUT" else None)
    url = f"http://127.0.0.1:{server.blob_port}{full}"
    return requests.request(method, url, params=query, headers=hdrs, data=body, timeout=30)


def assert_raw_error(r, status, code):
    assert r.status_code == status, f"{r.status_code} {r.text[:400]}"
    assert r.headers.get("x-ms-error-code") == code, r.headers
    if r.request.method != "HEAD" and status != 304:
        assert ET.fromstring(r.content).findtext("Code") == code, r.text


# --------------------------------------------------------------------------- containers
def test_container_lifecycle(svc):
    name = unique_name("c")
    client = svc.create_container(name, metadata={"Team": "core"})
    props = client.get_container_properties()
    assert props.metadata == {"Team": "core"}
    assert props.etag.startswith('"0x') and props.last_modified is not None
    with pytest.raises(ResourceExistsError) as ei:
        svc.create_container(name)
    assert_storage_error(ei.value, 409, "ContainerAlreadyExists")

    client.set_container_metadata({"tier": "gold"})
    assert client.get_container_properties().metadata == {"tier": "gold"}
    assert [c.name for c in svc.list_containers(name_starts_with=name)] == [name]
    listed = list(svc.list_containers(name_starts_with=name, include_metadata=True))
    assert listed[0].metadata == {"tier": "gold"}

    client.delete_container()
    assert not client.exists()
    for op in (client.get_container_properties, client.delete_container):
        with pytest.raises(ResourceNotFoundError) as ei:
            op()
        assert_storage_error(ei.value, 404, "ContainerNotFound")
    svc.create_container(name).delete_container()


def test_container_names_follow_azure_rules(svc):
    bad_chars = {n: (lambda n=n: svc.create_container(n)) for n in ["Upper", "under_score", "-dash", "dash-", "two--dashes"]}
    assert_each_fails(bad_chars, 400, "InvalidResourceName")
    bad_length = {n: (lambda n=n: svc.create_container(n)) for n in ["ab", "a" * 64]}
    assert_each_fails(bad_length, 400, "OutOfRangeInput")
    svc.create_container("a" * 63).delete_container()


def test_list_containers_pages(svc):
    prefix = unique_name("p")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        svc.create_container(n)
    pages = svc.list_containers(name_starts_with=prefix, results_per_page=2).by_page()
    seen = [[c.name for c in page] for page in pages]
    assert seen == [names[0:2], names[2:4], names[4:]]
    for n in names:
        svc.delete_container(n)


# --------------------------------------------------------------------------- blobs
def test_put_get_and_properties_round_trip(container):
    blob = container.get_blob_client("dir/sub/data.json")
    body = b'{"hello": "world"}'
    settings = ContentSettings(content_type="application/json", content_language="en", cache_control="no-cache", content_disposition="inline")
    up = blob.upload_blob(body, metadata={"ownerId": "a1", "n": "7"}, content_settings=settings)
    assert up["etag"].startswith('"0x')
    assert bytes(up["content_md5"]) == hashlib.md5(body).digest()
    assert blob.download_blob().readall() == body

    props = blob.get_blob_properties()
    assert (props.size, props.etag, props.blob_type) == (len(body), up["etag"], BlobType.BLOCKBLOB)
    assert props.metadata == {"ownerId": "a1", "n": "7"}, "metadata names keep their case"
    cs = props.content_settings
    assert (cs.content_type, cs.content_language, cs.cache_control, cs.content_disposition) == ("application/json", "en", "no-cache", "inline")
    assert bytes(cs.content_md5) == hashlib.md5(body).digest()
    assert props.last_modified == up["last_modified"] and props.creation_time is not None
    assert props.lease.status == "unlocked" and props.lease.state == "available"


def test_ranges_and_empty_blobs(server, container):
    blob = container.get_blob_client("ranged")
    data = bytes(range(256)) * 40
    blob.upload_blob(data)
    assert blob.download_blob(offset=100, length=50).readall() == data[100:150]
    assert blob.download_blob(offset=10_000).readall() == data[10_000:]
    assert blob.download_blob(max_concurrency=1).readall() == data
    r = raw(server, "GET", f"{container.container_name}/ranged", headers={"x-ms-range": "bytes=20000-"})
    assert_raw_error(r, 416, "InvalidRange")
    assert r.headers["content-range"] == f"bytes */{len(data)}"

    empty = container.get_blob_client("empty")
    up = empty.upload_blob(b"", metadata={"ownerid": "x"})
    assert base64.b64encode(bytes(up["content_md5"])).decode() == EMPTY_MD5
    assert empty.download_blob().readall() == b""
    assert empty.get_blob_properties().size == 0


def test_blob_names_with_slashes_spaces_and_unicode(container):
    for name in ["a/b/c.txt", "with space", "ünïcødé/名前", "$default/ownership/0", "trailing.dot."]:
        blob = container.get_blob_client(name)
        blob.upload_blob(name.encode())
        assert blob.download_blob().readall() == name.encode(), name
    listed = sorted(b.name for b in container.list_blobs())
    assert listed == sorted(["a/b/c.txt", "with space", "ünïcødé/名前", "$default/ownership/0", "trailing.dot."])
    container.get_blob_client("back\\slash").upload_blob(b"x")
    assert container.get_blob_client("back/slash").download_blob().readall() == b"x", "Azure reads \\ as /"
    with pytest.raises(HttpResponseError) as ei:
        container.get_blob_client("n" * 1025).upload_blob(b"")
    assert_storage_error(ei.value, 400, "OutOfRangeInput")


def test_overwrite_and_create_only(container):
    blob = container.get_blob_client("b")
    first = blob.upload_blob(b"one")
    with pytest.raises(ResourceExistsError) as ei:
        blob.upload_blob(b"two")  # overwrite=False sends If-None-Match: *
    assert_storage_error(ei.value, 409, "BlobAlreadyExists")
    second = blob.upload_blob(b"two", overwrite=True, etag=first["etag"], match_condition=MatchConditions.IfNotModified)
    assert second["etag"] != first["etag"]
    with pytest.raises(ResourceModifiedError) as ei:
        blob.upload_blob(b"three", overwrite=True, etag=first["etag"], match_condition=MatchConditions.IfNotModified)
    assert_storage_error(ei.value, 412, "ConditionNotMet")
    with pytest.raises(ResourceModifiedError) as ei:
        container.get_blob_client("missing").upload_blob(b"x", overwrite=True, if_match=first["etag"])
    assert_storage_error(ei.value, 412, "ConditionNotMet")
    assert blob.download_blob().readall() == b"two"


def test_set_metadata_with_etag_conditions(container):
    blob = container.get_blob_client("owned")
    up = blob.upload_blob(b"", metadata={"ownerid": "a"})
    claimed = blob.set_blob_metadata({"ownerid": "b"}, etag=up["etag"], match_condition=MatchConditions.IfNotModified)
    assert claimed["etag"] != up["etag"]
    assert blob.get_blob_properties().metadata == {"ownerid": "b"}
    # The unquoted ETag a listing gives works too.
    listed = next(iter(container.list_blobs(name_starts_with="owned")))
    assert listed.etag == claimed["etag"].strip('"')
    again = blob.set_blob_metadata({"ownerid": "c"}, if_match=listed.etag)
    stale = {
        "stale etag": lambda: blob.set_blob_metadata({"ownerid": "d"}, etag=up["etag"], match_condition=MatchConditions.IfNotModified),
        "if-none-match *": lambda: blob.set_blob_metadata({"ownerid": "d"}, if_none_match="*"),
        "unmodified since": lambda: blob.set_blob_metadata({"ownerid": "d"}, if_unmodified_since=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)),
    }
    assert_each_fails(stale, 412, "ConditionNotMet")
    props = blob.get_blob_properties()
    assert (props.metadata, props.etag) == ({"ownerid": "c"}, again["etag"])
    with pytest.raises(ResourceNotFoundError) as ei:
        container.get_blob_client("nothing").set_blob_metadata({"a": "b"}, if_none_match="*")
    assert_storage_error(ei.value, 404, "BlobNotFound")


def test_conditional_reads(server, container):
    blob = container.get_blob_client("cond")
    up = blob.upload_blob(b"data")
    etag = up["etag"]
    path = f"{container.container_name}/cond"
    r = raw(server, "HEAD", path, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    r = raw(server, "GET", path, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert raw(server, "GET", path, headers={"If-Match": etag}).content == b"data"
    meta = raw(server, "GET", path, query={"comp": "metadata"})
    assert (meta.status_code, meta.content, meta.headers["etag"]) == (200, b"", etag), "Get Blob Metadata has no body"
    assert_raw_error(raw(server, "GET", path, headers={"If-Match": '"0x1"'}), 412, "ConditionNotMet")
    future = email.utils.formatdate(dt.datetime(2100, 1, 1).timestamp(), usegmt=True)
    assert raw(server, "GET", path, headers={"If-Modified-Since": future}).status_code == 304
    assert_raw_error(raw(server, "GET", path, headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}), 412, "ConditionNotMet")
    assert_raw_error(raw(server, "GET", path, headers={"If-Modified-Since": "yesterday"}), 400, "InvalidHeaderValue")
    assert_raw_error(raw(server, "GET", path, headers={"If-None-Match": "*"}), 400, "UnsatisfiableCondition")
    with pytest.raises(ResourceModifiedError):
        blob.download_blob(etag='"0x1"', match_condition=MatchConditions.IfNotModified)


def test_delete_blob(container):
    blob = container.get_blob_client("doomed")
    up = blob.upload_blob(b"x")
    with pytest.raises(ResourceModifiedError) as ei:
        blob.delete_blob(etag='"0x1"', match_condition=MatchConditions.IfNotModified)
    assert_storage_error(ei.value, 412, "ConditionNotMet")
    blob.delete_blob(etag=up["etag"], match_condition=MatchConditions.IfNotModified)
    assert not blob.exists()
    for op in (blob.delete_blob, blob.get_blob_properties, lambda: blob.download_blob().readall()):
        with pytest.raises(ResourceNotFoundError) as ei:
            op()
        assert_storage_error(ei.value, 404, "BlobNotFound")


def test_unknown_container_is_404_for_every_blob_operation(svc):
    c = svc.get_container_client(unique_name("none"))
    b = c.get_blob_client("x")
    ops = {
        "upload": lambda: b.upload_blob(b"x"),
        "download": lambda: b.download_blob().readall(),
        "properties": b.get_blob_properties,
        "set metadata": lambda: b.set_blob_metadata({"a": "b"}),
        "delete": b.delete_blob,
        "list": lambda: list(c.list_blobs()),
    }
    assert_each_fails(ops, 404, "ContainerNotFound")


# --------------------------------------------------------------------------- listing
def test_list_blobs_pages_prefixes_and_metadata(container):
    names = [f"ns/hub/cg/checkpoint/{p}" for p in range(7)] + ["ns/hub/cg/ownership/0", "other"]
    for i, n in enumerate(names):
        container.get_blob_client(n).upload_blob(b"", metadata={"offset": str(i)})
    pages = container.list_blobs(name_starts_with="ns/hub/cg/checkpoint/", include=["metadata"], results_per_page=3).by_page()
    seen = [[(b.name, b.metadata["offset"]) for b in page] for page in pages]
    expected = [(n, str(i)) for i, n in enumerate(names[:7])]
    assert seen == [expected[0:3], expected[3:6], expected[6:]]
    assert all(not b.metadata for b in container.list_blobs()), "metadata only when included"
    walked = [b.name for b in container.walk_blobs(name_starts_with="ns/hub/cg/")]
    assert walked == ["ns/hub/cg/checkpoint/", "ns/hub/cg/ownership/"]
    with pytest.raises(HttpResponseError) as ei:
        list(container.list_blobs(include=["bogus"]))
    assert ei.value.status_code == 400


def test_list_blobs_xml_is_azures(server, container):
    name = container.container_name
    container.get_blob_client("k/0").upload_blob(b"", metadata={"ownerid": "o1"})
    r = raw(server, "GET", name, query={"restype": "container", "comp": "list", "prefix": "k/", "include": "metadata", "maxresults": "10"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
    root = ET.fromstring(r.content)
    assert root.tag == "EnumerationResults"
    assert root.attrib == {"ServiceEndpoint": f"http://127.0.0.1:{server.blob_port}/devstoreaccount1", "ContainerName": name}
    assert [c.tag for c in root] == ["Prefix", "MaxResults", "Blobs", "NextMarker"]
    (blob,) = root.find("Blobs")
    assert [c.tag for c in blob] == ["Name", "Properties", "Metadata"]
    props = blob.find("Properties")
    assert [c.tag for c in props] == [
        "Creation-Time", "Last-Modified", "Etag", "Content-Length", "Content-Type", "Content-Encoding",
        "Content-Language", "Content-CRC64", "Content-MD5", "Cache-Control", "Content-Disposition", "BlobType",
        "AccessTier", "AccessTierInferred", "LeaseStatus", "LeaseState", "ServerEncrypted",
    ]
    assert props.findtext("Etag").startswith("0x") and '"' not in props.findtext("Etag")
    assert (props.findtext("Content-MD5"), props.findtext("BlobType"), props.findtext("LeaseState")) == (EMPTY_MD5, "BlockBlob", "available")
    assert blob.find("Metadata").findtext("ownerid") == "o1"


# --------------------------------------------------------------------------- limits and bad input
def test_blob_size_limit(server, container):
    # Above the SDK's default single-put size (64 MiB) it would stage blocks instead.
    single = BlobClient.from_connection_string(server.conn_str(), container.container_name, "big", max_single_put_size=2 * MAX_BODY, **CLIENT_KWARGS)
    single.upload_blob(b"\0" * (64 * MIB))
    assert single.get_blob_properties().size == 64 * MIB
    with pytest.raises(HttpResponseError) as ei:
        single.upload_blob(b"\0" * (MAX_BODY + 1), overwrite=True)
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")
    assert single.get_blob_properties().size == 64 * MIB

def test_metadata_rules(container):
    blob = container.get_blob_client("m")
    blob.upload_blob(b"")
    with pytest.raises(HttpResponseError) as ei:
        blob.set_blob_metadata({"not-an-identifier": "v"})
    assert_storage_error(ei.value, 400, "InvalidMetadata")
    with pytest.raises(HttpResponseError) as ei:
        blob.upload_blob(b"", overwrite=True, metadata={"big": "v" * 9000})
    assert_storage_error(ei.value, 400, "MetadataTooLarge")


def test_bad_headers(server, container):
    path = f"{container.container_name}/h"
    assert_raw_error(raw(server, "PUT", path, body=b"x"), 400, "MissingRequiredHeader")
    assert_raw_error(raw(server, "PUT", path, headers={"x-ms-blob-type": "PageBlob"}, body=b"x"), 400, "InvalidHeaderValue")
    wrong_md5 = {"x-ms-blob-type": "BlockBlob", "Content-MD5": EMPTY_MD5}
    assert_raw_error(raw(server, "PUT", path, headers=wrong_md5, body=b"x"), 400, "Md5Mismatch")
    assert_raw_error(raw(server, "PUT", path, headers={"x-ms-blob-type": "BlockBlob", "Content-MD5": "short"}, body=b"x"), 400, "InvalidMd5")
    assert_raw_error(raw(server, "GET", path, headers={"x-ms-range": "bytes=x-y"}), 400, "InvalidHeaderValue")
    assert_raw_error(raw(server, "GET", container.container_name, query={"restype": "container", "comp": "list", "maxresults": "0"}), 400, "OutOfRangeQueryParameterValue")
    assert_raw_error(raw(server, "PUT", container.container_name, query={"restype": "container"}, headers={"x-ms-blob-public-access": "everyone"}), 400, "InvalidHeaderValue")
    ok = {"x-ms-blob-type": "BlockBlob", "Content-MD5": base64.b64encode(hashlib.md5(b"x").digest()).decode()}
    assert raw(server, "PUT", path, headers=ok, body=b"x").status_code == 201
    with pytest.raises(HttpResponseError) as ei:
        container.get_blob_client("page").create_page_blob(512)
    assert_storage_error(ei.value, 400, "InvalidHeaderValue")


# --------------------------------------------------------------------------- the Event Hubs checkpoint store
def ownership(partition, owner, etag=None):
    o = {"fully_qualified_namespace": FQNS, "eventhub_name": "hub", "consumer_group": "$Default", "partition_id": str(partition), "owner_id": owner}
    if etag:
        o["etag"] = etag
    return o


def test_event_hubs_checkpoint_store(server, container):
    store = BlobCheckpointStore.from_connection_string(server.conn_str(), container.container_name, **CLIENT_KWARGS)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    claimed = store.claim_ownership([ownership(p, a) for p in range(4)])
    assert sorted(o["partition_id"] for o in claimed) == ["0", "1", "2", "3"]
    assert store.claim_ownership([ownership(0, b)]) == [], "a new claim loses to the existing owner"
    listed = {o["partition_id"]: o for o in store.list_ownership(FQNS, "hub", "$Default")}
    assert {p: o["owner_id"] for p, o in listed.items()} == {str(p): a for p in range(4)}

    stolen = store.claim_ownership([ownership(1, b, etag=listed["1"]["etag"])])
    assert [o["owner_id"] for o in stolen] == [b]
    assert store.claim_ownership([ownership(1, a, etag=listed["1"]["etag"])]) == [], "a stale ETag loses"
    renewed = store.claim_ownership([ownership(1, b, etag=stolen[0]["etag"])])
    assert renewed[0]["etag"] != stolen[0]["etag"]

    for seq in (10, 20):
        for p in range(2):
            store.update_checkpoint({**ownership(p, a), "sequence_number": seq + p, "offset": str(1000 * seq + p)})
    checkpoints = {c["partition_id"]: (c["sequence_number"], c["offset"]) for c in store.list_checkpoints(FQNS, "hub", "$Default")}
    assert checkpoints == {"0": (20, "20000"), "1": (21, "20001")}
    names = sorted(blob.name for blob in container.list_blobs())
    assert names[0] == f"{FQNS}/hub/$default/checkpoint/0", "the store lowercases names"
    store.close()


def test_store_claims_race_for_a_new_partition(server, container):
    stores = [BlobCheckpointStore.from_connection_string(server.conn_str(), container.container_name, **CLIENT_KWARGS) for _ in range(2)]
    owners = [str(uuid.uuid4()) for _ in stores]
    results = [s.claim_ownership([ownership(7, o)]) for s, o in zip(stores, owners)]
    assert [len(r) for r in results] == [1, 0], "exactly one processor wins a new partition"
    for s in stores:
        s.close()


# --------------------------------------------------------------------------- authentication
WRONG_KEY = base64.b64encode(b"not-the-right-key-" * 4).decode()


def _in(days):
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)


def test_wrong_key_and_anonymous_requests_are_403(server, container):
    bad = BlobServiceClient(server.blob_account_url(), credential={"account_name": DEV_ACCOUNT, "account_key": WRONG_KEY}, **CLIENT_KWARGS)
    blob = bad.get_blob_client(container.container_name, "x")
    ops = {
        "create container": lambda: bad.create_container(unique_name("c")),
        "list blobs": lambda: list(bad.get_container_client(container.container_name).list_blobs()),
        "upload": lambda: blob.upload_blob(b"x"),
        "properties": blob.get_blob_properties,
    }
    assert_each_fails(ops, 403, "AuthenticationFailed")
    for method, query in [("GET", {"restype": "container", "comp": "list"}), ("PUT", {"restype": "container"})]:
        url = f"{server.blob_account_url()}/{container.container_name}"
        r = requests.request(method, url, params=query, headers={"x-ms-version": "2021-12-02", "x-ms-date": email.utils.formatdate(usegmt=True)}, timeout=10)
        assert_raw_error(r, 403, "AuthenticationFailed")
    assert not container.get_blob_client("x").exists()


def test_other_accounts_and_shared_key_lite(server):
    extra = BlobServiceClient.from_connection_string(server.conn_str(EXTRA_ACCOUNT, EXTRA_KEY), **CLIENT_KWARGS)
    name = unique_name("x")
    extra.create_container(name)
    assert [c.name for c in extra.list_containers(name_starts_with=name)] == [name]
    dev = BlobServiceClient.from_connection_string(server.conn_str(), **CLIENT_KWARGS)
    assert not dev.get_container_client(name).exists(), "accounts do not share containers"
    date = email.utils.formatdate(usegmt=True)
    path = f"/{EXTRA_ACCOUNT}/{name}"
    sts = f"GET\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-12-02\n/{EXTRA_ACCOUNT}{path}"
    auth = f"SharedKeyLite {EXTRA_ACCOUNT}:{shared_key_signature(sts, EXTRA_KEY)}"
    r = requests.get(f"http://127.0.0.1:{server.blob_port}{path}", params={"restype": "container"}, timeout=10,
                     headers={"x-ms-date": date, "x-ms-version": "2021-12-02", "Authorization": auth})
    assert r.status_code == 200, r.text
    extra.delete_container(name)


def test_account_sas_grants_what_it_names(server, container):
    container.get_blob_client("r").upload_blob(b"readable")
    types = ResourceTypes(service=True, container=True, object=True)
    read_list = generate_account_sas(DEV_ACCOUNT, DEV_KEY, types, AccountSasPermissions(read=True, list=True), expiry=_in(1))
    reader = BlobServiceClient(server.blob_account_url(), credential=read_list, **CLIENT_KWARGS)
    rc = reader.get_container_client(container.container_name)
    assert [b.name for b in rc.list_blobs()] == ["r"]
    assert rc.get_blob_client("r").download_blob().readall() == b"readable"
    denied = {
        "upload": lambda: rc.get_blob_client("w").upload_blob(b"x"),
        "delete": lambda: rc.get_blob_client("r").delete_blob(),
        "create container": lambda: reader.create_container(unique_name("c")),
    }
    assert_each_fails(denied, 403, "AuthorizationPermissionMismatch")
    queue_only = generate_account_sas(DEV_ACCOUNT, DEV_KEY, types, AccountSasPermissions(read=True), expiry=_in(1), services="q")
    with pytest.raises(HttpResponseError) as ei:
        BlobClient(server.blob_account_url(), container.container_name, "r", credential=queue_only, **CLIENT_KWARGS).get_blob_properties()
    assert_storage_error(ei.value, 403, "AuthorizationServiceMismatch")
    writer_sas = generate_account_sas(DEV_ACCOUNT, DEV_KEY, types, AccountSasPermissions(write=True, create=True), expiry=_in(1))
    BlobClient(server.blob_account_url(), container.container_name, "w", credential=writer_sas, **CLIENT_KWARGS).upload_blob(b"ok")


def test_container_and_blob_sas(server, container):
    name = container.container_name
    container.get_blob_client("a").upload_blob(b"A", content_settings=ContentSettings(content_type="text/plain"))
    container.get_blob_client("b").upload_blob(b"B")
    c_sas = generate_container_sas(DEV_ACCOUNT, name, account_key=DEV_KEY, permission=ContainerSasPermissions(read=True, list=True, write=True), expiry=_in(1))
    cc = ContainerClient(server.blob_account_url(), name, credential=c_sas, **CLIENT_KWARGS)
    assert sorted(b.name for b in cc.list_blobs()) == ["a", "b"]
    cc.get_blob_client("c").upload_blob(b"C")
    with pytest.raises(HttpResponseError) as ei:
        cc.get_blob_client("c").delete_blob()
    assert_storage_error(ei.value, 403, "AuthorizationPermissionMismatch")

    b_sas = generate_blob_sas(DEV_ACCOUNT, name, "a", account_key=DEV_KEY, permission=BlobSasPermissions(read=True), expiry=_in(1), content_type="text/csv")
    blob = BlobClient(server.blob_account_url(), name, "a", credential=b_sas, **CLIENT_KWARGS)
    assert blob.download_blob().readall() == b"A"
    assert blob.get_blob_properties().content_settings.content_type == "text/csv", "the SAS overrides Content-Type"
    with pytest.raises(HttpResponseError) as ei:
        BlobClient(server.blob_account_url(), name, "b", credential=b_sas, **CLIENT_KWARGS).download_blob()
    assert_storage_error(ei.value, 403, "AuthenticationFailed")

    expired = generate_container_sas(DEV_ACCOUNT, name, account_key=DEV_KEY, permission=ContainerSasPermissions(read=True, list=True), expiry=_in(-1))
    with pytest.raises(ClientAuthenticationError) as ei:
        list(ContainerClient(server.blob_account_url(), name, credential=expired, **CLIENT_KWARGS).list_blobs())
    assert_storage_error(ei.value, 403, "AuthenticationFailed")
    forged = c_sas.replace("sp=rwl", "sp=rwdl")
    with pytest.raises(ClientAuthenticationError) as ei:
        ContainerClient(server.blob_account_url(), name, credential=forged, **CLIENT_KWARGS).get_blob_client("b").delete_blob()
    assert_storage_error(ei.value, 403, "AuthenticationFailed")
    assert container.get_blob_client("b").exists()


# --------------------------------------------------------------------------- durability
def _populate(svc):
    """Writes the scenario; returns what must be found after a restart."""
    keep, gone = unique_name("keep"), unique_name("gone")
    c = svc.create_container(keep, metadata={"team": "core"})
    svc.create_container(gone).get_blob_client("x").upload_blob(b"lost with its container")
    svc.delete_container(gone)
    c.get_blob_client("data").upload_blob(b"\x00\x01" * 5000, metadata={"v": "1"})
    owned = c.get_blob_client("ns/hub/$default/ownership/0")
    owned.upload_blob(b"", metadata={"ownerid": "a"})
    claimed = owned.set_blob_metadata({"ownerid": "b"})
    c.get_blob_client("deleted").upload_blob(b"d")
    c.get_blob_client("deleted").delete_blob()
    return {"keep": keep, "gone": gone, "etag": claimed["etag"], "owner": "b"}


def _verify(svc, s):
    c = svc.get_container_client(s["keep"])
    assert c.get_container_properties().metadata == {"team": "core"}
    assert not svc.get_container_client(s["gone"]).exists()
    assert c.get_blob_client("data").download_blob().readall() == b"\x00\x01" * 5000
    owned = c.get_blob_client("ns/hub/$default/ownership/0")
    props = owned.get_blob_properties()
    assert (props.metadata, props.etag) == ({"ownerid": s["owner"]}, s["etag"])
    assert sorted(b.name for b in c.list_blobs()) == ["data", "ns/hub/$default/ownership/0"]
    s["owner"] += "+"
    again = owned.set_blob_metadata({"ownerid": s["owner"]}, etag=s["etag"], match_condition=MatchConditions.IfNotModified)
    assert again["etag"] > s["etag"], "ETags keep increasing after a restart"
    s["etag"] = again["etag"]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_state_survives_restarts(lapis_factory, how):
    server = lapis_factory(blob=True)
    svc = BlobServiceClient.from_connection_string(server.conn_str(), **CLIENT_KWARGS)
    scenario = _populate(svc)
    for _ in range(2):
        server.kill() if how == "sigkill" else server.stop()
        server.start()
        _verify(svc, scenario)
    assert (server.data_dir / "blob").is_dir()


# --------------------------------------------------------------------------- blocks and block lists
def _requests_seen(into):
    """A raw_response_hook recording (method, comp, status) of every response."""

    def hook(pipeline_response):
        req = pipeline_response.http_request
        query = dict(p.split("=", 1) for p in req.url.partition("?")[2].split("&") if "=" in p)
        into.append((req.method, query.get("comp"), pipeline_response.http_response.status_code))

    return hook


def _block_client(server, container, name, **kwargs):
    return BlobClient.from_connection_string(server.conn_str(), container.container_name, name, **{**CLIENT_KWARGS, **kwargs})


def test_large_upload_in_blocks_and_ranged_download(server, container):
    data = os.urandom(20 * MIB + 12345)
    seen = []
    small = dict(max_single_put_size=4 * MIB, max_block_size=4 * MIB, max_single_get_size=4 * MIB, max_chunk_get_size=4 * MIB)
    blob = _block_client(server, container, "audio/track.mp3", raw_response_hook=_requests_seen(seen), **small)
    settings = ContentSettings(content_type="audio/mpeg", cache_control="max-age=60")
    up = blob.upload_blob(data, metadata={"artist": "x"}, content_settings=settings, max_concurrency=2)
    puts = [s for s in seen if s[1] == "block"]
    assert len(puts) == 6 and all(status == 201 for _, _, status in puts), seen
    assert [s for s in seen if s[1] == "blocklist"] == [("PUT", "blocklist", 201)]
    assert up["etag"].startswith('"0x')

    props = blob.get_blob_properties()
    assert (props.size, props.blob_type, props.etag) == (len(data), BlobType.BLOCKBLOB, up["etag"])
    assert (props.content_settings.content_type, props.content_settings.cache_control) == ("audio/mpeg", "max-age=60")
    assert props.content_settings.content_md5 is None, "no MD5 is computed for a block list"
    assert props.metadata == {"artist": "x"}

    seen.clear()
    assert blob.download_blob(max_concurrency=2).readall() == data
    gets = [s for s in seen if s[0] == "GET"]
    assert len(gets) == 6 and all(status == 206 for _, _, status in gets), "downloaded in 4 MiB ranges"
    assert blob.download_blob(offset=4 * MIB - 10, length=20).readall() == data[4 * MIB - 10:4 * MIB + 10]
    assert blob.download_blob(offset=len(data) - 5).readall() == data[-5:]
    committed, uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [4 * MIB] * 5 + [12345] and uncommitted == []

    # With the SDK's defaults 20 MiB goes in one Put Blob, and comes back in one range.
    whole = container.get_blob_client("audio/whole.mp3")
    whole.upload_blob(data)
    assert whole.download_blob().readall() == data
    assert bytes(whole.get_blob_properties().content_settings.content_md5) == hashlib.md5(data).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_stage_and_commit_block_lists_by_hand(server, container):
    blob = container.get_blob_client("manual")
    blob.stage_block("b1", b"aaa")
    blob.stage_block("b2", b"bbbb")
    assert not blob.exists(), "staged blocks make no blob"
    committed, uncommitted = blob.get_block_list("all")
    assert committed == [] and [(b.id, b.size) for b in uncommitted] == [("b1", 3), ("b2", 4)]
    first = blob.commit_block_list([BlobBlock("b1"), BlobBlock("b2")], metadata={"v": "1"})
    assert blob.download_blob().readall() == b"aaabbbb"
    assert blob.get_block_list("uncommitted") == ([], [])

    blob.stage_block("b1", b"AAAAA")
    blob.stage_block("b3", b"cc")
    assert blob.get_blob_properties().etag == first["etag"], "staging does not change the blob"
    committed, uncommitted = blob.get_block_list("all")
    assert [(b.id, b.size) for b in committed] == [("b1", 3), ("b2", 4)]
    assert [(b.id, b.size) for b in uncommitted] == [("b1", 5), ("b3", 2)]
    # The SDK sends every BlobBlock as <Latest> (whatever its state), so the three
    # kinds of entry, interleaved, go by hand; ids are base64 of "b1", "b2", "b3".
    body = (
        b"<?xml version='1.0' encoding='utf-8'?><BlockList><Committed>YjE=</Committed><Uncommitted>YjE=</Uncommitted>"
        b"<Latest>YjM=</Latest><Committed>YjI=</Committed></BlockList>"
    )
    md5 = hashlib.md5(b"aaaAAAAAccbbbb").digest()
    headers = {"If-Match": first["etag"], "Content-Type": "application/xml", "x-ms-blob-content-type": "text/plain", "x-ms-blob-content-md5": _b64(md5)}
    r = raw(server, "PUT", f"{container.container_name}/manual", query={"comp": "blocklist"}, headers=headers, body=body)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] != first["etag"] and r.headers["content-md5"] == _b64(hashlib.md5(body).digest())
    assert blob.download_blob().readall() == b"aaaAAAAAccbbbb"
    props = blob.get_blob_properties()
    assert (props.content_settings.content_type, bytes(props.content_settings.content_md5), props.metadata) == ("text/plain", md5, {})
    committed, uncommitted = blob.get_block_list("all")
    assert [(b.id, b.size) for b in committed] == [("b1", 3), ("b1", 5), ("b3", 2), ("b2", 4)] and uncommitted == []

    # <Latest> takes an uncommitted block before a committed one of the same id.
    blob.stage_block("b2", b"BB")
    blob.commit_block_list(["b2", "b3"], etag=r.headers["etag"], match_condition=MatchConditions.IfNotModified)
    assert blob.download_blob().readall() == b"BBcc"

    blob.stage_block("zz", b"z")
    blob.upload_blob(b"whole", overwrite=True)
    assert blob.get_block_list("all") == ([], []), "Put Blob discards uncommitted blocks and writes no block list"
    assert blob.download_blob().readall() == b"whole"


def test_block_errors(server, container):
    blob = container.get_blob_client("errors")
    path = f"{container.container_name}/errors"
    blob.stage_block("aa", b"x")
    with pytest.raises(HttpResponseError) as ei:
        blob.stage_block("aaa", b"x")
    assert_storage_error(ei.value, 400, "InvalidBlobOrBlock")
    with pytest.raises(HttpResponseError) as ei:
        blob.commit_block_list([BlobBlock("aa"), BlobBlock("bb")])
    assert_storage_error(ei.value, 400, "InvalidBlockList")
    only_committed = b"<BlockList><Committed>YWE=</Committed></BlockList>"  # "aa" is uncommitted
    assert_raw_error(raw(server, "PUT", path, query={"comp": "blocklist"}, body=only_committed), 400, "InvalidBlockList")
    assert not blob.exists() and len(blob.get_block_list("uncommitted")[1]) == 1, "a refused list changes nothing"
    with pytest.raises(HttpResponseError) as ei:
        container.get_blob_client("long-id").stage_block("x" * 65, b"x")
    assert_storage_error(ei.value, 400, "InvalidQueryParameterValue")

    r = raw(server, "PUT", path, query={"comp": "block", "blockid": "AAAA-A=="}, body=b"x")
    assert_raw_error(r, 400, "InvalidQueryParameterValue")
    assert ET.fromstring(r.content).findtext("QueryParameterName") == "blockid"
    assert_raw_error(raw(server, "PUT", path, query={"comp": "block"}, body=b"x"), 400, "MissingRequiredQueryParameter")
    wrong_md5 = {"Content-MD5": EMPTY_MD5}
    assert_raw_error(raw(server, "PUT", path, query={"comp": "block", "blockid": "YWE="}, headers=wrong_md5, body=b"x"), 400, "Md5Mismatch")
    r = raw(server, "PUT", path, query={"comp": "block", "blockid": "YWE="}, body=b"xyz")
    assert r.status_code == 201 and r.headers["content-md5"] == base64.b64encode(hashlib.md5(b"xyz").digest()).decode()
    bad_list = b"<?xml version='1.0' encoding='utf-8'?><BlockList><Latest>not base64!</Latest></BlockList>"
    assert_raw_error(raw(server, "PUT", path, query={"comp": "blocklist"}, body=bad_list), 400, "InvalidBlockId")
    assert_raw_error(raw(server, "PUT", path, query={"comp": "blocklist"}, body=b"<BlockList><Latest>YWE="), 400, "InvalidXmlDocument")
    assert_raw_error(raw(server, "GET", path, query={"comp": "blocklist", "blocklisttype": "bogus"}), 400, "InvalidQueryParameterValue")
    r = raw(server, "GET", path, query={"comp": "blocklist", "blocklisttype": "all"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml" and r.headers["x-ms-blob-content-length"] == "0"
    assert "etag" not in r.headers, "no committed blob, no ETag"
    root = ET.fromstring(r.content)
    assert [c.tag for c in root] == ["CommittedBlocks", "UncommittedBlocks"]
    assert [(b.findtext("Name"), b.findtext("Size")) for b in root.find("UncommittedBlocks")] == [("YWE=", "3")]

    up = blob.commit_block_list([BlobBlock("aa")])
    with pytest.raises(ResourceExistsError) as ei:
        blob.commit_block_list([BlobBlock("aa")], if_none_match="*")
    assert_storage_error(ei.value, 409, "BlobAlreadyExists")
    blob.commit_block_list([BlobBlock("aa")], if_match=up["etag"])
    with pytest.raises(ResourceModifiedError) as ei:
        blob.commit_block_list([BlobBlock("aa")], if_match=up["etag"])
    assert_storage_error(ei.value, 412, "ConditionNotMet")
    with pytest.raises(ResourceNotFoundError) as ei:
        container.get_blob_client("never").get_block_list("all")
    assert_storage_error(ei.value, 404, "BlobNotFound")
    with pytest.raises(ResourceNotFoundError) as ei:
        BlobClient.from_connection_string(server.conn_str(), unique_name("none"), "b", **CLIENT_KWARGS).stage_block("aa", b"x")
    assert_storage_error(ei.value, 404, "ContainerNotFound")


def test_block_size_limits(server, container):
    blob = container.get_blob_client("limits")
    with pytest.raises(HttpResponseError) as ei:
        blob.stage_block("big", b"\0" * (MAX_BODY + 1))
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")
    eight = os.urandom(8 * MIB)
    blob.stage_block("8m", eight)
    count = MAX_BLOB // len(eight)
    with pytest.raises(HttpResponseError) as ei:
        blob.commit_block_list([BlobBlock("8m")] * (count + 1))
    assert_storage_error(ei.value, 413, "RequestBodyTooLarge")
    blob.commit_block_list([BlobBlock("8m")] * count)
    assert blob.get_blob_properties().size == MAX_BLOB
    assert blob.download_blob(offset=MAX_BLOB - 100, length=100).readall() == eight[-100:]


def test_blocks_survive_restarts(lapis_factory):
    server = lapis_factory(blob=True)
    svc = BlobServiceClient.from_connection_string(server.conn_str(), **CLIENT_KWARGS)
    c = svc.create_container(unique_name("blocks"))
    small = dict(max_single_put_size=4 * MIB, max_block_size=4 * MIB, max_single_get_size=4 * MIB, max_chunk_get_size=4 * MIB)
    big = BlobClient.from_connection_string(server.conn_str(), c.container_name, "big", **{**CLIENT_KWARGS, **small})
    data = os.urandom(10 * MIB + 7)
    big.upload_blob(data)
    pending = c.get_blob_client("pending")
    part1, part2 = os.urandom(5 * MIB), b"tail"
    pending.stage_block("p1", part1)
    pending.stage_block("p2", part2)

    server.kill()  # acknowledged blocks and block lists are on disk
    server.start()
    assert [(b.id, b.size) for b in pending.get_block_list("uncommitted")[1]] == [("p1", 5 * MIB), ("p2", 4)]
    assert big.download_blob().readall() == data
    pending.commit_block_list([BlobBlock("p2"), BlobBlock("p1")])

    server.stop()
    server.start()
    assert pending.download_blob().readall() == part2 + part1
    assert [b.id for b in pending.get_block_list("all")[0]] == ["p2", "p1"]
    assert big.download_blob(offset=4 * MIB - 1, length=2).readall() == data[4 * MIB - 1:4 * MIB + 1]

    orphan = c.get_blob_client("orphan")
    orphan.stage_block("o1", b"forgotten")
    server.advance_clock(7 * 24 * 3600 + 60)
    with pytest.raises(ResourceNotFoundError):
        orphan.get_block_list("all")  # a week after the last Put Block they are gone
    orphan.stage_block("o2", b"new")  # and this staging discards them for good
    server.restart()
    assert [b.id for b in orphan.get_block_list("uncommitted")[1]] == ["o2"]
    assert pending.download_blob().readall() == part2 + part1
