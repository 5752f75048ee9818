"""The gateway with aiohttp's client in place of its own, for the benchmark's client comparison.

``python -m bench.gateway.aiohttp_client ARGS`` runs ``slmctl gateway ARGS`` with
``UpstreamPool`` replaced by an adapter over ``aiohttp.ClientSession`` (keep-alive pool without
a limit, no automatic headers or decompression, the same timeout and the same error kinds). It
exists only to measure whether the gateway's own small client earns its place; the product always
uses its own.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from slm_operator.gateway import cli, server
from slm_operator.gateway.upstream import UpstreamError


class AiohttpResponse:
    """The part of ``UpstreamResponse`` the gateway uses, over an aiohttp ClientResponse."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: CIMultiDictProxy[str] = response.headers
        self.content_type = response.content_type
        chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
        self.length = None if chunked else response.content_length

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError("disconnected", str(exc)) from exc

    async def next_chunk(self) -> bytes:
        try:
            return await self._response.content.readany()
        except TimeoutError as exc:
            raise UpstreamError("timeout", "silence") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("disconnected", str(exc)) from exc

    def close(self) -> None:
        self._response.release()


class AiohttpPool:
    """Drop-in for ``UpstreamPool`` built on ``aiohttp.ClientSession``."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._closing: asyncio.Future[None] | None = None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | CIMultiDict[str],
        body: bytes | None,
    ) -> AiohttpResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        try:
            response = await self._session.request(
                method,
                URL(self._base + target, encoded=True),
                headers=CIMultiDict(headers),
                data=body,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise UpstreamError("timeout", "no answer") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError("connect", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("disconnected", str(exc)) from exc
        return AiohttpResponse(response)

    def close(self) -> None:
        if self._session is not None:
            self._closing = asyncio.ensure_future(self._session.close())


if __name__ == "__main__":
    setattr(server, "UpstreamPool", AiohttpPool)  # noqa: B010 - the one substitution this module is for
    sys.exit(cli.main(sys.argv[1:]))
