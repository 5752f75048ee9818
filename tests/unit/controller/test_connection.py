"""Reading the connection to the API server: in-cluster, and kubeconfig files as kubectl merges them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity as client_parse_quantity

from slm_operator.controller.connection import (
    Connection,
    ConnectionConfigError,
    from_kubeconfig,
    in_cluster,
    kubeconfig_paths,
    load_connection,
)
from slm_operator.controller.drift import parse_quantity
from slm_operator.controller.kubeapi import authorization_header
from slm_operator.controller.run import connection_info


def kubeconfig(
    path: Path,
    *,
    current: str | None = "dev",
    clusters: dict[str, dict[str, Any]] | None = None,
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]] | None = None,
) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


DEV = {"dev": {"cluster": "c", "user": "u"}}


def test_a_token_user_with_an_inline_ca(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"
    path = kubeconfig(
        tmp_path / "config",
        clusters={
            "c": {
                "server": "https://10.0.0.1:6443/",
                "certificate-authority-data": base64.b64encode(ca).decode(),
            }
        },
        users={"u": {"token": "s3cret"}},
        contexts=DEV,
    )
    connection = from_kubeconfig([path])
    assert connection is not None
    assert connection.host == "https://10.0.0.1:6443"
    assert connection.verify_ssl
    assert connection.ssl_ca_cert is not None
    assert Path(connection.ssl_ca_cert).read_bytes() == ca
    assert Path(connection.ssl_ca_cert).stat().st_mode & 0o077 == 0  # only this user reads it
    assert authorization_header(connection) == "Bearer s3cret"
    info = connection_info(connection)  # kopf's login takes it as it took the client's
    assert (info.server, info.scheme, info.token, info.ca_path) == (
        "https://10.0.0.1:6443",
        "Bearer",
        "s3cret",
        connection.ssl_ca_cert,
    )


def test_client_certificate_files_are_relative_to_their_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    path = kubeconfig(
        tmp_path / "k" / "config",
        clusters={
            "c": {
                "server": "https://api:6443",
                "insecure-skip-tls-verify": True,
                "tls-server-name": "kubernetes",
            }
        },
        users={"u": {"client-certificate": "u.crt", "client-key": "/abs/u.key"}},
        contexts=DEV,
    )
    connection = from_kubeconfig([path])
    assert connection is not None
    assert connection.cert_file == str(tmp_path / "k" / "u.crt")
    assert connection.key_file == "/abs/u.key"
    assert not connection.verify_ssl
    assert connection.tls_server_name == "kubernetes"
    assert authorization_header(connection) is None


def test_kubeconfig_files_merge_first_name_wins(tmp_path: Path) -> None:
    first = kubeconfig(
        tmp_path / "a",
        current=None,
        clusters={"c": {"server": "https://first"}},
        users={"u": {"token": "first"}},
    )
    second = kubeconfig(
        tmp_path / "b",
        current="dev",
        clusters={"c": {"server": "https://second"}},
        users={"u": {"token": "second"}},
        contexts=DEV,
    )
    connection = from_kubeconfig([first, tmp_path / "missing", second])
    assert connection is not None
    assert (connection.host, connection.token) == ("https://first", "first")
    assert kubeconfig_paths({"KUBECONFIG": f"{first}:{second}"}) == [first, second]


def test_a_credential_plugin_is_left_to_the_client_loader(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://eks"}},
        users={"u": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}},
        contexts=DEV,
    )
    assert from_kubeconfig([path]) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"current": None, "contexts": DEV}, "no current-context"),
        ({"contexts": {"dev": {"cluster": "nope", "user": "u"}}}, "cluster 'nope' is not defined"),
        ({"contexts": DEV, "clusters": {"c": {}}}, "cluster 'c' has no server"),
        (
            {"contexts": DEV, "clusters": {"c": {"server": "https://x", "certificate-authority-data": "!!"}}},
            "certificate-authority-data is not base64",
        ),
    ],
)
def test_a_broken_kubeconfig_names_what_is_wrong(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    config = {"clusters": {}, "users": {"u": {}}, **config}
    path = kubeconfig(tmp_path / "config", **config)
    with pytest.raises(ConnectionConfigError, match=message):
        from_kubeconfig([path])


def test_no_kubeconfig_and_no_service_account_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="set KUBECONFIG"):
        load_connection({"KUBECONFIG": str(tmp_path / "absent")})


def test_the_proxy_comes_from_the_kubeconfig_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.corp")
    plain = kubeconfig(
        tmp_path / "a", clusters={"c": {"server": "https://api"}}, users={"u": {}}, contexts=DEV
    )
    named = kubeconfig(
        tmp_path / "b",
        clusters={"c": {"server": "https://api", "proxy-url": "socks5://jump:1080"}},
        users={"u": {}},
        contexts=DEV,
    )
    from_env, from_file = from_kubeconfig([plain]), from_kubeconfig([named])
    assert from_env is not None
    assert from_file is not None
    assert (from_env.proxy, from_env.no_proxy) == ("http://proxy.corp:3128", "internal.corp")
    assert from_file.proxy == "socks5://jump:1080"


def test_in_cluster_reads_the_rotated_token_again_after_a_minute(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("one\n")
    (tmp_path / "ca.crt").write_text("ca")
    start = time.monotonic()
    connection = in_cluster(
        {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path
    )
    now = [start]
    connection.clock = lambda: now[0]
    assert connection.host == "https://[fd00::1]:443"
    assert connection.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert connection.get_api_key_with_prefix("BearerToken") == "Bearer one"
    (tmp_path / "token").write_text("two\n")
    now[0] = start + 30.0
    assert connection.get_api_key_with_prefix("BearerToken") == "Bearer one"
    now[0] = start + 61.0
    assert connection.get_api_key_with_prefix("BearerToken") == "Bearer two"


def test_in_cluster_without_its_address_says_which_variables(tmp_path: Path) -> None:
    with pytest.raises(ConnectionConfigError, match="KUBERNETES_SERVICE_PORT"):
        in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)


def test_the_operator_process_does_not_load_the_kubernetes_client() -> None:
    # What `slmctl run` imports, in a fresh interpreter (this test process has the client).
    code = (
        "import sys, slm_operator.cli, slm_operator.controller.run, slm_operator.controller.handlers;"
        "print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "text",
    ["500m", "0.5", "1Gi", "1073741824", "100u", "0.0001", "1e3", "1E3", "12E+2", "1e-3", "1k", "1M", "2",
     "+1", "-1", ".5", "1.", "1.5Ki", "1n", "1Ei", "7Pi", "3T", "0"],
)  # fmt: skip
def test_quantities_parse_as_the_kubernetes_client_parses_them(text: str) -> None:
    assert parse_quantity(text) == client_parse_quantity(text)


@pytest.mark.parametrize("text", ["", "Gi", "1ki", "1e", "1.2.3", "abc", "1Gib", "--1", "NaN"])
def test_what_is_not_a_quantity_is_none(text: str) -> None:
    assert parse_quantity(text) is None


def test_a_connection_without_a_token_has_no_authorization() -> None:
    assert Connection(host="https://x").get_api_key_with_prefix("BearerToken") is None


def test_a_quantity_may_carry_surrounding_spaces() -> None:
    assert parse_quantity(" 2Gi ") == Decimal(2 * 1024**3)


def test_slmctl_run_without_a_connection_exits_with_the_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(tmp_path / "absent")
    code = "import sys; from slm_operator.cli import main; sys.exit(main(['run', '-A']))"
    argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert f"no kubeconfig at {tmp_path / 'absent'}" in done.stderr
    assert "Traceback" not in done.stderr
