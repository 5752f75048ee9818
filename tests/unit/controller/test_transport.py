"""The workers' lean HTTP transport against a scripted HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from slm_operator.controller.kubeapi import KubeApi, TransientApiError
from slm_operator.controller.transport import HttpTransport, direct_transport


@dataclass
class ScriptedServer:
    """Answers each request with ``{"n": <request number>}``; after the requests listed in
    ``close_after`` it closes the connection without saying so (as an idle timeout does), and a
    connection numbered in ``refuse`` is closed before anything is read."""

    close_after: set[int] = field(default_factory=set)
    refuse: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections in self.refuse:
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(head.split(b"\r\n")[0] + b" " + body)
                number = len(self.requests)
                answer = f'{{"n": {number}}}'.encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                if number in self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def configuration(host: str, **extra: object) -> SimpleNamespace:
    fields = {"host": host, "verify_ssl": True, "ssl_ca_cert": None, "cert_file": None, "key_file": None}
    fields.update({"tls_server_name": None, "proxy": None, "no_proxy": None, **extra})
    return SimpleNamespace(**fields)


def test_one_kept_alive_connection_per_thread(server: ScriptedServer) -> None:
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}"), timeout=5)
    for n in (1, 2, 3):
        assert transport.request("GET", "/api/v1/namespaces/a", None, {}) == (200, f'{{"n": {n}}}'.encode())
    assert server.connections == 1
    other = threading.Thread(target=transport.request, args=("GET", "/x", None, {}))
    other.start()
    other.join()
    assert server.connections == 2  # a second thread gets its own


def test_the_body_and_the_servers_path_prefix_are_sent(server: ScriptedServer) -> None:
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}/k8s/clusters/c1/"), timeout=5)
    transport.request("PATCH", "/api/v1/namespaces/a/secrets/s?force=true", b'{"a":1}', {"Content-Type": "x"})
    assert server.requests == [
        b'PATCH /k8s/clusters/c1/api/v1/namespaces/a/secrets/s?force=true HTTP/1.1 {"a":1}'
    ]


def test_a_connection_the_server_closed_meanwhile_is_replaced_once(server: ScriptedServer) -> None:
    server.close_after = {1}
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}"), timeout=5)
    transport.request("GET", "/a", None, {})
    # The server closed the kept-alive connection without a word: the next request fails on
    # it before any answer, and is sent once more on a new connection.
    assert transport.request("POST", "/b", b"{}", {}) == (200, b'{"n": 2}')
    assert server.connections == 2
    assert [line.split(b" ")[1] for line in server.requests] == [b"/a", b"/b"]


def test_a_new_connection_that_fails_is_not_retried(server: ScriptedServer) -> None:
    server.refuse = {1}
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}"), timeout=5)
    with pytest.raises(ConnectionError):
        transport.request("POST", "/a", b"{}", {})
    assert server.requests == []
    # The next request opens a fresh connection, which the server serves.
    assert transport.request("POST", "/a", b"{}", {}) == (200, b'{"n": 1}')


def test_kubeapi_reports_a_transport_failure_as_transient(server: ScriptedServer) -> None:
    server.refuse = {1}
    config = configuration(f"http://127.0.0.1:{server.port}")
    config.get_api_key_with_prefix = lambda key, alias=None: "Bearer t"
    client = SimpleNamespace(configuration=config, user_agent="test")
    api = KubeApi(client=client, transport=HttpTransport(config, timeout=5))
    with pytest.raises(TransientApiError):
        api.call("GET", "/api/v1/namespaces/a")
    assert api.call("GET", "/api/v1/namespaces/a") == {"n": 1}
    assert b"GET /api/v1/namespaces/a HTTP/1.1" in server.requests[0]


def test_a_proxy_in_the_way_keeps_the_clients_own_path() -> None:
    host = "https://10.0.0.1:6443"
    assert direct_transport(configuration(host), timeout=5) is not None
    assert direct_transport(configuration(host, proxy="http://proxy:3128"), timeout=5) is None
    bypassed = configuration(host, proxy="http://proxy:3128", no_proxy="10.0.0.1")
    assert direct_transport(bypassed, timeout=5) is not None


def test_an_address_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpTransport(configuration("unix:///run/k8s.sock"), timeout=5)
