"""The command blocks of a Markdown document, for tests that execute documentation.

A document meant to be executed (docs/quickstart.md) writes every command in a fenced ``sh``
block, to run in order in one shell. An HTML comment on the line before a block marks how a
test on the simulated cluster treats it:

- ``<!-- sim: skip -->``: not run there (it creates the cluster, or needs a container engine);
- ``<!-- sim: stop -->``: the run ends before this block (from here a container must really
  serve, which simulated pods do not).

Blank lines may separate the marker from the block; any other text in between detaches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Marker(StrEnum):
    NONE = ""
    SKIP = "skip"
    STOP = "stop"


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string (language), text, marker and opening line (1-based)."""

    language: str
    text: str
    marker: Marker
    line: int


class DocumentError(ValueError):
    """A document the executor cannot run as written (names the line)."""


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*sim:\s*(?P<word>[a-z-]+)\s*-->\s*$")


def blocks(markdown: str) -> list[Block]:
    """Every fenced code block of ``markdown`` in order, with the marker in front of it.

    Raises :class:`DocumentError` for an unclosed fence, an unknown ``sim:`` word, or a marker
    that no code block follows.
    """
    found: list[Block] = []
    lines = markdown.splitlines()
    pending: tuple[Marker, int] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            word = marker.group("word")
            try:
                pending = (Marker(word), index + 1)
            except ValueError:
                raise DocumentError(
                    f"line {index + 1}: unknown marker 'sim: {word}' (skip or stop)"
                ) from None
        elif fence:
            opening, info = fence.group("fence"), fence.group("info").strip()
            start = index + 1
            body: list[str] = []
            index += 1
            while index < len(lines):
                closing = _FENCE.match(lines[index])
                if (
                    closing
                    and closing.group("fence").startswith(opening)
                    and not closing.group("info").strip()
                ):
                    break
                body.append(lines[index])
                index += 1
            else:
                raise DocumentError(f"line {start}: unclosed code fence")
            language = info.split()[0] if info else ""
            text = "\n".join(body) + "\n" if body else ""
            found.append(Block(language, text, pending[0] if pending else Marker.NONE, start))
            pending = None
        elif line.strip() and pending is not None:
            raise DocumentError(
                f"line {pending[1]}: marker 'sim: {pending[0]}' is not followed by a code block"
            )
        index += 1
    if pending is not None:
        raise DocumentError(f"line {pending[1]}: marker 'sim: {pending[0]}' is not followed by a code block")
    return found


def shell_blocks(markdown: str) -> list[Block]:
    """The ``sh`` blocks, in order (other languages, e.g. yaml shown for reading, are left out)."""
    return [b for b in blocks(markdown) if b.language == "sh"]


def simulated_run(markdown: str) -> list[Block]:
    """The ``sh`` blocks a simulated-cluster test runs: up to the first ``stop``, without ``skip``."""
    run: list[Block] = []
    for block in shell_blocks(markdown):
        if block.marker is Marker.STOP:
            break
        if block.marker is not Marker.SKIP:
            run.append(block)
    return run
