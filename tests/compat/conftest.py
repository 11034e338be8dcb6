"""pytest fixtures that drive a real `lapis` binary with the official Azure
Storage Queue Python SDK (versions pinned in requirements.txt).

Fixtures
- `lapis`           session-scoped in-memory server (one per xdist worker),
                    started with an extra account (lapis_harness.EXTRA_ACCOUNT).
- `lapis_factory`   `make(data_dir=None, **options)` -> started LapisServer on a
                    fresh temp data dir (or the given one), with LapisServer's
                    options (e.g. `blob=True`); `.stop()`, `.kill()`, `.start()`,
                    `.restart()` reuse the same dir and ports. All are killed at
                    teardown.
- `queue_service`   QueueServiceClient from the connection string of `lapis`.
- `queue`           QueueClient on a freshly created, uniquely named queue.
- `new_queue_name`  function returning unique valid queue names.
- `advance_clock`   advance_clock(seconds): moves the server's injected clock.
- `make_service`    make_service(server, **kw): QueueServiceClient for any server.
- `sb`              module-scoped server with the AMQP endpoint and the test
                    module's `CONFIG` (the Service Bus emulator's Config.json).
- `client`          a ServiceBusClient on `sb` (no retries), closed afterwards.

The binary is $LAPIS_BIN or <repo>/target/debug/lapis. Server output goes to a
temp log file whose tail is shown when the server fails to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from lapis_harness import LapisServer, service_client, unique_name
from sb_support import sb_client, start_server


def make_service_client(server: LapisServer, **kwargs) -> QueueServiceClient:
    return service_client(server, **kwargs)


@pytest.fixture(scope="session")
def lapis(tmp_path_factory) -> LapisServer:
    with LapisServer(log_dir=tmp_path_factory.mktemp("lapis-session-log")) as server:
        yield server


@pytest.fixture
def lapis_factory(tmp_path) -> Callable[..., LapisServer]:
    servers: List[LapisServer] = []

    def make(data_dir: Optional[Path] = None, **options) -> LapisServer:
        if data_dir is None:
            data_dir = tmp_path / f"data{len(servers)}"
            data_dir.mkdir()
        log_dir = tmp_path / f"log{len(servers)}"
        log_dir.mkdir(exist_ok=True)
        server = LapisServer(data_dir=data_dir, log_dir=log_dir, **options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def make_service() -> Callable[..., QueueServiceClient]:
    return make_service_client


@pytest.fixture
def queue_service(lapis) -> QueueServiceClient:
    client = make_service_client(lapis)
    yield client
    client.close()


@pytest.fixture
def new_queue_name() -> Callable[[], str]:
    return lambda prefix="q": unique_name(prefix)


@pytest.fixture
def queue(queue_service) -> QueueClient:
    name = unique_name("q")
    client = queue_service.get_queue_client(name)
    client.create_queue()
    yield client
    try:
        client.delete_queue()
    except Exception:
        pass
    client.close()


@pytest.fixture
def advance_clock(lapis) -> Callable[[float], None]:
    return lapis.advance_clock


@pytest.fixture(scope="module")
def sb(request, tmp_path_factory) -> LapisServer:
    server = start_server(tmp_path_factory.mktemp(request.module.__name__.replace(".", "-")), request.module.CONFIG)
    yield server
    server.close()


@pytest.fixture
def client(sb):
    c = sb_client(sb)
    yield c
    c.close()
