"""The local cluster's real servers: separate processes that say who answered and for whom, and leave nothing behind."""

import http.client
import socket
import time
from pathlib import Path

import pytest

from tests.harness.real_servers import RealServers
from tests.helpers import TEST_PREFIX, cmdline, running_pids

CLIENT = f"{TEST_PREFIX}.3"  # where a node's backend connections come from
PORT = 18080  # not the harness's own real servers' port: those may be running for the whole session


@pytest.fixture
def real_servers(tmp_path):
    servers = RealServers(TEST_PREFIX, port=PORT, root=tmp_path / "rs").start()
    yield servers
    servers.stop()


def get(address, port, path="/", method="GET", source=CLIENT):
    connection = http.client.HTTPConnection(address, port, timeout=40, source_address=(source, 0))
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def pids(servers):
    return [int(servers.pidfile(name).read_text()) for name, _, _ in servers.servers]


def alive(pid):
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except OSError:
        return False


def test_each_answers_with_its_name_and_the_peer_address(real_servers):
    assert real_servers.servers == [
        ("rs1", f"{TEST_PREFIX}.201", PORT),
        ("rs2", f"{TEST_PREFIX}.202", PORT),
        ("rs3", f"{TEST_PREFIX}.203", PORT),
    ]
    assert real_servers.addresses == [f"{TEST_PREFIX}.{n}" for n in (201, 202, 203)]
    for name, address, port in real_servers.servers:
        assert get(address, port, "/any/path?q=1") == (200, f"{name} {address}:{port} from {CLIENT}\n")
        assert get(address, port, "/health", source=f"{TEST_PREFIX}.4")[1].endswith(f"from {TEST_PREFIX}.4\n")
        assert get(address, port, method="HEAD") == (200, "")
    # Separate processes, not threads of one: a test can kill one real server as a machine dies.
    assert len(set(pids(real_servers))) == 3


def test_keep_alive_serves_many_requests_on_one_connection(real_servers):
    _, address, port = real_servers.servers[0]
    connection = http.client.HTTPConnection(address, port, timeout=5, source_address=(CLIENT, 0))
    try:
        connection.connect()
        local = connection.sock.getsockname()
        for _ in range(5):
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200
            assert response.read().decode() == f"rs1 {address}:{port} from {CLIENT}\n"
            assert connection.sock is not None and connection.sock.getsockname() == local
    finally:
        connection.close()


def test_slow_holds_the_answer(real_servers):
    _, address, port = real_servers.servers[1]
    started = time.monotonic()
    assert get(address, port, "/slow?s=0.4")[0] == 200
    assert time.monotonic() - started >= 0.4
    # Others are not held meanwhile: each connection has its own thread.
    assert get(address, port, "/slow?s=0")[0] == 200


def test_stop_leaves_no_process_and_frees_the_port(tmp_path):
    servers = RealServers(TEST_PREFIX, port=PORT, root=tmp_path / "rs").start()
    started = pids(servers)
    assert all(alive(pid) for pid in started)
    servers.stop()
    assert not any(alive(pid) for pid in started)
    assert not list((tmp_path / "rs").glob("*.pid"))
    assert not [pid for pid in running_pids() if f"serve rs1 {TEST_PREFIX}.201 {PORT}" in cmdline(pid)]
    for _, address, port in servers.servers:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=2).close()
        with socket.socket() as probe:
            # As the next server binds it: closed connections may linger in TIME_WAIT, a listener may not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
            probe.listen()
    servers.stop()  # twice is harmless


def test_stop_drops_a_held_request_at_once(real_servers):
    _, address, port = real_servers.servers[2]
    connection = http.client.HTTPConnection(address, port, timeout=10)
    connection.request("GET", "/slow?s=30")
    started = time.monotonic()
    real_servers.stop()
    assert time.monotonic() - started < 5
    with pytest.raises((OSError, http.client.HTTPException)):
        connection.getresponse().read()
    connection.close()


def test_start_cleans_up_what_a_crashed_run_left(tmp_path):
    crashed = RealServers(TEST_PREFIX, port=PORT, root=tmp_path / "rs").start()
    orphans = pids(crashed)
    # A new run over the same root (the crashed one never called stop()) takes the addresses over.
    again = RealServers(TEST_PREFIX, port=PORT, root=tmp_path / "rs")
    try:
        again.start()
        assert not any(alive(pid) for pid in orphans)
        assert get(*again.servers[0][1:])[0] == 200
        fresh = pids(again)
    finally:
        again.stop()
        crashed.stop()  # only reaps: its pid files now name processes that are not its own
    assert not any(alive(pid) for pid in orphans + fresh)
