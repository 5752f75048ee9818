"""The workers' lean HTTP transport against a scripted HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import io
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from slm_operator.controller.kubeapi import KubeApi, TransientApiError
from slm_operator.controller.transport import HttpTransport, direct_transport, read_response
from slm_operator.controller.watching import ApiSession, WatchStream


@dataclass
class ScriptedServer:
    """Answers each request with ``{"n": <request number>}``; after the requests listed in
    ``close_after`` it closes the connection without saying so (as an idle timeout does), and a
    connection numbered in ``refuse`` is closed before anything is read."""

    close_after: set[int] = field(default_factory=set)
    refuse: set[int] = field(default_factory=set)
    tls: ssl.SSLContext | None = None  # serve HTTPS with this context
    requests: list[bytes] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)  # each request's line and header
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
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate
                conn.close()
                return
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
                self.heads.append(head)
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


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[ScriptedServer, Path]]:
    """HTTPS on 127.0.0.1 with a self-signed certificate for ``kubernetes.test`` only (made
    with openssl, which the simulated cluster needs anyway)."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    subject = ["-subj", "/CN=kubernetes.test", "-addext", "subjectAltName=DNS:kubernetes.test"]
    subprocess.run(
        [*openssl, "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", *subject],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    scripted = ScriptedServer(tls=context)
    yield scripted, cert
    scripted.close()


def test_the_certificate_is_checked_against_the_tls_server_name(
    tls_server: tuple[ScriptedServer, Path],
) -> None:
    server, cert = tls_server
    host = f"https://127.0.0.1:{server.port}"
    named = HttpTransport(
        configuration(host, ssl_ca_cert=str(cert), tls_server_name="kubernetes.test"), timeout=5
    )
    assert named.request("GET", "/version", None, {}) == (200, b'{"n": 1}')
    unnamed = HttpTransport(configuration(host, ssl_ca_cert=str(cert)), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
        unnamed.request("GET", "/version", None, {})


async def test_the_streams_check_the_certificate_against_the_tls_server_name(
    tls_server: tuple[ScriptedServer, Path],
) -> None:
    server, cert = tls_server
    config = configuration(
        f"https://127.0.0.1:{server.port}", ssl_ca_cert=str(cert), tls_server_name="kubernetes.test"
    )
    config.username = None
    config.get_api_key_with_prefix = lambda key, alias=None: None
    session = ApiSession(config)
    listed = asyncio.Event()
    stream = WatchStream(
        session, path="/api/v1/pods", label_selector="", sink=lambda *_: None, on_listed=listed.set
    )
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(listed.wait(), timeout=10)  # listed over TLS: the name was checked
        assert server.requests[0].startswith(b"GET /api/v1/pods?limit=500 HTTP/1.1")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()


# -- reading answers: the framings an API server (or a proxy in front of it) may use ------------

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("raw", "method", "expected"),
    [
        pytest.param(
            OK_HEAD + b'Content-Length: 7\r\n\r\n{"a":1}', "GET", (200, b'{"a":1}', False), id="length"
        ),
        pytest.param(
            OK_HEAD
            + b'Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n',
            "GET",
            (200, b'{"a":1}', False),
            id="chunked-with-an-extension-and-a-trailer",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD + b"Content-Length: 2\r\n\r\n{}",
            "PATCH",
            (200, b"{}", False),
            id="an-interim-answer-first",
        ),
        pytest.param(
            OK_HEAD + b"connection: Close\r\nContent-Length: 2\r\n\r\n{}",
            "GET",
            (200, b"{}", True),
            id="close",
        ),
        pytest.param(OK_HEAD + b'\r\n{"to":"the end"}', "GET", (200, b'{"to":"the end"}', True), id="to-eof"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", "GET", (200, b"{}", True), id="http-1.0"
        ),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE", (204, b"", False), id="no-content"),
        pytest.param(OK_HEAD + b"Content-Length: 9\r\n\r\n", "HEAD", (200, b"", False), id="head"),
        pytest.param(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\n{}",
            "GET",
            (404, b"{}", False),
            id="repeated-fields",
        ),
    ],
)
def test_read_response_frames_the_body(raw: bytes, method: str, expected: tuple[int, bytes, bool]) -> None:
    assert read_response(io.BytesIO(raw), method) == expected


def test_read_response_leaves_the_next_answer_on_the_connection() -> None:
    reader = io.BytesIO(
        OK_HEAD + b"Content-Length: 2\r\n\r\n{}" + b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n1"
    )
    assert read_response(reader, "GET") == (200, b"{}", False)
    assert read_response(reader, "POST") == (201, b"1", False)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b"", http.client.RemoteDisconnected, id="no-answer"),
        pytest.param(b"SSH-2.0-OpenSSH\r\n", http.client.BadStatusLine, id="not-http"),
        pytest.param(OK_HEAD + b"Content-Length: 9\r\n\r\n{}", http.client.IncompleteRead, id="short-body"),
        pytest.param(OK_HEAD + b"Content-Length: x\r\n\r\n{}", http.client.HTTPException, id="bad-length"),
        pytest.param(OK_HEAD, http.client.IncompleteRead, id="cut-in-the-header"),
        pytest.param(OK_HEAD + b"no colon\r\n\r\n", http.client.HTTPException, id="malformed-field"),
        pytest.param(OK_HEAD + b"X: " + b"a" * 70000 + b"\r\n\r\n", http.client.LineTooLong, id="long-line"),
        pytest.param(OK_HEAD + b"X: a\r\n" * 101 + b"\r\n", http.client.HTTPException, id="too-many-fields"),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: gzip\r\n\r\n", http.client.HTTPException, id="unknown-coding"
        ),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            http.client.HTTPException,
            id="bad-chunk-size",
        ),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n",
            http.client.HTTPException,
            id="chunk-longer-than-said",
        ),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n9\r\n{}",
            http.client.IncompleteRead,
            id="short-chunk",
        ),
    ],
)
def test_read_response_refuses_a_broken_answer(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_response(io.BytesIO(raw), "GET")


def test_a_header_value_with_a_line_break_is_not_sent(server: ScriptedServer) -> None:
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}"), timeout=5)
    with pytest.raises(ValueError, match="Authorization"):
        transport.request("GET", "/a", None, {"Authorization": "Bearer t\r\nX-Injected: 1"})
    assert server.requests == []


def test_the_host_field_names_the_server_as_configured(server: ScriptedServer) -> None:
    transport = HttpTransport(configuration(f"http://127.0.0.1:{server.port}"), timeout=5)
    transport.request("GET", "/a", None, {"Accept": "application/json"})
    assert server.heads[0].split(b"\r\n")[1:] == [
        b"Host: 127.0.0.1:%d" % server.port,
        b"Accept: application/json",
    ]
