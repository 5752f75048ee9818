"""The API key: who gets in, rotation without a restart, failing closed, and what never gets logged."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import aiohttp
import pytest
from gateway_fakes import KEY, MODEL, FakeRuntime, StartGateway, bearer, write_key_file

from slm_operator.gateway.keys import ApiKeys, bearer_token, parse_keys

pytestmark = pytest.mark.timeout(20)

MODELS = "/v1/models"
SECOND = "sk-second-key"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": ""}, 401),
        ({"Authorization": f"Basic {KEY}"}, 401),
        ({"Authorization": KEY}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer sk-wrong"}, 401),
        ({"Authorization": f"Bearer {KEY}x"}, 401),
        ({"Authorization": f"Bearer {KEY[:-1]}"}, 401),
        ({"Authorization": f"Bearer {KEY.upper()}"}, 401),
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"Authorization": f"bearer {KEY}"}, 200),
        ({"Authorization": f"Bearer   {KEY}  "}, 200),
        ({"Authorization": f"Bearer {SECOND}"}, 200),
    ],
    ids=[
        "no-header",
        "empty-header",
        "basic-scheme",
        "no-scheme",
        "scheme-only",
        "wrong-key",
        "key-with-suffix",
        "key-prefix",
        "key-wrong-case",
        "right-key",
        "scheme-lower-case",
        "extra-whitespace",
        "second-of-several",
    ],
)
async def test_auth_matrix(
    headers: dict[str, str],
    status: int,
    key_file: Path,
    vllm: FakeRuntime,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    # Several keys, with the blank lines and stray whitespace a hand-edited Secret may have.
    write_key_file(key_file, f"\n  {KEY}  \n\n\t{SECOND}\n")
    gateway = await start(vllm)
    async with client.get(gateway.api_url + MODELS, headers=headers) as response:
        assert response.status == status
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert await response.json() == {
                "error": {
                    "message": "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
    assert vllm.hits[MODELS] == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    "route", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
)
async def test_every_forwarded_route_needs_the_key(
    route: str, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(gateway.api_url + route, json={"model": MODEL}) as response:
        assert response.status == 401
    assert vllm.hits[route] == 0


@pytest.mark.parametrize("content", ["", "\n  \n", None], ids=["empty", "whitespace-only", "missing"])
async def test_no_key_in_the_file_fails_closed(
    content: str | None, key_file: Path, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    write_key_file(key_file, content)
    gateway = await start(vllm)
    for headers in ({}, bearer(), {"Authorization": "Bearer "}):
        async with client.post(gateway.api_url + "/v1/embeddings", json={}, headers=headers) as response:
            assert response.status == 401
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 503
        assert "no API key" in (await response.json())["reason"]
    assert vllm.hits["/v1/embeddings"] == 0


async def test_no_auth_lets_everyone_in(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, api_key_file=None)
    async with client.get(gateway.api_url + MODELS) as response:
        assert response.status == 200
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 200


def kubernetes_secret_volume(mount: Path, key: str, version: int) -> Path:
    """Lay out (or update) a Secret volume the way the kubelet's atomic writer does.

    ``<mount>/..<version>/api-key`` holds the data, ``..data`` points at the current version and
    ``<mount>/api-key`` points through ``..data``; an update writes a new version directory and
    swaps ``..data`` with one rename.
    """
    mount.mkdir(exist_ok=True)
    version_dir = mount / f"..2026_11_29_00_00_0{version}.000000001"
    version_dir.mkdir()
    (version_dir / "api-key").write_text(key)
    staging = mount / "..data_tmp"
    staging.symlink_to(version_dir.name)
    os.replace(staging, mount / "..data")
    visible = mount / "api-key"
    if not visible.is_symlink():
        visible.symlink_to("..data/api-key")
    return visible


async def test_rotation_through_a_data_symlink_swap_needs_no_restart(
    tmp_path: Path, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    mount = tmp_path / "api-key-volume"
    path = kubernetes_secret_volume(mount, "sk-old", 1)
    gateway = await start(vllm, api_key_file=path)

    async def status_with(key: str) -> int:
        async with client.get(gateway.api_url + MODELS, headers=bearer(key)) as response:
            return response.status

    assert await status_with("sk-old") == 200
    assert await status_with("sk-new") == 401
    kubernetes_secret_volume(mount, "sk-new", 2)
    assert await status_with("sk-new") == 200
    assert await status_with("sk-old") == 401


async def test_rotation_by_rewriting_the_file(
    key_file: Path, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    write_key_file(key_file, "sk-rotated-key-of-a-different-length\n")
    async with client.get(
        gateway.api_url + MODELS, headers=bearer("sk-rotated-key-of-a-different-length")
    ) as r:
        assert r.status == 200
    async with client.get(gateway.api_url + MODELS, headers=bearer()) as r:
        assert r.status == 401


async def test_keys_and_prompts_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture,
    key_file: Path,
    vllm: FakeRuntime,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt = "my-secret-prompt-7f3a"
    gateway = await start(vllm)
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    async with client.post(gateway.api_url + "/v1/chat/completions", json=body, headers=bearer()) as r:
        assert r.status == 200
    async with client.post(
        gateway.api_url + "/v1/chat/completions", json=body, headers=bearer("sk-guess")
    ) as r:
        assert r.status == 401
    write_key_file(key_file, "sk-rotated-secret\n")
    async with client.get(gateway.api_url + MODELS, headers=bearer("sk-rotated-secret")) as r:
        assert r.status == 200
    access = [
        json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "slm_operator.gateway.access"
    ]
    assert [(line["route"], line["status"], line["model"]) for line in access] == [
        ("/v1/chat/completions", 200, MODEL),
        ("/v1/chat/completions", 401, MODEL),
        (MODELS, 200, MODEL),
    ]
    for secret in (KEY, "sk-guess", "sk-rotated-secret", prompt):
        assert secret not in caplog.text


# --- the key store on its own ------------------------------------------------------------------


def test_parse_keys_ignores_blank_lines_and_whitespace() -> None:
    assert parse_keys(b"  a \r\n\n\tb\t\n   \n") == ("a", "b")
    assert parse_keys(b"") == ()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Token abc", None),
        ("Bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_file_is_checked_at_most_once_per_interval(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "api-key"
    path.write_text("sk-one\n")
    keys = ApiKeys(path, recheck_seconds=1.0, clock=lambda: now[0])
    assert keys.verify("Bearer sk-one")
    path.write_text("sk-two\n")
    now[0] += 0.5  # within the interval: the old key still holds, the file is not even stat-ed
    assert keys.verify("Bearer sk-one")
    assert not keys.verify("Bearer sk-two")
    now[0] += 0.6
    assert keys.verify("Bearer sk-two")
    assert not keys.verify("Bearer sk-one")


def test_a_key_file_that_disappears_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text("sk-one\n")
    keys = ApiKeys(path, recheck_seconds=0.0)
    assert keys.count() == 1
    path.unlink()
    assert keys.count() == 0
    assert not keys.verify("Bearer sk-one")
