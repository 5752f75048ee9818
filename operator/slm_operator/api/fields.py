"""Which fields exist at a place in a pydantic model, so a misspelled one gets "did you mean".

Pydantic reports an unknown field (``extra_forbidden``) with its location, e.g.
``('model', 'contextLenght')``; :func:`known_fields` walks the model classes along that
location and returns the wire names (camelCase aliases) valid beside it, and
:func:`did_you_mean` picks the close ones.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict, Mapping)


def _flatten(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: Annotated and Optional/Union unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(annotation) for alt in _flatten(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _wire_names(model: type[BaseModel]) -> dict[str, str]:
    """Field name and alias -> field name."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        names[name] = name
        if info.alias:
            names[info.alias] = name
    return names


def _step(annotation: Any, part: int | str) -> list[Any]:
    """The annotations one location step below ``annotation`` (empty when it has none)."""
    if _is_model(annotation):
        if isinstance(part, str):
            field = _wire_names(annotation).get(part)
            if field is not None:
                return _flatten(annotation.model_fields[field].annotation)
        return []
    origin = get_origin(annotation)
    args = get_args(annotation)
    if isinstance(part, int) and origin in _SEQUENCES and args:
        return _flatten(args[0])
    if origin in _MAPPINGS and len(args) == 2:
        return _flatten(args[1])
    return []


def known_fields(model: type[BaseModel], location: Sequence[int | str]) -> list[str]:
    """Wire names of the fields valid where the last item of ``location`` is an unknown field.

    Pydantic's own labels in a location (a union member's class name, ``function-after[...]``)
    are skipped. Returns an empty list when the location cannot be followed.
    """
    current: list[Any] = [model]
    for part in location[:-1]:
        if isinstance(part, str) and any(_is_model(a) and a.__name__ == part for a in current):
            current = [a for a in current if _is_model(a) and a.__name__ == part]
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        current = [below for annotation in current for below in _step(annotation, part)]
    names: set[str] = set()
    for annotation in current:
        if _is_model(annotation):
            names.update(
                info.alias or name
                for name, info in annotation.model_fields.items()
                if not info.exclude and info.init is not False
            )
    return sorted(names)


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``"; did you mean contextLength?"`` for close candidates, else ``""``."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    if not close and word.lower() in lowered:  # case only: contextlength -> contextLength
        close = [lowered[word.lower()]]
    return f"; did you mean {' or '.join(close)}?" if close else ""
