"""Deterministic multi-document YAML for rendered objects (``slmctl render`` and golden files).

Speed matters here: GitOps pipelines render hundreds of models, and PyYAML's pure-Python
emitter took most of ``slmctl render``'s time (docs/benchmarks.md). So the text is emitted by
libyaml's C emitter (PyYAML's ``CSafeDumper``) when PyYAML was built with it, and by the pure
emitter otherwise; both write the same bytes (``tests/unit/test_yaml_out.py`` compares them).
Objects become YAML nodes in one small function rather than through PyYAML's representer,
and scalar tags are resolved once per distinct value; ``bench/render.py`` measures all this.

Sequences are written the way libyaml, ``kubectl get -o yaml`` and Go's yaml libraries write
them: a list that is the value of a key starts in the key's column (``containers:`` then
``- name: ...`` below it). libyaml cannot indent them further, so this is the one style both
emitters share.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from slm_operator.contract.kinds import SECRET

STR_TAG: Final = "tag:yaml.org,2002:str"
INT_TAG: Final = "tag:yaml.org,2002:int"
BOOL_TAG: Final = "tag:yaml.org,2002:bool"
NULL_TAG: Final = "tag:yaml.org,2002:null"
MAP_TAG: Final = "tag:yaml.org,2002:map"
SEQ_TAG: Final = "tag:yaml.org,2002:seq"

# True when this PyYAML was built against libyaml (wheels for Linux, macOS and Windows are).
HAVE_LIBYAML: Final = bool(getattr(yaml, "__with_libyaml__", False))

# Where the two emitters disagree, found by tests/unit/test_yaml_out.py sweeping characters
# and key lengths: PyYAML's pure emitter escapes NEL (U+0085) and everything beyond the Basic
# Multilingual Plane (emoji ...) in double quotes, libyaml writes them as they are; libyaml
# takes CR for a line break in a key, the pure emitter does not; and they measure the longest
# key written as `key:` differently (about 122 characters against 128 UTF-8 bytes). Objects
# holding such text or keys, or keys that are not strings, are written by the pure emitter,
# so the output never depends on how PyYAML was built.
_EMITTERS_DISAGREE: Final = re.compile("[\r\x85\U00010000-\U0010ffff]")

_LONG_KEY_BYTES: Final = 100

_DUMP_OPTIONS: Final[dict[str, Any]] = {
    "explicit_start": True,
    "allow_unicode": True,
    # Never fold long lines (a folded image reference or flag is hard to read and to diff).
    "width": 100_000,
}


class _MemoResolver:
    """Resolver whose answers are remembered: rendered objects repeat the same keys and values.

    For a scalar the answer depends only on (value, implicit) and the resolver's rules, which
    both dumpers here share unchanged, so remembering it cannot change the output. The memo is
    shared by every dump and bounded.
    """

    c_emitter: ClassVar[bool] = False
    _memo: dict[tuple[str, Any], str] = {}  # noqa: RUF012 - a deliberate class-wide cache
    _MEMO_LIMIT = 65_536

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is not ScalarNode:
            default: str = super().resolve(kind, value, implicit)  # type: ignore[misc]
            return default
        key = (value, implicit)
        tag = self._memo.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[misc]
            if len(self._memo) < self._MEMO_LIMIT:
                self._memo[key] = tag
        return tag

    # The safe dumpers have no path resolvers; these run once per node and do nothing.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class PureDumper(_MemoResolver, yaml.SafeDumper):
    """PyYAML's pure-Python emitter (the fallback, and the reference the C output is held to)."""


if HAVE_LIBYAML:

    class CDumper(_MemoResolver, yaml.CSafeDumper):
        """libyaml's C emitter with PyYAML's safe resolver."""

        c_emitter: ClassVar[bool] = True

    DEFAULT_DUMPER: type[yaml.SafeDumper] | type[yaml.CSafeDumper] = CDumper
else:  # pragma: no cover - PyYAML without libyaml (a source build without its headers)
    DEFAULT_DUMPER = PureDumper


class _EmittersDisagreeError(Exception):
    """A string the C emitter would write differently from the pure one."""


def to_node(value: Any, dumper: Any) -> Node:
    """A YAML node for plain data, as PyYAML's SafeRepresenter builds it (block style).

    Strings with a line break become literal blocks (scripts and Modelfiles read best that
    way); the emitter falls back to quoting on its own when a literal block cannot represent
    the text exactly. Other types go through the dumper's own representer. A fresh node per
    value: a shared node would be written as an anchor and alias. For the C emitter, text it
    would write differently from the pure one raises :class:`_EmittersDisagreeError`.
    """
    c_emitter: bool = dumper.c_emitter
    search = _EMITTERS_DISAGREE.search

    def key_node(key: Any) -> Node:
        if type(key) is not str:
            if c_emitter:
                raise _EmittersDisagreeError
            return node(key)
        if c_emitter and (
            (len(key) > 25 and len(key.encode()) > _LONG_KEY_BYTES)
            or (("\r" in key or not key.isascii()) and search(key))
        ):
            raise _EmittersDisagreeError
        return ScalarNode(STR_TAG, key, None, None, "|" if "\n" in key else None)

    def node(value: Any) -> Node:
        kind = type(value)
        if kind is str:
            if c_emitter and ("\r" in value or not value.isascii()) and search(value):
                raise _EmittersDisagreeError
            return ScalarNode(STR_TAG, value, None, None, "|" if "\n" in value else None)
        if kind is dict:
            return MappingNode(MAP_TAG, [(key_node(k), node(v)) for k, v in value.items()], None, None, False)
        if kind is list:
            return SequenceNode(SEQ_TAG, [node(item) for item in value], None, None, False)
        if kind is bool:
            return ScalarNode(BOOL_TAG, "true" if value else "false")
        if kind is int:
            return ScalarNode(INT_TAG, str(value))
        if value is None:
            return ScalarNode(NULL_TAG, "null")
        if kind is float:
            represented: Node = dumper.represent_float(value)
            return represented
        represented = dumper.represent_data(value)
        return represented

    return node(value)


def _without_secret_values(obj: dict[str, Any]) -> dict[str, Any]:
    # Rendered Secrets carry no values; this is the second lock on the door, so that no key
    # can ever reach a terminal or a golden file even if one were added upstream.
    if obj.get("kind") == SECRET.kind and obj.get("apiVersion") == SECRET.api_version:
        return {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    return obj


def dump_objects(
    objects: Iterable[dict[str, Any]],
    dumper: type[yaml.SafeDumper] | type[yaml.CSafeDumper] | None = None,
) -> str:
    """Objects as a YAML stream, one document each, keys in the order they were built.

    ``dumper`` chooses the emitter (tests and benchmarks compare both); by default the C one
    when available. Text the two emitters would write differently goes to the pure one.
    """
    docs = [_without_secret_values(obj) for obj in objects]
    if not docs:
        return ""
    chosen = dumper or DEFAULT_DUMPER
    if chosen is not PureDumper:
        try:
            return _dump(docs, chosen)
        except _EmittersDisagreeError:
            pass
    return _dump(docs, PureDumper)


def _dump(docs: list[dict[str, Any]], dumper: type[yaml.SafeDumper] | type[yaml.CSafeDumper]) -> str:
    stream = io.StringIO()
    emitter = dumper(stream, default_flow_style=False, sort_keys=False, **_DUMP_OPTIONS)
    try:
        emitter.open()
        for doc in docs:
            emitter.serialize(to_node(doc, emitter))
        emitter.close()
    finally:
        emitter.dispose()
    return stream.getvalue()
