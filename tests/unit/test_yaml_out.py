"""YAML output: libyaml's C emitter writes exactly the bytes of PyYAML's pure emitter.

``slmctl render`` and the golden files use the C emitter when PyYAML has it; a PyYAML built
without libyaml falls back to the pure one. These tests hold the two to the same output on
every example, every golden file's objects and a set of awkward scalars, and hold the fast
node builder to PyYAML's own SafeRepresenter.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import load_config
from slm_operator.cli import config_named_in
from slm_operator.desired import desired_state
from slm_operator.render import yaml_out

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "golden"))
from regenerate import GOLDEN, example_files, model_documents  # noqa: E402

needs_libyaml = pytest.mark.skipif(not yaml_out.HAVE_LIBYAML, reason="PyYAML was built without libyaml")

# Scalars that make emitters choose quoting, literal blocks or escapes.
AWKWARD: dict[str, Any] = {
    "empty": "",
    "space": " ",
    "leading space": "  indented",
    "trailing space": "trailing ",
    "looks like bool": "yes",
    "looks like null": "~",
    "looks like int": "0x1F",
    "looks like float": "1e3",
    "octal": "0755",
    "colon": "a: b",
    "hash": "a #b",
    "starts with dash": "- x",
    "starts with star": "*alias",
    "quote": "'single' and \"double\"",
    "unicode": "Grüße, 你好, emoji \U0001f600",
    "tab": "a\tb",
    "control": "bell\x07",
    "script": "#!/bin/sh\nset -eu\necho 'x: y'\n  - indented\n",
    "no final newline": "line one\nline two",
    "trailing blank lines": "text\n\n\n",
    "leading newline": "\nafter",
    "trailing space in block": "a \nb\n",
    "crlf": "a\r\nb\n",
    "nbsp": "a\u00a0b",
    "line separator": "a\u2028b",
    "long": "x" * 5000,
    "int": 42,
    "negative": -7,
    "big": 10**30,
    "float": 0.1,
    "exp float": 1e17,
    "inf": math.inf,
    "bool": True,
    "null": None,
    "empty map": {},
    "empty list": [],
    "nested": {"list": [{"a": [1, [2, []]], "b": {"c": None}}, "s", ["x", {"y": "multi\nline\n"}]]},
    "yes": "no",
    1: "int key",
    "k" * 125: "long key",
}


def rendered_examples() -> list[tuple[str, list[dict[str, Any]]]]:
    cases = []
    for path in example_files():
        config = load_config(config_named_in(path))
        for monitoring in (False, True):
            objects = []
            for document in model_documents(path):
                state = desired_state(
                    parse_document(document), config, monitoring_available=monitoring, keda_available=True
                )
                objects.extend(state.objects)
            cases.append((f"{path.stem}-monitoring-{monitoring}", objects))
    return cases


def golden_objects() -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        (path.stem, [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None])
        for path in sorted(GOLDEN.glob("*.yaml"))
    ]


CASES = [
    *rendered_examples(),
    *golden_objects(),
    ("awkward", [AWKWARD, {"kind": "List", "items": [AWKWARD]}]),
]


class _ReferenceDumper(yaml.SafeDumper):
    """PyYAML's own representer with the options the renderer uses (no aliases, literal blocks)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _literal_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_ReferenceDumper.add_representer(str, _literal_str)


@needs_libyaml
@pytest.mark.parametrize(("name", "objects"), CASES, ids=[c[0] for c in CASES])
def test_c_emitter_writes_the_same_bytes_as_the_pure_emitter(
    name: str, objects: list[dict[str, Any]]
) -> None:
    pure = yaml_out.dump_objects(objects, yaml_out.PureDumper)
    c = yaml_out.dump_objects(objects, yaml_out.CDumper)
    assert pure, name
    assert c == pure


@pytest.mark.parametrize(("name", "objects"), CASES, ids=[c[0] for c in CASES])
def test_node_builder_matches_pyyaml_representer(name: str, objects: list[dict[str, Any]]) -> None:
    expected = yaml.dump_all(
        [yaml_out._without_secret_values(o) for o in objects],
        Dumper=_ReferenceDumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100_000,
    )
    assert yaml_out.dump_objects(objects, yaml_out.PureDumper) == expected


@pytest.mark.parametrize(("name", "objects"), CASES, ids=[c[0] for c in CASES])
def test_output_reads_back_as_the_objects(name: str, objects: list[dict[str, Any]]) -> None:
    text = yaml_out.dump_objects(objects)
    assert list(yaml.safe_load_all(text)) == [yaml_out._without_secret_values(o) for o in objects]


@needs_libyaml
def test_render_uses_the_c_emitter_when_available() -> None:
    assert yaml_out.DEFAULT_DUMPER is yaml_out.CDumper


def test_shared_values_are_written_in_full_not_as_aliases() -> None:
    shared = {"app": "x"}
    text = yaml_out.dump_objects([{"a": shared, "b": shared, "c": [shared, shared]}])
    assert "&" not in text
    assert "*" not in text
    assert text.count("app: x") == 4


def test_unsupported_types_are_refused_as_by_the_safe_representer() -> None:
    with pytest.raises(yaml.representer.RepresenterError):
        yaml_out.dump_objects([{"a": object()}])


def _sweep() -> list[int]:
    # Every code point of Latin, Greek, Cyrillic ... up to U+07FF, the end of the BMP (private
    # use, specials), and a sample of the planes above; surrogates cannot be encoded at all.
    return [*range(0x800), *range(0xD7F0, 0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 4099)]


@needs_libyaml
def test_every_character_is_written_alike_by_both_emitters() -> None:
    differ = []
    for cp in _sweep():
        ch = chr(cp)
        for text in (f"a{ch}b", ch, f"x\n{ch}\n"):
            objects = [{"k": text, ch: [text]}]
            if yaml_out.dump_objects(objects, yaml_out.CDumper) != yaml_out.dump_objects(
                objects, yaml_out.PureDumper
            ):
                differ.append(f"U+{cp:04X}")
                break
    assert differ == []


@needs_libyaml
@pytest.mark.parametrize("char", ["k", "\u00e9", "\u4f60", " ", "-"])
def test_keys_of_every_length_are_written_alike_by_both_emitters(char: str) -> None:
    differ = []
    for length in range(1, 260):
        key = "k" + char * length
        objects = [{key: "v", "nested": {key: [key]}}]
        if yaml_out.dump_objects(objects, yaml_out.CDumper) != yaml_out.dump_objects(
            objects, yaml_out.PureDumper
        ):
            differ.append(length)
    assert differ == []
