"""Errors of the pure core: each problem names the user's field path and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    """One problem with a spec: the field path (``spec.model.contextLength``) and a message."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(ValueError):
    """An invalid spec, or one that cannot be served as asked. Never healed by retrying."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class FitError(SpecError):
    """A valid spec that fits no variant of the model on the requested hardware."""


class ConfigError(ValueError):
    """An invalid operator configuration (``--config`` or the Helm values); names the path."""
