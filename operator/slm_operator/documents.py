"""Reading SmallLanguageModel documents from files and folders, for `slmctl plan` and `render`.

A model file may name the operator configuration it is meant for in a leading
``# slmctl-config: FILE`` comment (see :func:`config_named_in`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slm_operator.api.errors import ConfigError
from slm_operator.api.spec import KIND

CONFIG_COMMENT = "# slmctl-config:"
_YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Document:
    """One SmallLanguageModel document read from a file."""

    origin: str  # "path#index" for messages
    path: Path
    body: Any


def _yaml_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _YAML_SUFFIXES)
        elif path.is_file() or raw == "-":
            yield path
        else:
            raise ConfigError(f"{raw}: no such file or folder")


def read_documents(paths: Sequence[str]) -> tuple[list[Document], list[str]]:
    """SmallLanguageModel documents in the given files/folders, and read errors (one line each).

    Documents of other kinds (Secrets beside a model, an operator config in the same folder)
    are skipped; a file named explicitly that holds no model is an error.
    """
    documents: list[Document] = []
    errors: list[str] = []
    for path in _yaml_files(paths):
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        try:
            bodies = [b for b in yaml.safe_load_all(text) if b is not None]
        except yaml.YAMLError as exc:
            errors.append(f"{path}: invalid YAML: {exc}")
            continue
        found = 0
        for index, body in enumerate(bodies):
            if isinstance(body, dict) and body.get("kind") == KIND:
                documents.append(Document(origin=f"{path}#{index}", path=path, body=body))
                found += 1
        if not found and str(path) in paths:
            errors.append(f"{path}: no {KIND} document")
    return documents, errors


def config_named_in(model_file: Path) -> Path | None:
    """The operator config a model file names in a leading ``# slmctl-config: FILE`` comment.

    Only the comment block at the top counts; the path is relative to the model file.
    """
    for line in model_file.read_text(encoding="utf-8").splitlines():
        if line.startswith(CONFIG_COMMENT):
            return model_file.parent / line.removeprefix(CONFIG_COMMENT).strip()
        if line.strip() and not line.startswith("#"):
            return None
    return None
