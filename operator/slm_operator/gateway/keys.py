"""API keys from a mounted file, re-read when the file changes, checked in constant time.

Kubernetes updates a Secret volume by writing a new timestamped directory and atomically
swapping the ``..data`` symlink to it; ``<mount>/api-key`` is itself a symlink through
``..data``. ``os.stat`` follows the links, so a swap shows up as a new inode (and mtime) of the
file the path resolves to, which is what the change check compares.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, int, int]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None for any other form.

    The scheme is case-insensitive (RFC 9110 §11.1); whitespace around the token is ignored.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class KeyFileError(ValueError):
    """A key file whose bytes cannot be taken as keys as they are."""


def parse_keys(data: bytes) -> tuple[str, ...]:
    """Keys in a key file: one per line, surrounding whitespace and blank lines ignored.

    The file must be UTF-8 without a byte-order mark: a BOM or an invalid byte would otherwise
    become part of a key that no client sends, silently. Raises KeyFileError (the message never
    contains the file's bytes).
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise KeyFileError("the API key file starts with a byte-order mark; save it as plain UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"the API key file is not valid UTF-8 (at byte {exc.start})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps even the key's length out of the timing. Header values
    # arrive decoded with surrogateescape, so bytes that are not UTF-8 come back as themselves
    # (and can never equal a key, which the key file guarantees to be valid UTF-8).
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class ApiKeys:
    """The set of accepted keys, kept in step with a key file.

    The file is stat-ed at most once per ``recheck_seconds`` on the request path and re-read
    only when its identity (device, inode, size, mtime, ctime) changed. A missing, unreadable
    or empty file leaves no accepted key: the gateway fails closed.
    """

    def __init__(
        self,
        path: Path,
        *,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._digests: tuple[bytes, ...] = ()
        self._stamp: _Stamp | None = None
        self._last_message = ""
        self._problem: str | None = None
        self._next_check = clock()
        self._reload()

    @property
    def path(self) -> Path:
        """The key file this set follows."""
        return self._path

    @property
    def problem(self) -> str | None:
        """Why no key is loaded (for ``/readyz``; never names the file), or None when keys are."""
        self._maybe_reload()
        return self._problem

    def count(self) -> int:
        """How many keys are accepted right now (0 means every request is refused)."""
        self._maybe_reload()
        return len(self._digests)

    def verify(self, authorization: str | None) -> bool:
        """True when the header carries one of the keys; compares against every key, no early exit."""
        self._maybe_reload()
        token = bearer_token(authorization)
        if token is None:
            return False
        presented = _digest(token)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(digest, presented)
        return matched

    def verify_raw(self, authorization: bytes | None) -> bool:
        """:meth:`verify` for the raw header value as received (any bytes; not decoded)."""
        self._maybe_reload()
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return False
        # The same digest as _digest(str): keys are UTF-8, and bytes that are not can never match.
        presented = hashlib.sha256(token).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(digest, presented)
        return matched

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._recheck_seconds
        self._reload()

    def _reload(self) -> None:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            self._set((), None, f"cannot read the API key file ({exc.strerror}); refusing every request")
            return
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if stamp == self._stamp:
            return
        try:
            data = self._path.read_bytes()
        except OSError as exc:
            self._set((), None, f"cannot read the API key file ({exc.strerror}); refusing every request")
            return
        try:
            keys = parse_keys(data)
        except KeyFileError as exc:
            self._set((), stamp, f"{exc}; refusing every request")
            return
        if not keys:
            self._set((), stamp, "the API key file is empty; refusing every request")
            return
        self._set(tuple(_digest(key) for key in keys), stamp, f"loaded {len(keys)} API key(s)")

    def _set(self, digests: tuple[bytes, ...], stamp: _Stamp | None, message: str) -> None:
        changed = digests != self._digests or message != self._last_message
        self._digests = digests
        self._stamp = stamp
        self._last_message = message
        self._problem = None if digests else message.partition(";")[0]
        if changed:
            # Never the keys themselves: only how many there are and where they come from.
            level = logging.INFO if digests else logging.WARNING
            log.log(level, "%s: %s", self._path, message)
